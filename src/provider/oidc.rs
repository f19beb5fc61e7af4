//! An OpenID Connect relying party for one issuer: discovery and JWKS (both cached), the
//! authorization URL, the code exchange, ID token verification and userinfo.
//!
//! (Over 600 lines with its unit tests, which are the last 281: the tests stay beside
//! the code they pin down.)
use super::http::{excerpt, fetch, is_loopback, send, Budget, CallError};
use super::jwk::{Jwk, Jwks};
use super::logout::{check_claims, LogoutClaims};
use super::profile::Profile;
use crate::config::types::{IssuerRule, TokenAuth};
use chrono::{Duration as ChronoDuration, Utc};
use openidconnect::core::{CoreIdToken, CoreJwsSigningAlgorithm};
use openidconnect::{
    ClaimsVerificationError, ClientId, IdTokenVerifier, IssuerUrl, Nonce,
    SignatureVerificationError,
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
/// How long a key set is trusted: the JWKS answer's `Cache-Control: max-age`, within these
/// bounds (a key the provider removed stops being trusted after at most `JWKS_MAX_TTL`; a
/// `max-age=0` does not make every sign-in refetch), and `JWKS_DEFAULT_TTL` without one.
const JWKS_MIN_TTL: Duration = Duration::from_secs(5 * 60);
const JWKS_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const JWKS_DEFAULT_TTL: Duration = Duration::from_secs(3600);
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
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
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
    /// Multi-tenant Entra ID publishes `https://…/{tenantid}/v2.0` as its issuer: each token's
    /// `iss` must then be that template filled with the token's own `tid`.
    issuer_rule: IssuerRule,
    /// Where discovery is fetched when not at the issuer (the dev provider, reached on the
    /// listener's own address while its issuer is the public URL).
    discovery_base: Url,
    client_id: String,
    http: reqwest::Client,
    budget: Budget,
    discovery: Mutex<Option<(Arc<Discovery>, Instant)>>,
    /// The discovered authorization endpoint's origin, readable without awaiting (for the
    /// pages' CSP `form-action`).
    authorization_origin: std::sync::Mutex<Option<String>>,
    jwks: Mutex<JwksCache>,
}

#[derive(Default)]
struct JwksCache {
    /// The key set and until when it is trusted.
    keys: Option<(Arc<Jwks>, Instant)>,
    /// When a token's unknown `kid` last forced a refetch (the rate-limited case).
    last_forced: Option<Instant>,
}

impl OidcClient {
    pub fn new(
        issuer: Url,
        issuer_rule: IssuerRule,
        discovery_base: Option<Url>,
        client_id: String,
        http: reqwest::Client,
        budget: Budget,
    ) -> Self {
        OidcClient {
            discovery_base: discovery_base.unwrap_or_else(|| issuer.clone()),
            issuer,
            issuer_rule,
            client_id,
            http,
            budget,
            discovery: Mutex::new(None),
            authorization_origin: std::sync::Mutex::new(None),
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
            // (`<=` instead would differ only at exactly one hour: not observable.)
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(doc.clone());
            }
        }
        let url = well_known(&self.discovery_base);
        let (status, body) = send("discovery", self.http.get(url), self.budget).await?;
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
        check_endpoints(&self.issuer, &doc).map_err(|reason| CallError::Malformed {
            endpoint: "discovery",
            reason,
        })?;
        if !self.accepts_discovered_issuer(&doc.issuer) {
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
        *self
            .authorization_origin
            .lock()
            .unwrap_or_else(|e| e.into_inner()) =
            Some(doc.authorization_endpoint.origin().ascii_serialization());
        Ok(doc)
    }

    /// Where the browser is sent to sign in: the issuer's origin (where nearly every provider
    /// has its authorization endpoint, known before discovery) and, once discovered, the
    /// authorization endpoint's own.
    pub fn authorization_origins(&self) -> Vec<String> {
        let mut origins = vec![self.issuer.origin().ascii_serialization()];
        let discovered = self
            .authorization_origin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        origins.extend(discovered);
        origins
    }

    fn accepts_discovered_issuer(&self, discovered: &str) -> bool {
        let discovered = discovered.trim_end_matches('/');
        match self.issuer_rule {
            IssuerRule::Exact => discovered == self.issuer(),
            // Same origin, and the tenant segment is the placeholder.
            IssuerRule::EntraTenantFromTid => {
                discovered.contains("{tenantid}")
                    && Url::parse(&discovered.replace("{tenantid}", "t"))
                        .is_ok_and(|u| u.origin() == self.issuer.origin())
            }
        }
    }

    /// The `iss` a token (or a callback) must carry. For multi-tenant Entra ID that depends on
    /// the token's `tid`; `None` when it cannot be known.
    async fn expected_issuer(&self, tid: Option<&str>) -> Result<Option<String>, CallError> {
        match self.issuer_rule {
            // Exactly as the provider publishes it (Auth0's ends in '/'), which discovery has
            // checked against the configured issuer.
            IssuerRule::Exact => Ok(Some(self.discovery().await?.issuer.clone())),
            IssuerRule::EntraTenantFromTid => {
                let template = self.discovery().await?.issuer.clone();
                Ok(tid
                    .filter(|t| is_tenant_id(t))
                    .map(|t| template.trim_end_matches('/').replace("{tenantid}", t)))
            }
        }
    }

    /// Does a callback's RFC 9207 `iss` name this provider?
    pub async fn callback_issuer_matches(&self, iss: &str) -> Result<bool, CallError> {
        let iss = iss.trim_end_matches('/');
        match self.issuer_rule {
            IssuerRule::Exact => Ok(iss == self.issuer()),
            IssuerRule::EntraTenantFromTid => {
                let template = self.discovery().await?.issuer.clone();
                let template = template.trim_end_matches('/');
                let Some((prefix, suffix)) = template.split_once("{tenantid}") else {
                    return Ok(false);
                };
                Ok(iss
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .is_some_and(is_tenant_id))
            }
        }
    }

    /// The token endpoint authentication to use: the configured one, unless it is the default
    /// (basic) and the provider says it only takes `client_secret_post`.
    pub async fn token_auth(&self, configured: TokenAuth) -> Result<TokenAuth, CallError> {
        if configured != TokenAuth::ClientSecretBasic {
            return Ok(configured);
        }
        let discovery = self.discovery().await?;
        let post_only = discovery
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|m| {
                !m.iter().any(|m| m == "client_secret_basic")
                    && m.iter().any(|m| m == "client_secret_post")
            });
        Ok(if post_only {
            TokenAuth::ClientSecretPost
        } else {
            configured
        })
    }

    /// The key set and how long to trust it (from `Cache-Control`).
    async fn fetch_jwks(&self, uri: &Url) -> Result<(Jwks, Duration), CallError> {
        let answer = fetch("jwks", self.http.get(uri.clone()), self.budget).await?;
        if answer.status != 200 {
            return Err(CallError::Status {
                endpoint: "jwks",
                status: answer.status,
                detail: String::new(),
            });
        }
        let keys = serde_json::from_slice(&answer.body).map_err(|e| CallError::Malformed {
            endpoint: "jwks",
            reason: e.to_string(),
        })?;
        let cache_control = answer
            .headers
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok((keys, jwks_ttl(&cache_control)))
    }

    /// The cached key set (refetched once its time is up); `refresh` refetches it unless a
    /// forced refetch happened in the last 30 s. `now` is the caller's clock.
    async fn keys(&self, refresh: bool, now: Instant) -> Result<Arc<Jwks>, CallError> {
        let discovery = self.discovery().await?;
        let mut cache = self.jwks.lock().await;
        let recently = cache
            .last_forced
            .is_some_and(|at| now.saturating_duration_since(at) < JWKS_REFETCH_INTERVAL);
        match (&cache.keys, refresh) {
            (Some((keys, until)), false) if now < *until => return Ok(keys.clone()),
            // (`now <= *until` here would be the same: a forced fetch sets `until` at least
            // JWKS_MIN_TTL after `last_forced`, so `recently` and `now == until` never meet.)
            (Some((keys, until)), true) if recently && now < *until => return Ok(keys.clone()),
            _ => {}
        }
        let (keys, ttl) = self.fetch_jwks(&discovery.jwks_uri).await?;
        let keys = Arc::new(keys);
        if refresh {
            cache.last_forced = Some(now);
        }
        cache.keys = Some((keys.clone(), now + ttl));
        Ok(keys)
    }

    /// The issuer's key set (discovery, then `jwks_uri`; cached as for sign-ins).
    pub async fn jwks(&self) -> Result<Arc<Jwks>, CallError> {
        self.keys(false, Instant::now()).await
    }

    /// Verifies an ID token: signature against the issuer's keys (refetched once on an unknown
    /// `kid`), `iss`, `aud`, `azp`, `exp` and `iat` with 60 s of skew, and `nonce`.
    /// Symmetric algorithms and `alg: none` are refused.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<serde_json::Value, VerifyError> {
        self.verify_id_token_at(raw, nonce, Instant::now()).await
    }

    /// [`Self::verify_id_token`] with the key cache's clock given (tests move it forward).
    async fn verify_id_token_at(
        &self,
        raw: &str,
        nonce: &str,
        now: Instant,
    ) -> Result<serde_json::Value, VerifyError> {
        let token: CoreIdToken = raw
            .parse()
            .map_err(|e| VerifyError::Invalid(format!("malformed ID token: {e}")))?;
        let unverified = unverified_payload(raw)
            .ok_or_else(|| VerifyError::Invalid("claims are not a JSON object".into()))?;
        let tid = unverified.get("tid").and_then(|t| t.as_str());
        let issuer = self.expected_issuer(tid).await?.ok_or_else(|| {
            VerifyError::Invalid("multi-tenant issuer: the token has no valid tid claim".into())
        })?;
        let keys = self.keys(false, now).await?;
        match self.check(&token, nonce, &keys, &issuer) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we cached them.
                let fresh = self.keys(true, now).await?;
                if Arc::ptr_eq(&fresh, &keys) {
                    return Err(VerifyError::Invalid(
                        "no key in the issuer's JWKS matches the token's kid (JWKS refetched recently)"
                            .into(),
                    ));
                }
                self.check(&token, nonce, &fresh, &issuer)
                    .map_err(|e| VerifyError::Invalid(describe(&e)))?;
            }
            Err(e) => return Err(VerifyError::Invalid(describe(&e))),
            Ok(()) => {}
        }
        // The signature is now verified, so the payload read above is the token's.
        self.check_azp(&unverified)?;
        Ok(unverified)
    }

    fn check(
        &self,
        token: &CoreIdToken,
        nonce: &str,
        keys: &Jwks,
        issuer: &str,
    ) -> Result<(), ClaimsVerificationError> {
        let issuer = IssuerUrl::new(issuer.to_string())
            .map_err(|e| ClaimsVerificationError::Other(e.to_string()))?;
        let verifier: IdTokenVerifier<Jwk> = IdTokenVerifier::new_public_client(
            ClientId::new(self.client_id.clone()),
            issuer,
            keys.clone(),
        )
        .set_allowed_algs(ASYMMETRIC_ALGS)
        // Several audiences are allowed when `azp` names us; checked in `check_azp`.
        .set_other_audience_verifier_fn(|_| true)
        .set_time_fn(|| Utc::now() - ChronoDuration::seconds(CLOCK_SKEW_SECS))
        .set_issue_time_verifier_fn(|iat| {
            // (`>=` would differ only when `now` falls on a whole second, as `iat` does.)
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

    /// Verifies a Logout Token (OpenID Back-Channel Logout 1.0 §2.6): the signature with the
    /// ID-token rules (the issuer's JWKS, refetched once on an unknown `kid`; asymmetric
    /// algorithms only), then its claims (`logout::check_claims`).
    pub async fn verify_logout_token(&self, raw: &str) -> Result<LogoutClaims, VerifyError> {
        self.verify_logout_token_at(raw, Instant::now(), Utc::now().timestamp())
            .await
    }

    async fn verify_logout_token_at(
        &self,
        raw: &str,
        now: Instant,
        unix_now: i64,
    ) -> Result<LogoutClaims, VerifyError> {
        let jws = CompactJws::parse(raw).map_err(VerifyError::Invalid)?;
        let keys = self.keys(false, now).await?;
        match jws.verify(&keys) {
            Err(JwsError::NoMatchingKey) => {
                let fresh = self.keys(true, now).await?;
                if Arc::ptr_eq(&fresh, &keys) {
                    return Err(VerifyError::Invalid(
                        "no key in the issuer's JWKS matches the token's kid (JWKS refetched recently)"
                            .into(),
                    ));
                }
                jws.verify(&fresh)
                    .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            }
            Err(e) => return Err(VerifyError::Invalid(e.to_string())),
            Ok(()) => {}
        }
        let tid = jws.payload.get("tid").and_then(|t| t.as_str());
        let issuer = self.expected_issuer(tid).await?.ok_or_else(|| {
            VerifyError::Invalid("multi-tenant issuer: the token has no valid tid claim".into())
        })?;
        check_claims(
            &jws.payload,
            &issuer,
            &self.client_id,
            unix_now,
            CLOCK_SKEW_SECS,
        )
        .map_err(VerifyError::Invalid)
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
        let (status, body) = send("userinfo", request, self.budget).await?;
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

/// A compact JWS taken apart, before its signature is checked.
struct CompactJws<'a> {
    alg: CoreJwsSigningAlgorithm,
    kid: Option<String>,
    signing_input: &'a str,
    signature: Vec<u8>,
    payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
enum JwsError {
    #[error("no key in the issuer's JWKS matches the token's kid and alg")]
    NoMatchingKey,
    #[error("signature does not verify with the issuer's key")]
    BadSignature,
}

impl<'a> CompactJws<'a> {
    fn parse(raw: &'a str) -> Result<Self, String> {
        use base64::Engine;
        let decode = |part: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| "not base64url".to_string())
        };
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS (three dot-separated parts)".into());
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?)
            .map_err(|_| "header is not JSON".to_string())?;
        // RFC 7515 §4.1.11: extensions that must be understood; latch understands none.
        if header.get("crit").is_some() {
            return Err("header has crit: extensions latch does not implement".into());
        }
        let alg_name = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(serde_json::Value::String(alg_name.to_string()))
                .ok()
                .filter(|a| ASYMMETRIC_ALGS.contains(a))
                .ok_or_else(|| {
                    format!(
                        "alg {:?} is not an asymmetric signature algorithm",
                        super::http::excerpt(alg_name.as_bytes())
                    )
                })?;
        let payload: serde_json::Value = serde_json::from_slice(&decode(payload)?)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or("claims are not a JSON object")?;
        Ok(CompactJws {
            alg,
            kid: header
                .get("kid")
                .and_then(|k| k.as_str())
                .map(str::to_string),
            signing_input: &raw[..raw.rfind('.').unwrap_or(0)],
            signature: decode(signature)?,
            payload,
        })
    }

    /// Checks the signature with the keys that may have made it: the one the `kid` names (or
    /// every key without one), meant for signatures and for this `alg`.
    fn verify(&self, keys: &Jwks) -> Result<(), JwsError> {
        use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse};
        let candidates = keys.keys().iter().filter(|k| {
            let kid_ok = match &self.kid {
                Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
                None => true,
            };
            let use_ok = k.key_use().is_none_or(|u| u.allows_signature());
            let alg_ok = match k.signing_alg() {
                JsonWebKeyAlgorithm::Unspecified => true,
                JsonWebKeyAlgorithm::Algorithm(alg) => *alg == self.alg,
                JsonWebKeyAlgorithm::Unsupported => false,
            };
            kid_ok && use_ok && alg_ok
        });
        let mut any = false;
        for key in candidates {
            any = true;
            if key
                .verify_signature(&self.alg, self.signing_input.as_bytes(), &self.signature)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(if any {
            JwsError::BadSignature
        } else {
            JwsError::NoMatchingKey
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

/// How long to trust a key set, from its answer's `Cache-Control`: `max-age` clamped to
/// 5 min..24 h; `no-store`/`no-cache` count as the minimum; one hour without either.
fn jwks_ttl(cache_control: &str) -> Duration {
    let mut ttl = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("max-age") {
            ttl = value
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        } else if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            ttl = Some(Duration::ZERO);
            break;
        }
    }
    ttl.unwrap_or(JWKS_DEFAULT_TTL)
        .clamp(JWKS_MIN_TTL, JWKS_MAX_TTL)
}

/// Every endpoint a discovery document names must be https; plain http only when both the
/// configured issuer and the endpoint are on loopback (a provider under test). Anything else
/// would send codes, tokens and the client secret in the clear, or trust keys fetched so.
fn check_endpoints(issuer: &Url, doc: &Discovery) -> Result<(), String> {
    let endpoints = [
        ("authorization_endpoint", Some(&doc.authorization_endpoint)),
        ("token_endpoint", Some(&doc.token_endpoint)),
        ("userinfo_endpoint", doc.userinfo_endpoint.as_ref()),
        ("jwks_uri", Some(&doc.jwks_uri)),
        ("end_session_endpoint", doc.end_session_endpoint.as_ref()),
    ];
    for (name, url) in endpoints {
        let Some(url) = url else { continue };
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(issuer) && is_loopback(url) => {}
            "http" => {
                return Err(format!(
                    "{name} {url} is not https (http is accepted only on loopback, for a loopback issuer)"
                ))
            }
            other => return Err(format!("{name} {url}: scheme {other:?} is not https")),
        }
    }
    Ok(())
}

/// Entra tenant ids are GUIDs.
fn is_tenant_id(tid: &str) -> bool {
    tid.len() == 36 && tid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

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
    // `email_verified` counts only from the document that supplied `email`: userinfo's
    // word about its email says nothing about another email in the ID token.
    let email_source = [Some(id_claims), userinfo]
        .into_iter()
        .flatten()
        .find(|doc| doc.get("email").is_some_and(|v| v.is_string()));
    let email = email_source
        .and_then(|doc| doc.get("email"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let says_verified = |doc: &serde_json::Value| match doc.get("email_verified") {
        Some(serde_json::Value::Bool(b)) => Some(*b),
        // Some providers send "true" as a string.
        Some(serde_json::Value::String(s)) => Some(s == "true"),
        _ => None,
    };
    let email_verified = email.as_deref().is_some_and(|email| {
        let vouching = [Some(id_claims), userinfo]
            .into_iter()
            .flatten()
            .filter(|doc| doc.get("email").and_then(|v| v.as_str()) == Some(email));
        // The first document naming this email that says anything decides.
        vouching.filter_map(says_verified).next().unwrap_or(false)
    });
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
        sid: id_claims
            .get("sid")
            .and_then(|v| v.as_str())
            .filter(|sid| super::logout::plausible_sid(sid))
            .map(str::to_string),
        groups: Vec::new(),
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

    /// The provider session id comes from the ID token only, and only a plausible one.
    #[test]
    fn the_provider_sid_is_kept_only_from_the_id_token_and_only_when_plausible() {
        let sid = |id: serde_json::Value, info: Option<serde_json::Value>| {
            profile_from_claims(&id, info.as_ref()).unwrap().sid
        };
        let uuid = "08a5019c-17e1-4977-8f42-65a12843ea02";
        assert_eq!(
            sid(json!({"sub": "s", "sid": uuid}), None).as_deref(),
            Some(uuid)
        );
        assert_eq!(
            sid(json!({"sub": "s"}), Some(json!({"sub": "s", "sid": uuid}))),
            None
        );
        let longest = "a".repeat(255);
        assert_eq!(
            sid(json!({"sub": "s", "sid": longest}), None).as_deref(),
            Some(longest.as_str())
        );
        for bad in [
            json!(""),
            json!("a".repeat(256)),
            json!("a b"),
            json!("a\nb"),
            json!("é"),
            json!(7),
        ] {
            assert_eq!(sid(json!({"sub": "s", "sid": bad}), None), None, "{bad}");
        }
    }

    #[test]
    fn email_verified_counts_only_for_the_email_it_was_said_of() {
        let id = serde_json::json!({"sub": "s", "email": "a@x.test"});
        let info = serde_json::json!({"sub": "s", "email": "b@x.test", "email_verified": true});
        let p = profile_from_claims(&id, Some(&info)).unwrap();
        assert_eq!(p.email.as_deref(), Some("a@x.test"));
        assert!(!p.email_verified, "userinfo vouched for another email");
        let same = serde_json::json!({"sub": "s", "email": "a@x.test", "email_verified": true});
        assert!(
            profile_from_claims(&id, Some(&same))
                .unwrap()
                .email_verified
        );
        let denied = serde_json::json!({"sub": "s", "email": "a@x.test", "email_verified": false});
        let id_yes = serde_json::json!({"sub": "s", "email": "a@x.test", "email_verified": true});
        assert!(
            profile_from_claims(&id_yes, Some(&denied))
                .unwrap()
                .email_verified,
            "the ID token speaks first"
        );
        let only_info = serde_json::json!({"sub": "s"});
        assert!(
            profile_from_claims(&only_info, Some(&same))
                .unwrap()
                .email_verified
        );
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

    fn doc(endpoints: [&str; 4], end_session: Option<&str>) -> Discovery {
        let u = |s: &str| Url::parse(s).unwrap();
        Discovery {
            issuer: "unused".into(),
            authorization_endpoint: u(endpoints[0]),
            token_endpoint: u(endpoints[1]),
            userinfo_endpoint: Some(u(endpoints[2])),
            jwks_uri: u(endpoints[3]),
            authorization_response_iss_parameter_supported: false,
            token_endpoint_auth_methods_supported: None,
            end_session_endpoint: end_session.map(u),
        }
    }

    #[test]
    fn discovered_endpoints_must_be_https_unless_all_on_loopback() {
        let public = Url::parse("https://sso.example").unwrap();
        let https = [
            "https://sso.example/a",
            "https://sso.example/t",
            "https://sso.example/u",
            "https://keys.example/j",
        ];
        assert!(check_endpoints(&public, &doc(https, Some("https://sso.example/logout"))).is_ok());
        for i in 0..4 {
            let mut endpoints = https;
            endpoints[i] = "http://sso.example/x";
            let err = check_endpoints(&public, &doc(endpoints, None)).unwrap_err();
            let name = [
                "authorization_endpoint",
                "token_endpoint",
                "userinfo_endpoint",
                "jwks_uri",
            ][i];
            assert!(err.starts_with(name) && err.contains("not https"), "{err}");
            // Not even on loopback: the issuer is not.
            endpoints[i] = "http://127.0.0.1:9/x";
            assert!(check_endpoints(&public, &doc(endpoints, None)).is_err());
        }
        let err =
            check_endpoints(&public, &doc(https, Some("http://sso.example/logout"))).unwrap_err();
        assert!(err.starts_with("end_session_endpoint"), "{err}");
        let mut odd = https;
        odd[1] = "ftp://sso.example/t";
        assert!(check_endpoints(&public, &doc(odd, None))
            .unwrap_err()
            .contains("\"ftp\""));

        // A loopback issuer (a provider under test) may use http on loopback, not elsewhere.
        let local = Url::parse("http://127.0.0.1:4444").unwrap();
        let plain = [
            "http://127.0.0.1:4444/a",
            "http://localhost:4444/t",
            "http://[::1]:4444/u",
            "http://127.0.0.1:4444/j",
        ];
        assert!(check_endpoints(&local, &doc(plain, None)).is_ok());
        let mut away = plain;
        away[3] = "http://keys.example/j";
        assert!(check_endpoints(&local, &doc(away, None))
            .unwrap_err()
            .starts_with("jwks_uri"));
    }

    #[test]
    fn jwks_trust_follows_max_age_within_bounds() {
        let min = JWKS_MIN_TTL;
        assert_eq!(jwks_ttl(""), JWKS_DEFAULT_TTL);
        assert_eq!(jwks_ttl("public, max-age=7200"), Duration::from_secs(7200));
        assert_eq!(
            jwks_ttl("max-age=\"900\", must-revalidate"),
            Duration::from_secs(900)
        );
        assert_eq!(jwks_ttl("Max-Age=0"), min);
        assert_eq!(jwks_ttl("max-age=10"), min);
        assert_eq!(jwks_ttl("max-age=31536000"), JWKS_MAX_TTL);
        assert_eq!(jwks_ttl("no-store"), min);
        assert_eq!(jwks_ttl("max-age=7200, no-cache"), min);
        assert_eq!(jwks_ttl("max-age=soon"), JWKS_DEFAULT_TTL);
        // The bounds themselves, as documented: 5 min and 24 h.
        assert_eq!(min, Duration::from_secs(300));
        assert_eq!(JWKS_MAX_TTL, Duration::from_secs(86_400));
    }

    /// A provider on loopback whose key set can be changed, and how often it was fetched.
    struct KeyServer {
        issuer: Url,
        keys: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
        hits: Arc<std::sync::atomic::AtomicUsize>,
        discoveries: Arc<std::sync::atomic::AtomicUsize>,
    }

    async fn key_server(cache_control: &'static str) -> KeyServer {
        key_server_with(cache_control, json!({})).await
    }

    /// With `extra` fields in its discovery document.
    async fn key_server_with(cache_control: &'static str, extra: serde_json::Value) -> KeyServer {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let discoveries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut document = json!({
            "issuer": issuer,
            // Another origin than the issuer's, as some providers have it.
            "authorization_endpoint": issuer.replace("127.0.0.1", "localhost") + "/authorize",
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
        });
        for (name, value) in extra.as_object().unwrap() {
            document[name] = value.clone();
        }
        let (k, h, d) = (keys.clone(), hits.clone(), discoveries.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move {
                    d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    axum::Json(document)
                }),
            )
            .route(
                "/userinfo",
                get(|headers: axum::http::HeaderMap| async move {
                    match headers.get("authorization").map(|v| v.as_bytes()) {
                        Some(b"Bearer good") => Ok(axum::Json(json!({"sub": "u1"}))),
                        _ => Err(axum::http::StatusCode::UNAUTHORIZED),
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || async move {
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let keys = k.lock().unwrap().clone();
                    (
                        [("cache-control", cache_control)],
                        axum::Json(json!({ "keys": keys })),
                    )
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        KeyServer {
            issuer: Url::parse(&issuer).unwrap(),
            keys,
            hits,
            discoveries,
        }
    }

    fn id_token(key: &crate::jws::SigningKey, issuer: &Url, nonce: &str) -> String {
        let now = Utc::now().timestamp();
        key.sign(&json!({
            "iss": issuer_string(issuer), "sub": "u1", "aud": "client", "nonce": nonce,
            "iat": now, "exp": now + 300,
        }))
    }

    /// A client of `issuer` with a 5 s budget and the default body cap.
    fn test_client(issuer: &Url) -> OidcClient {
        OidcClient::new(
            issuer.clone(),
            IssuerRule::Exact,
            None,
            "client".into(),
            super::super::http::build_client(),
            Budget {
                timeout: Duration::from_secs(5),
                max_body: super::super::http::MAX_ANSWER_BYTES,
            },
        )
    }

    #[tokio::test]
    async fn a_removed_key_stops_being_trusted_after_max_age() {
        crate::install_crypto_provider();
        let server = key_server("public, max-age=600").await;
        let old = crate::jws::SigningKey::generate();
        let new = crate::jws::SigningKey::generate();
        server.keys.lock().unwrap().push(old.public_jwk());
        let client = test_client(&server.issuer);
        let t0 = Instant::now();
        let token = id_token(&old, &server.issuer, "n1");
        client.verify_id_token_at(&token, "n1", t0).await.unwrap();
        // The provider drops the key: the cached set is trusted until its max-age is up...
        *server.keys.lock().unwrap() = vec![new.public_jwk()];
        let hits = server.hits.load(std::sync::atomic::Ordering::SeqCst);
        client
            .verify_id_token_at(&token, "n1", t0 + Duration::from_secs(599))
            .await
            .unwrap();
        assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), hits);
        // ...and not from then on: the refetched set no longer has it.
        let err = client
            .verify_id_token_at(&token, "n1", t0 + Duration::from_secs(600))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(_)), "{err}");
        assert!(server.hits.load(std::sync::atomic::Ordering::SeqCst) > hits);
        // The new key is trusted at once.
        let fresh = id_token(&new, &server.issuer, "n2");
        client
            .verify_id_token_at(&fresh, "n2", t0 + Duration::from_secs(602))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_key_set_without_max_age_is_trusted_for_an_hour() {
        crate::install_crypto_provider();
        let server = key_server("public").await;
        let key = crate::jws::SigningKey::generate();
        server.keys.lock().unwrap().push(key.public_jwk());
        let client = test_client(&server.issuer);
        let issuer_origin = server.issuer.origin().ascii_serialization();
        assert_eq!(client.authorization_origins(), vec![issuer_origin.clone()]);
        let t0 = Instant::now();
        let token = id_token(&key, &server.issuer, "n");
        client.verify_id_token_at(&token, "n", t0).await.unwrap();
        assert_eq!(
            client.verify_id_token(&token, "n").await.unwrap()["sub"],
            "u1"
        );
        // Discovery found the authorization endpoint elsewhere: the CSP gets its origin too.
        let discovered = issuer_origin.replace("127.0.0.1", "localhost");
        assert_eq!(
            client.authorization_origins(),
            vec![issuer_origin, discovered]
        );
        server.keys.lock().unwrap().clear();
        let at = |secs| t0 + Duration::from_secs(secs);
        client
            .verify_id_token_at(&token, "n", at(3599))
            .await
            .unwrap();
        assert!(client
            .verify_id_token_at(&token, "n", at(3601))
            .await
            .is_err());
        // Discovery was fetched once for all of these (it is cached for an hour).
        assert_eq!(
            server.discoveries.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_key_set_at_most_every_30_s() {
        crate::install_crypto_provider();
        let server = key_server("public, max-age=600").await;
        let hits = || server.hits.load(std::sync::atomic::Ordering::SeqCst);
        let (a, b, stranger) = (
            crate::jws::SigningKey::generate(),
            crate::jws::SigningKey::generate(),
            crate::jws::SigningKey::generate(),
        );
        server.keys.lock().unwrap().push(a.public_jwk());
        let client = test_client(&server.issuer);
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        client
            .verify_id_token_at(&id_token(&a, &server.issuer, "n"), "n", t0)
            .await
            .unwrap();
        assert_eq!(hits(), 1);
        // The provider adds a key: its first token refetches the (still fresh) set at once.
        server.keys.lock().unwrap().push(b.public_jwk());
        client
            .verify_id_token_at(&id_token(&b, &server.issuer, "n"), "n", at(1))
            .await
            .unwrap();
        assert_eq!(hits(), 2);
        // A kid nobody publishes: no refetch within 30 s of the last forced one...
        let unknown = id_token(&stranger, &server.issuer, "n");
        for secs in [2, 30] {
            let err = client.verify_id_token_at(&unknown, "n", at(secs)).await;
            assert!(err.unwrap_err().to_string().contains("refetched recently"));
            assert_eq!(hits(), 2, "at {secs} s");
        }
        // ...and one once 30 s have passed.
        assert!(client
            .verify_id_token_at(&unknown, "n", at(31))
            .await
            .is_err());
        assert_eq!(hits(), 3);
    }

    #[tokio::test]
    async fn exp_and_iat_get_a_minute_of_skew_and_no_more() {
        crate::install_crypto_provider();
        let server = key_server("public").await;
        let key = crate::jws::SigningKey::generate();
        server.keys.lock().unwrap().push(key.public_jwk());
        let client = test_client(&server.issuer);
        let now = Utc::now().timestamp();
        let token = |iat: i64, exp: i64| {
            key.sign(&json!({
                "iss": issuer_string(&server.issuer), "sub": "u1", "aud": "client",
                "nonce": "n", "iat": iat, "exp": exp,
            }))
        };
        for (iat, exp, ok) in [
            (0, 30, true),
            // Expired, within the skew.
            (-600, -30, true),
            (-600, -120, false),
            // Issued "in the future", within the skew.
            (30, 300, true),
            (120, 300, false),
        ] {
            let verdict = client
                .verify_id_token(&token(now + iat, now + exp), "n")
                .await;
            assert_eq!(verdict.is_ok(), ok, "iat {iat} s, exp {exp} s: {verdict:?}");
        }
        // The log line says why.
        let why = client
            .verify_id_token(&token(now - 600, now - 120), "n")
            .await
            .unwrap_err()
            .to_string();
        assert!(why.to_lowercase().contains("expired"), "{why}");
    }

    #[tokio::test]
    async fn userinfo_is_fetched_with_the_access_token() {
        crate::install_crypto_provider();
        let server = key_server("public").await;
        let client = test_client(&server.issuer);
        assert_eq!(
            client.userinfo("good").await.unwrap(),
            Some(json!({"sub": "u1"}))
        );
        assert!(client.userinfo("bad").await.is_err());
        let without = key_server_with("public", json!({ "userinfo_endpoint": null })).await;
        assert_eq!(
            test_client(&without.issuer).userinfo("good").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn client_secret_post_is_used_only_when_the_provider_takes_nothing_else() {
        crate::install_crypto_provider();
        let basic = TokenAuth::ClientSecretBasic;
        for (methods, expected) in [
            (json!(["client_secret_post"]), TokenAuth::ClientSecretPost),
            (json!(["client_secret_basic", "client_secret_post"]), basic),
            (json!(["client_secret_basic"]), basic),
            (json!(["private_key_jwt"]), basic),
            (json!(null), basic),
        ] {
            let server = key_server_with(
                "public",
                json!({ "token_endpoint_auth_methods_supported": methods }),
            )
            .await;
            let client = test_client(&server.issuer);
            assert_eq!(
                client.token_auth(basic).await.unwrap(),
                expected,
                "{methods}"
            );
            // A configured method other than the default is kept as it is.
            assert_eq!(
                client.token_auth(TokenAuth::None).await.unwrap(),
                TokenAuth::None
            );
        }
    }

    #[test]
    fn tenant_ids_are_guids_and_azp_must_name_this_client() {
        assert!(is_tenant_id("9188040d-6c67-4c5b-b112-36a304b66dad"));
        for bad in [
            "",
            "common",
            "9188040d-6c67-4c5b-b112-36a304b66da",
            "9188040d-6c67-4c5b-b112-36a304b66dadd",
            "9188040d-6c67-4c5b-b112-36a304b66daz",
            "9188040d/6c67-4c5b-b112-36a304b66dad",
        ] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
        let client = test_client(&Url::parse("https://sso.example").unwrap());
        assert_eq!(client.issuer(), "https://sso.example");
        assert_eq!(client.issuer_string(), "https://sso.example");
        for ok in [
            json!({"aud": "client"}),
            json!({"aud": ["client"]}),
            json!({"aud": ["client", "api"], "azp": "client"}),
            json!({"aud": "client", "azp": "client"}),
        ] {
            assert!(client.check_azp(&ok).is_ok(), "{ok}");
        }
        for refused in [
            json!({"aud": ["client", "api"]}),
            json!({"aud": "client", "azp": "other"}),
            json!({"aud": ["client", "api"], "azp": "other"}),
        ] {
            assert!(client.check_azp(&refused).is_err(), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_discovered_or_callback_issuer_must_be_the_configured_one() {
        let exact = test_client(&Url::parse("https://sso.example/realms/x").unwrap());
        assert!(exact.accepts_discovered_issuer("https://sso.example/realms/x"));
        assert!(exact.accepts_discovered_issuer("https://sso.example/realms/x/"));
        assert!(!exact.accepts_discovered_issuer("https://sso.example/realms/y"));
        assert!(exact
            .callback_issuer_matches("https://sso.example/realms/x/")
            .await
            .unwrap());
        assert!(!exact
            .callback_issuer_matches("https://evil.example/realms/x")
            .await
            .unwrap());
        let entra = OidcClient::new(
            Url::parse("https://login.microsoftonline.com/common/v2.0").unwrap(),
            IssuerRule::EntraTenantFromTid,
            None,
            "client".into(),
            super::super::http::build_client(),
            Budget {
                timeout: Duration::from_secs(5),
                max_body: super::super::http::MAX_ANSWER_BYTES,
            },
        );
        assert!(
            entra.accepts_discovered_issuer("https://login.microsoftonline.com/{tenantid}/v2.0")
        );
        assert!(!entra.accepts_discovered_issuer("https://login.microsoftonline.com/common/v2.0"));
        assert!(!entra.accepts_discovered_issuer("https://evil.example/{tenantid}/v2.0"));
    }

    #[test]
    fn the_payload_must_be_a_json_object_and_names_fall_back() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jws = |payload: &str| format!("h.{}.s", b64(payload));
        assert_eq!(
            unverified_payload(&jws("{\"sub\":\"1\"}")),
            Some(json!({"sub": "1"}))
        );
        assert_eq!(unverified_payload(&jws("[1]")), None);
        assert_eq!(unverified_payload("no-dots"), None);

        let p = |id: serde_json::Value| profile_from_claims(&id, None);
        assert!(p(json!({"sub": ""})).is_err());
        assert!(p(json!({"name": "x"})).is_err());
        let given = p(json!({"sub": "1", "given_name": "Ann", "family_name": "Lee"})).unwrap();
        assert_eq!(given.name.as_deref(), Some("Ann Lee"));
        let family = p(json!({"sub": "1", "family_name": "Lee"})).unwrap();
        assert_eq!(family.name.as_deref(), Some("Lee"));
        let handle = p(json!({"sub": "1", "preferred_username": "ann", "name": null})).unwrap();
        assert_eq!(handle.name.as_deref(), Some("ann"));
        let texty = p(json!({"sub": "1", "email": "a@x.test", "email_verified": "true"})).unwrap();
        assert!(texty.email_verified);
        let no = p(json!({"sub": "1", "email": "a@x.test", "email_verified": "yes"})).unwrap();
        assert!(!no.email_verified);
        // A null claim in the ID token does not hide userinfo's.
        let info = json!({"sub": "1", "picture": "https://x.test/a.png"});
        let merged =
            profile_from_claims(&json!({"sub": "1", "picture": null}), Some(&info)).unwrap();
        assert_eq!(merged.image.as_deref(), Some("https://x.test/a.png"));
    }
}
