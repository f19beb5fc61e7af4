//! An OpenID Connect relying party for one issuer: discovery and JWKS (both cached), the
//! authorization URL, the code exchange, ID token verification and userinfo.
use super::http::{excerpt, send, CallError};
use super::{Profile, TokenSet};
use chrono::{Duration as ChronoDuration, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IssuerUrl, Nonce, SignatureVerificationError,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use url::Url;

/// How long a discovery document is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the JWKS at most this often per issuer.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp` and `iat`.
const CLOCK_SKEW_SECS: i64 = 60;

/// The discovery fields latch uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Url,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Why an ID token was refused; the text goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("ID token refused: {0}")]
    Invalid(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

pub struct OidcClient {
    issuer: Url,
    /// Where discovery is fetched when not at the issuer (the dev provider, reached on the
    /// listener's own address while its issuer is the public URL).
    discovery_base: Url,
    client_id: String,
    http: reqwest::Client,
    timeout: Duration,
    discovery: Mutex<Option<(Arc<Discovery>, Instant)>>,
    jwks: Mutex<JwksCache>,
}

#[derive(Default)]
struct JwksCache {
    keys: Option<Arc<CoreJsonWebKeySet>>,
    /// When a token's unknown `kid` last forced a refetch (the rate-limited case).
    last_forced: Option<Instant>,
}

impl OidcClient {
    pub fn new(
        issuer: Url,
        discovery_base: Option<Url>,
        client_id: String,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        OidcClient {
            discovery_base: discovery_base.unwrap_or_else(|| issuer.clone()),
            issuer,
            client_id,
            http,
            timeout,
            discovery: Mutex::new(None),
            jwks: Mutex::new(JwksCache::default()),
        }
    }

    pub fn issuer(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// The issuer exactly as configured (and as it must appear in `iss`).
    fn issuer_string(&self) -> String {
        issuer_string(&self.issuer)
    }

    /// The discovery document, fetched on first use and cached for an hour.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, CallError> {
        let mut cached = self.discovery.lock().await;
        if let Some((doc, at)) = cached.as_ref() {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(doc.clone());
            }
        }
        let url = well_known(&self.discovery_base);
        let (status, body) = send("discovery", self.http.get(url), self.timeout).await?;
        if status != 200 {
            return Err(CallError::Status {
                endpoint: "discovery",
                status,
                detail: format!(": {}", excerpt(&body)),
            });
        }
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
            endpoint: "discovery",
            reason: e.to_string(),
        })?;
        if doc.issuer.trim_end_matches('/') != self.issuer() {
            return Err(CallError::Malformed {
                endpoint: "discovery",
                reason: format!(
                    "document names issuer {:?}, configured issuer is {:?}",
                    doc.issuer,
                    self.issuer_string()
                ),
            });
        }
        let doc = Arc::new(doc);
        *cached = Some((doc.clone(), Instant::now()));
        Ok(doc)
    }

    async fn fetch_jwks(&self, uri: &Url) -> Result<CoreJsonWebKeySet, CallError> {
        let (status, body) = send("jwks", self.http.get(uri.clone()), self.timeout).await?;
        if status != 200 {
            return Err(CallError::Status {
                endpoint: "jwks",
                status,
                detail: String::new(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| CallError::Malformed {
            endpoint: "jwks",
            reason: e.to_string(),
        })
    }

    /// The cached key set; `refresh` refetches it unless that happened in the last 30 s.
    async fn keys(&self, refresh: bool) -> Result<Arc<CoreJsonWebKeySet>, CallError> {
        let discovery = self.discovery().await?;
        let mut cache = self.jwks.lock().await;
        let recently = cache
            .last_forced
            .is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL);
        match (&cache.keys, refresh) {
            (Some(keys), false) => return Ok(keys.clone()),
            (Some(keys), true) if recently => return Ok(keys.clone()),
            _ => {}
        }
        let keys = Arc::new(self.fetch_jwks(&discovery.jwks_uri).await?);
        if refresh {
            cache.last_forced = Some(Instant::now());
        }
        cache.keys = Some(keys.clone());
        Ok(keys)
    }

    /// Verifies an ID token: signature against the issuer's keys (refetched once on an unknown
    /// `kid`), `iss`, `aud`, `azp`, `exp` and `iat` with 60 s of skew, and `nonce`.
    /// Symmetric algorithms and `alg: none` are refused.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<serde_json::Value, VerifyError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| VerifyError::Invalid(format!("malformed ID token: {e}")))?;
        let keys = self.keys(false).await?;
        match self.check(&token, nonce, &keys) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we cached them.
                let fresh = self.keys(true).await?;
                if Arc::ptr_eq(&fresh, &keys) {
                    return Err(VerifyError::Invalid(
                        "no key in the issuer's JWKS matches the token's kid (JWKS refetched recently)"
                            .into(),
                    ));
                }
                self.check(&token, nonce, &fresh)
                    .map_err(|e| VerifyError::Invalid(describe(&e)))?;
            }
            Err(e) => return Err(VerifyError::Invalid(describe(&e))),
            Ok(()) => {}
        }
        let claims = unverified_payload(raw)
            .ok_or_else(|| VerifyError::Invalid("claims are not a JSON object".into()))?;
        self.check_azp(&claims)?;
        Ok(claims)
    }

    fn check(
        &self,
        token: &CoreIdToken,
        nonce: &str,
        keys: &CoreJsonWebKeySet,
    ) -> Result<(), ClaimsVerificationError> {
        let issuer = IssuerUrl::new(self.issuer_string())
            .map_err(|e| ClaimsVerificationError::Other(e.to_string()))?;
        let verifier: CoreIdTokenVerifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(self.client_id.clone()),
            issuer,
            keys.clone(),
        )
        .set_allowed_algs(ASYMMETRIC_ALGS)
        // Several audiences are allowed when `azp` names us; checked in `check_azp`.
        .set_other_audience_verifier_fn(|_| true)
        .set_time_fn(|| Utc::now() - ChronoDuration::seconds(CLOCK_SKEW_SECS))
        .set_issue_time_verifier_fn(|iat| {
            if iat > Utc::now() + ChronoDuration::seconds(CLOCK_SKEW_SECS) {
                Err(format!("issued in the future ({iat})"))
            } else {
                Ok(())
            }
        });
        token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map(|_| ())
    }

    /// OIDC Core 3.1.3.7 steps 4-5: with several audiences `azp` must be present, and when
    /// present it must be our client id.
    fn check_azp(&self, claims: &serde_json::Value) -> Result<(), VerifyError> {
        let several = claims
            .get("aud")
            .and_then(|a| a.as_array())
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(|a| a.as_str()) {
            Some(azp) if azp == self.client_id => Ok(()),
            Some(azp) => Err(VerifyError::Invalid(format!(
                "azp {azp:?} is not this client"
            ))),
            None if several => Err(VerifyError::Invalid(
                "several audiences but no azp claim".into(),
            )),
            None => Ok(()),
        }
    }

    /// Exchanges an authorization code (with the PKCE verifier) at the token endpoint.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        client_secret: Option<&[u8]>,
    ) -> Result<TokenSet, ExchangeError> {
        let discovery = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        let mut request = self
            .http
            .post(discovery.token_endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        match client_secret {
            Some(secret) => {
                let secret = String::from_utf8_lossy(secret);
                let basic_only = discovery
                    .token_endpoint_auth_methods_supported
                    .as_ref()
                    .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
                if basic_only {
                    // RFC 6749 2.3.1: both parts form-urlencoded before base64.
                    request = request
                        .basic_auth(form_encode(&self.client_id), Some(form_encode(&secret)));
                } else {
                    form.push(("client_id", self.client_id.clone()));
                    form.push(("client_secret", secret.into_owned()));
                }
            }
            None => form.push(("client_id", self.client_id.clone())),
        }
        let (status, body) = send("token", request.form(&form), self.timeout).await?;
        parse_token_response(status, &body)
    }

    /// Fetches userinfo claims with the access token; `None` when the provider has no endpoint.
    pub async fn userinfo(
        &self,
        access_token: &str,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let discovery = self.discovery().await?;
        let Some(endpoint) = discovery.userinfo_endpoint.clone() else {
            return Ok(None);
        };
        let request = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, body) = send("userinfo", request, self.timeout).await?;
        if status != 200 {
            return Err(CallError::Status {
                endpoint: "userinfo",
                status,
                detail: String::new(),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|_| CallError::Malformed {
                endpoint: "userinfo",
                reason: "not JSON (signed userinfo responses are not supported)".into(),
            })
    }
}

/// `aws-lc`-backed asymmetric algorithms; no HMAC, no `none`.
const ASYMMETRIC_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

fn describe(err: &ClaimsVerificationError) -> String {
    match err {
        ClaimsVerificationError::SignatureVerification(e) => format!("signature: {e}"),
        other => other.to_string(),
    }
}

/// The issuer as it appears in tokens: the configured URL without a trailing slash added by
/// URL normalisation (`https://a.example` parses as `https://a.example/`).
pub fn issuer_string(url: &Url) -> String {
    let s = url.as_str();
    if url.path() == "/" {
        s.trim_end_matches('/').to_string()
    } else {
        s.to_string()
    }
}

fn well_known(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        base.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url
}

/// The payload of a JWS whose signature has already been checked.
fn unverified_payload(raw: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = raw.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Why the code exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint answered with an OAuth error (RFC 6749 5.2).
    #[error("token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        error: String,
        description: Option<String>,
    },
    #[error(transparent)]
    Call(#[from] CallError),
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// Reads a token endpoint answer: OAuth error JSON (even in a 200, as GitHub sends it),
/// a token set, or something unusable.
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenSet, ExchangeError> {
    if let Ok(err) = serde_json::from_slice::<OAuthErrorBody>(body) {
        if status < 500 {
            return Err(ExchangeError::OAuth {
                error: err.error,
                description: err.error_description,
            });
        }
    }
    if !(200..300).contains(&status) {
        return Err(CallError::Status {
            endpoint: "token",
            status,
            detail: format!(": {}", excerpt(body)),
        }
        .into());
    }
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|e| CallError::Malformed {
        endpoint: "token",
        // serde's message names the field, never the value.
        reason: e.to_string(),
    })?;
    if let Some(kind) = &parsed.token_type {
        if !kind.eq_ignore_ascii_case("bearer") && !kind.eq_ignore_ascii_case("dpop") {
            return Err(CallError::Malformed {
                endpoint: "token",
                reason: format!("token_type {kind:?} is not Bearer"),
            }
            .into());
        }
    }
    let expires_in = parsed.expires_in.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    Ok(TokenSet {
        access_token: parsed.access_token,
        id_token: parsed.id_token,
        refresh_token: parsed.refresh_token,
        expires_in,
        scope: parsed.scope,
    })
}

/// Maps standard claims (ID token, then userinfo for what it lacks) to a profile.
pub fn profile_from_claims(
    id_claims: &serde_json::Value,
    userinfo: Option<&serde_json::Value>,
) -> Result<Profile, String> {
    let subject = id_claims
        .get("sub")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or("ID token has no sub")?
        .to_string();
    if let Some(info) = userinfo {
        let info_sub = info.get("sub").and_then(|s| s.as_str());
        if info_sub != Some(subject.as_str()) {
            return Err("userinfo sub does not match the ID token's sub".into());
        }
    }
    let pick = |name: &str| -> Option<&serde_json::Value> {
        id_claims
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| userinfo.and_then(|u| u.get(name)).filter(|v| !v.is_null()))
    };
    let text = |name: &str| pick(name).and_then(|v| v.as_str()).map(str::to_string);
    let email = text("email");
    let email_verified = email.is_some()
        && match pick("email_verified") {
            Some(serde_json::Value::Bool(b)) => *b,
            // Some providers send "true" as a string.
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
    let name = text("name").or_else(|| {
        let given = text("given_name");
        let family = text("family_name");
        match (given, family) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (g, f) => g.or(f),
        }
    });
    Ok(Profile {
        subject,
        email,
        email_verified,
        name: name.or_else(|| text("preferred_username")),
        image: text("picture"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issuer_string_keeps_paths_and_drops_root_slash() {
        let a = Url::parse("https://sso.example").unwrap();
        assert_eq!(issuer_string(&a), "https://sso.example");
        let b = Url::parse("https://sso.example/realms/x").unwrap();
        assert_eq!(issuer_string(&b), "https://sso.example/realms/x");
    }

    #[test]
    fn well_known_appends_to_path() {
        let b = Url::parse("https://sso.example/realms/x").unwrap();
        assert_eq!(
            well_known(&b).as_str(),
            "https://sso.example/realms/x/.well-known/openid-configuration"
        );
    }

    #[test]
    fn token_errors_are_oauth_errors_even_in_200() {
        let err = parse_token_response(200, br#"{"error":"bad_verification_code"}"#).unwrap_err();
        assert!(
            matches!(err, ExchangeError::OAuth { ref error, .. } if error == "bad_verification_code")
        );
        let err = parse_token_response(400, br#"{"error":"invalid_grant"}"#).unwrap_err();
        assert!(matches!(err, ExchangeError::OAuth { .. }));
        let err = parse_token_response(500, b"<html>oops</html>").unwrap_err();
        assert!(matches!(
            err,
            ExchangeError::Call(CallError::Status { status: 500, .. })
        ));
        let err = parse_token_response(200, b"{}").unwrap_err();
        assert!(matches!(
            err,
            ExchangeError::Call(CallError::Malformed { .. })
        ));
        let ok = parse_token_response(
            200,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(60));
    }

    #[test]
    fn profile_prefers_id_token_and_checks_userinfo_sub() {
        let id = json!({"sub": "1", "email": "a@x.test", "email_verified": true});
        let info = json!({"sub": "1", "name": "Ann", "picture": "https://x.test/a.png"});
        let p = profile_from_claims(&id, Some(&info)).unwrap();
        assert_eq!(p.email.as_deref(), Some("a@x.test"));
        assert!(p.email_verified);
        assert_eq!(p.name.as_deref(), Some("Ann"));
        let other = json!({"sub": "2"});
        assert!(profile_from_claims(&id, Some(&other)).is_err());
        let unverified = json!({"sub": "1", "email": "a@x.test"});
        assert!(
            !profile_from_claims(&unverified, None)
                .unwrap()
                .email_verified
        );
    }
}
