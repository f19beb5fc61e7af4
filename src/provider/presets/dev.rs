//! The development OpenID provider (`preset = "dev"`): a tiny, honest OP mounted inside
//! latch so the sample config signs in on a laptop with no credentials. latch talks to it
//! through the same discovery, token exchange and ID token verification as any provider.
//! Configuration refuses it unless `public_url` is a loopback host.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use url::Url;

use super::{BuiltIn, Entry, Kind, Mount, Preset, Table, OIDC};
use crate::config::types::{IssuerRule, ProviderConfig, Secret};
use crate::config::urls::is_loopback;
use crate::crypto::{constant_time_eq, random_token, sha256_b64url, sha256_hex};
use crate::jws::SigningKey;
use crate::provider::http::Budget;
use crate::provider::oidc::OidcClient;

pub struct Dev;

static ENTRY: Entry = Entry {
    id: "dev",
    label: "Development login",
    kind: Kind::Dev,
    client_id: Some("latch-dev"),
    logo: false,
    ..OIDC
};

impl Preset for Dev {
    fn entry(&self) -> &'static Entry {
        &ENTRY
    }

    fn refuses(&self, key: &str) -> Option<&'static str> {
        match key {
            "client_secret" => Some("does not apply to preset \"dev\": the dev provider makes its own"),
            "issuer" | "token_endpoint_auth_method" | "response_mode" | "authorization_params" => {
                Some("does not apply to preset \"dev\": the dev provider is built into latch")
            }
            _ => None,
        }
    }

    /// Anyone may sign in as any user: only where `public_url` is a loopback address.
    fn check_server(&self, t: &mut Table) -> bool {
        let Some(url) = t.public_url else {
            return false; // an invalid public_url is reported on its own
        };
        if url.host().is_some_and(|h| is_loopback(&h)) {
            return true;
        }
        let message = format!(
            "preset \"dev\" lets anyone sign in as any user, so it is only allowed when server.public_url is a loopback address (localhost, 127.0.0.1, [::1]); server.public_url is \"{url}\". Remove this provider outside development."
        );
        t.err("preset", message);
        false
    }

    /// Served at `/dev/{id}` on latch itself; latch reaches its back channel (discovery,
    /// token, JWKS) on the listener's own address.
    fn built_in(&self, pc: &ProviderConfig, http: &reqwest::Client, at: Mount) -> Option<BuiltIn> {
        let path = format!("{}/dev/{}", at.base_path, pc.id);
        let issuer = Url::parse(&format!("{}/dev/{}", at.public_base, pc.id)).ok()?;
        let back_channel = back_channel_base(at.local_addr, &path);
        let dev = Arc::new(DevProvider::new(
            issuer.clone(),
            back_channel.clone(),
            pc.client_id.clone(),
            at.callback_url.to_string(),
        ));
        let oidc = OidcClient::new(
            issuer,
            IssuerRule::Exact,
            Some(back_channel),
            pc.client_id.clone(),
            http.clone(),
            Budget::of(pc),
        );
        Some(BuiltIn {
            oidc,
            client_secret: Secret::new(dev.client_secret().as_bytes().to_vec()),
            dev,
        })
    }
}

const CODE_TTL: Duration = Duration::from_secs(60);
const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Where latch reaches its own dev provider: the listener's address, not the public URL
/// (behind a proxy or in a container the public URL may not route back to this process).
pub fn back_channel_base(local_addr: SocketAddr, path: &str) -> Url {
    let ip = match local_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, local_addr.port());
    Url::parse(&format!("http://{addr}{path}")).expect("socket address and path form a URL")
}

struct Grant {
    email: String,
    name: Option<String>,
    /// `groups` of the ID token (comma-separated on the page), for trying policies.
    groups: Vec<String>,
    nonce: Option<String>,
    code_challenge: String,
    expires: Instant,
}

struct Issued {
    claims: Value,
    expires: Instant,
}

pub struct DevProvider {
    issuer: Url,
    back_channel: Url,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    key: SigningKey,
    codes: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, Issued>>,
}

/// An authorization request as the dev provider checks it.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub scope: String,
}

/// A token endpoint refusal: HTTP status and OAuth error code.
pub struct TokenError(pub u16, pub &'static str, pub &'static str);

impl DevProvider {
    pub fn new(issuer: Url, back_channel: Url, client_id: String, redirect_uri: String) -> Self {
        DevProvider {
            issuer,
            back_channel,
            client_id,
            client_secret: random_token(32),
            redirect_uri,
            key: SigningKey::generate(),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    fn issuer_str(&self) -> String {
        crate::provider::oidc::issuer_string(&self.issuer)
    }

    pub fn discovery(&self) -> Value {
        let issuer = self.issuer_str();
        let back = self.back_channel.as_str().trim_end_matches('/');
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{back}/token"),
            "userinfo_endpoint": format!("{back}/userinfo"),
            "jwks_uri": format!("{back}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.public_jwk()] })
    }

    /// Checks an authorization request; the error text is shown on the provider's page.
    pub fn check_authorize(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<AuthorizeRequest, String> {
        let get = |k: &str| params.get(k).cloned();
        let client_id = get("client_id").ok_or("client_id is missing")?;
        if client_id != self.client_id {
            return Err(format!("unknown client_id {client_id:?}"));
        }
        let redirect_uri = get("redirect_uri").ok_or("redirect_uri is missing")?;
        if redirect_uri != self.redirect_uri {
            return Err(format!("redirect_uri {redirect_uri:?} is not registered"));
        }
        if get("response_type").as_deref() != Some("code") {
            return Err("response_type must be \"code\"".into());
        }
        if get("code_challenge_method").as_deref() != Some("S256") {
            return Err("PKCE with code_challenge_method=S256 is required".into());
        }
        let code_challenge = get("code_challenge")
            .filter(|c| c.len() >= 43 && c.len() <= 128)
            .ok_or("code_challenge is missing or malformed")?;
        Ok(AuthorizeRequest {
            client_id,
            redirect_uri,
            state: get("state"),
            nonce: get("nonce"),
            code_challenge,
            scope: get("scope").unwrap_or_default(),
        })
    }

    /// Records a sign-in as `email` and returns the redirect back to the client.
    pub fn approve(
        &self,
        request: &AuthorizeRequest,
        email: &str,
        name: Option<&str>,
        groups: Option<&str>,
    ) -> Result<String, String> {
        let email = email.trim();
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') || d == "localhost");
        if !valid {
            return Err("enter an email address like ada@example.com".into());
        }
        let code = random_token(32);
        let mut codes = self.codes.lock().expect("dev provider lock");
        codes.retain(|_, g| g.expires > Instant::now());
        codes.insert(
            sha256_hex(&code),
            Grant {
                email: email.to_string(),
                name: name
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                groups: groups
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                expires: Instant::now() + CODE_TTL,
            },
        );
        let mut url = Url::parse(&request.redirect_uri).map_err(|e| e.to_string())?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(state) = &request.state {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &self.issuer_str());
        }
        Ok(url.to_string())
    }

    /// The token endpoint: client authentication, single-use code, PKCE, then an ID token.
    pub fn token(
        &self,
        basic: Option<(String, String)>,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let (client_id, secret) = basic
            .or_else(|| {
                Some((
                    form.get("client_id")?.clone(),
                    form.get("client_secret")?.clone(),
                ))
            })
            .ok_or(TokenError(
                401,
                "invalid_client",
                "client authentication is required",
            ))?;
        if client_id != self.client_id || !constant_time_eq(&secret, &self.client_secret) {
            return Err(TokenError(
                401,
                "invalid_client",
                "unknown client or wrong secret",
            ));
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err(TokenError(
                400,
                "unsupported_grant_type",
                "only authorization_code",
            ));
        }
        if form.get("redirect_uri") != Some(&self.redirect_uri) {
            return Err(TokenError(
                400,
                "invalid_grant",
                "redirect_uri does not match",
            ));
        }
        let code = form
            .get("code")
            .ok_or(TokenError(400, "invalid_request", "code is missing"))?;
        let grant = self
            .codes
            .lock()
            .expect("dev provider lock")
            .remove(&sha256_hex(code))
            .filter(|g| g.expires > Instant::now())
            .ok_or(TokenError(
                400,
                "invalid_grant",
                "unknown, expired or used code",
            ))?;
        let verifier = form.get("code_verifier").ok_or(TokenError(
            400,
            "invalid_grant",
            "code_verifier is missing",
        ))?;
        if !constant_time_eq(&sha256_b64url(verifier.as_bytes()), &grant.code_challenge) {
            return Err(TokenError(400, "invalid_grant", "PKCE verification failed"));
        }
        let now = chrono::Utc::now().timestamp();
        let subject = format!("dev-{}", &sha256_hex(&grant.email.to_lowercase())[..20]);
        let name = grant.name.clone().unwrap_or_else(|| {
            grant
                .email
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        let mut profile = json!({
            "sub": subject,
            "email": grant.email,
            "email_verified": true,
            "name": name,
        });
        if !grant.groups.is_empty() {
            profile["groups"] = json!(grant.groups);
        }
        let mut id_claims = profile.clone();
        id_claims["iss"] = json!(self.issuer_str());
        id_claims["aud"] = json!(self.client_id);
        id_claims["iat"] = json!(now);
        id_claims["auth_time"] = json!(now);
        id_claims["exp"] = json!(now + TOKEN_TTL.as_secs() as i64);
        if let Some(nonce) = &grant.nonce {
            id_claims["nonce"] = json!(nonce);
        }
        let access_token = random_token(32);
        let mut tokens = self.access_tokens.lock().expect("dev provider lock");
        tokens.retain(|_, t| t.expires > Instant::now());
        tokens.insert(
            sha256_hex(&access_token),
            Issued {
                claims: profile,
                expires: Instant::now() + TOKEN_TTL,
            },
        );
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL.as_secs(),
            "id_token": self.key.sign(&id_claims),
            "scope": "openid email profile",
        }))
    }

    pub fn userinfo(&self, access_token: &str) -> Option<Value> {
        let tokens = self.access_tokens.lock().expect("dev provider lock");
        tokens
            .get(&sha256_hex(access_token))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.claims.clone())
    }
}
