//! Sign in with Apple (REST, for the web), from developer.apple.com/documentation/
//! sign_in_with_apple ("Request an authorization to the Sign in with Apple server",
//! "Incorporating Sign in with Apple into other platforms", "Generate and validate tokens",
//! "Creating a client secret", "Authenticating users with Sign in with Apple", ErrorResponse)
//! and appleid.apple.com/.well-known/openid-configuration:
//! - Discovery: `authorization_endpoint` `/auth/authorize`, `token_endpoint` `/auth/token`,
//!   `jwks_uri` `/auth/keys`, `response_modes_supported` [query, fragment, form_post],
//!   `id_token_signing_alg_values_supported` [RS256], `token_endpoint_auth_methods_supported`
//!   [client_secret_post], `scopes_supported` [openid, email, name], no userinfo endpoint.
//! - `GET /auth/authorize`: `response_mode=form_post` is required when `name` or `email` is
//!   requested; the answer is a page whose form POSTs `code`, `state` and, on the user's
//!   first authorization of the app only, `user` = `{"name":{"firstName","lastName"},
//!   "email"}` to the redirect URI. A cancelled sign-in posts `error=user_cancelled_authorize`.
//! - `POST /auth/token` (form, `client_secret_post`): `client_id`, `client_secret`, `code`,
//!   `grant_type=authorization_code`, `redirect_uri`. The client secret is an ES256 JWT,
//!   header `kid` = the key id, claims `iss` = team id, `iat`, `exp` (at most 15777000 s,
//!   six months, after `iat`), `aud` = `https://appleid.apple.com`, `sub` = client id.
//!   Errors: HTTP 400 `{"error":"invalid_client"}` / `invalid_grant` / `invalid_request` /
//!   `unsupported_grant_type`. Success: `{"access_token","token_type":"Bearer",
//!   "expires_in":3600,"refresh_token","id_token"}`.
//! - ID token: RS256; `iss`, `sub`, `aud` = client id, `iat`, `exp`, `nonce`,
//!   `nonce_supported`, `email`, `email_verified` and `is_private_email` as the strings
//!   "true"/"false" (or booleans), `auth_time`, `real_user_status`. Never the name.
use super::{
    bind, es256_jwt_with_header, form_post_page, now, parse_form, pkcs8_pem, rs256_jwt, rsa_jwk,
    serve, verify_es256, with_query,
};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "com.example.latch.web";
pub const TEAM_ID: &str = "ABCDE12345";
pub const KEY_ID: &str = "KEYID67890";
/// The `aud` Apple requires in the client secret.
pub const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// Six months, the longest a client secret may live.
pub const MAX_SECRET_LIFETIME: i64 = 15_777_000;

pub struct Behavior {
    pub sub: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `email_verified` in the ID token; Apple documents a string or a boolean.
    pub email_verified: Value,
    pub is_private_email: Value,
    /// The `aud` the client secret must carry.
    pub expected_aud: String,
    /// Post this `error` back instead of a code (`user_cancelled_authorize`).
    pub authorize_error: Option<String>,
    /// Edits the ID token claims before signing.
    pub claims: Box<dyn Fn(&mut Value) + Send + Sync>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            sub: "001234.0a1b2c3d4e5f67890a1b2c3d4e5f6789.1234".into(),
            email: "ada@privaterelay.appleid.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email_verified: json!("true"),
            is_private_email: json!("true"),
            expected_aud: APPLE_AUDIENCE.into(),
            authorize_error: None,
            claims: Box::new(|_| {}),
        }
    }
}

/// What the token endpoint made of one client secret: its header and claims, or why it
/// was refused.
pub type SecretCheck = Result<(Value, Value), String>;

#[derive(Default)]
pub struct Seen {
    pub authorize: Vec<HashMap<String, String>>,
    /// The fields of each form_post page handed to the browser.
    pub posted: Vec<Vec<(String, String)>>,
    pub token: Vec<HashMap<String, String>>,
    pub client_secrets: Vec<SecretCheck>,
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
}

struct Inner {
    issuer: String,
    /// Apple's ID-token signing key.
    signing_key: RsaKeyPair,
    /// The developer's Sign in with Apple key (the .p8 file): latch signs client secrets
    /// with it, the fake checks them with its public half.
    client_key: EcdsaKeyPair,
    behavior: Mutex<Behavior>,
    /// Whether the user has authorized the app before (then no `user` field).
    authorized_before: Mutex<bool>,
    codes: Mutex<HashMap<String, Grant>>,
    seen: Mutex<Seen>,
}

#[derive(Clone)]
pub struct Apple {
    inner: Arc<Inner>,
    pub issuer: String,
}

const SIGNING_KID: &str = "fake-apple-rs256";

impl Apple {
    pub async fn start() -> Apple {
        let listener = bind().await;
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            signing_key: super::new_rsa_key(),
            client_key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            behavior: Mutex::new(Behavior::default()),
            authorized_before: Mutex::new(false),
            codes: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/auth/keys", get(keys))
            .route("/auth/authorize", get(authorize))
            .route("/auth/token", post(token))
            .with_state(inner.clone());
        serve(listener, app).await;
        Apple { inner, issuer }
    }

    pub fn edit(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.inner.behavior.lock().unwrap());
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.seen.lock().unwrap())
    }

    /// The user removes the app in their Apple ID settings: the next authorization is a
    /// first one again and carries `user`.
    pub fn forget_authorization(&self) {
        *self.inner.authorized_before.lock().unwrap() = false;
    }

    /// The developer's private key as Apple hands it out (.p8: PKCS#8 PEM, P-256).
    pub fn private_key_pem(&self) -> String {
        pkcs8_pem(self.inner.client_key.to_pkcs8v1().unwrap().as_ref())
    }

    /// Writes the .p8 file into `dir` and returns its path.
    pub fn write_private_key(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("AuthKey_{KEY_ID}.p8"));
        std::fs::write(&path, self.private_key_pem()).unwrap();
        path
    }

    /// A client secret signed with the developer key, for checking the fake itself.
    pub fn make_client_secret(&self, header: &Value, claims: &Value) -> String {
        es256_jwt_with_header(&self.inner.client_key, header, claims)
    }

    /// `[providers.apple]` for latch, with the key file at `private_key_file`.
    pub fn provider_toml(&self, private_key_file: &Path) -> String {
        format!(
            "[providers.apple]\npreset = \"apple\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nprivate_key_file = \"{}\"\n",
            self.issuer,
            private_key_file.display()
        )
    }
}

async fn discovery(State(s): State<Arc<Inner>>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth/authorize"),
        "token_endpoint": format!("{i}/auth/token"),
        "revocation_endpoint": format!("{i}/auth/revoke"),
        "jwks_uri": format!("{i}/auth/keys"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "name"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "is_private_email", "iss", "nonce", "nonce_supported", "real_user_status", "sub", "transfer_sub"],
    }))
}

async fn keys(State(s): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({"keys": [rsa_jwk(&s.signing_key, SIGNING_KID)]}))
}

fn invalid_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "error_description": msg})),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.seen.lock().unwrap().authorize.push(q.clone());
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let response_type = q.get("response_type").cloned().unwrap_or_default();
    if !response_type.split(' ').any(|t| t == "code") {
        return invalid_request("response_type must include code");
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return invalid_request("redirect_uri is required");
    };
    let scopes: Vec<&str> = q
        .get("scope")
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let wants_name = scopes.contains(&"name");
    let wants_email = scopes.contains(&"email");
    let form_post = q.get("response_mode").map(String::as_str) == Some("form_post");
    if (wants_name || wants_email) && !form_post {
        return invalid_request(
            "response_mode must be form_post when name or email scope is requested",
        );
    }
    let b = s.behavior.lock().unwrap();
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some(error) = &b.authorize_error {
        fields.push(("error".into(), error.clone()));
    } else {
        let code = format!("c{}.0.nrrs.{}", super::random_hex(16), super::random_hex(8));
        s.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                redirect_uri: redirect_uri.clone(),
                nonce: q.get("nonce").cloned(),
            },
        );
        fields.push(("code".into(), code));
    }
    if let Some(state) = q.get("state") {
        fields.push(("state".into(), state.clone()));
    }
    if b.authorize_error.is_none() {
        let mut first = s.authorized_before.lock().unwrap();
        if !*first && (wants_name || wants_email) {
            let mut user = serde_json::Map::new();
            if wants_name {
                user.insert(
                    "name".into(),
                    json!({"firstName": b.first_name, "lastName": b.last_name}),
                );
            }
            if wants_email {
                user.insert("email".into(), json!(b.email));
            }
            fields.push(("user".into(), Value::Object(user).to_string()));
        }
        *first = true;
    }
    if form_post {
        s.seen.lock().unwrap().posted.push(fields.clone());
        form_post_page(&redirect_uri, &fields).into_response()
    } else {
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        (
            StatusCode::FOUND,
            [("location", with_query(&redirect_uri, &pairs))],
        )
            .into_response()
    }
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// Apple's checks on the client secret JWT.
fn check_client_secret(
    s: &Inner,
    secret: &str,
    client_id: &str,
    expected_aud: &str,
) -> SecretCheck {
    let (header, claims) = verify_es256(secret, s.client_key.public_key().as_ref())?;
    if header["kid"] != KEY_ID {
        return Err(format!("kid is {}, not {KEY_ID}", header["kid"]));
    }
    if claims["iss"] != TEAM_ID {
        return Err(format!(
            "iss is {}, not the team id {TEAM_ID}",
            claims["iss"]
        ));
    }
    if claims["sub"] != client_id {
        return Err(format!(
            "sub is {}, not the client id {client_id}",
            claims["sub"]
        ));
    }
    if claims["aud"] != expected_aud {
        return Err(format!("aud is {}, not {expected_aud}", claims["aud"]));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("iat and exp must be numeric dates".into());
    };
    let now = now();
    if iat > now + 60 {
        return Err(format!("iat {iat} is in the future"));
    }
    if exp <= now {
        return Err(format!("expired at {exp}"));
    }
    if exp - iat > MAX_SECRET_LIFETIME {
        return Err(format!(
            "lives {} s, more than six months ({MAX_SECRET_LIFETIME} s)",
            exp - iat
        ));
    }
    Ok((header, claims))
}

/// client_secret_post only: credentials in an Authorization header are not read, so a
/// client using HTTP Basic gets `invalid_client`.
async fn token(State(s): State<Arc<Inner>>, body: String) -> Response {
    let form = parse_form(&body);
    s.seen.lock().unwrap().token.push(form.clone());
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if client_id != CLIENT_ID {
        return oauth_error("invalid_client");
    }
    let Some(secret) = form.get("client_secret") else {
        return oauth_error("invalid_client");
    };
    let expected_aud = s.behavior.lock().unwrap().expected_aud.clone();
    let check = check_client_secret(&s, secret, &client_id, &expected_aud);
    let ok = check.is_ok();
    s.seen.lock().unwrap().client_secrets.push(check);
    if !ok {
        return oauth_error("invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("unsupported_grant_type");
    }
    let Some(grant) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return oauth_error("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error("invalid_grant");
    }
    let b = s.behavior.lock().unwrap();
    let now = now();
    let mut claims = json!({
        "iss": s.issuer,
        "aud": CLIENT_ID,
        "exp": now + 86400,
        "iat": now,
        "sub": b.sub,
        "c_hash": "fake",
        "email": b.email,
        "email_verified": b.email_verified,
        "is_private_email": b.is_private_email,
        "auth_time": now,
        "nonce_supported": true,
        "real_user_status": 2,
    });
    if let Some(nonce) = grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    (b.claims)(&mut claims);
    let id_token = rs256_jwt(&s.signing_key, SIGNING_KID, &claims);
    Json(json!({
        "access_token": format!("a{}.0.nrrs.{}", super::random_hex(16), super::random_hex(8)),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": format!("r{}.0.nrrs.{}", super::random_hex(16), super::random_hex(8)),
        "id_token": id_token,
    }))
    .into_response()
}

/// The fake against its provider's documentation.
mod self_test {
    use super::*;
    use crate::support::fakes::{self, apple, authorize_url, client, parse_form_post, send};
    use reqwest::StatusCode;
    use serde_json::{json, Value};

    #[tokio::test]
    async fn fake_apple_behaves_like_its_docs() {
        let a = Apple::start().await;
        let c = client();
        let auth = format!("{}/auth/authorize", a.issuer);
        // name/email scopes need form_post.
        let r = send(c.get(authorize_url(&auth, apple::CLIENT_ID, "name email"))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let with_form_post = format!(
            "{}&response_mode=form_post",
            authorize_url(&auth, apple::CLIENT_ID, "name email")
        );
        let page = c
            .get(&with_form_post)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (action, fields) = parse_form_post(&page);
        assert_eq!(action, "http://127.0.0.1:1/callback/x");
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let user: Value =
            serde_json::from_str(&field("user").expect("user on first authorization")).unwrap();
        assert_eq!(user["name"]["firstName"], "Ada");
        assert_eq!(user["email"], "ada@privaterelay.appleid.com");
        let code = field("code").unwrap();
        let page = c
            .get(&with_form_post)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            parse_form_post(&page).1.iter().all(|(k, _)| k != "user"),
            "only the first time"
        );

        let now = fakes::now();
        let header = json!({"alg": "ES256", "kid": apple::KEY_ID});
        let claims = |aud: &str, exp: i64| json!({"iss": apple::TEAM_ID, "iat": now, "exp": exp, "aud": aud, "sub": apple::CLIENT_ID});
        let post = |secret: String, code: String| {
            c.post(format!("{}/auth/token", a.issuer))
                .form(&[
                    ("client_id", apple::CLIENT_ID.to_string()),
                    ("client_secret", secret),
                    ("code", code),
                    ("grant_type", "authorization_code".into()),
                    ("redirect_uri", "http://127.0.0.1:1/callback/x".into()),
                ])
                .send()
        };
        let error = |r: reqwest::Response| async move {
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            r.json::<Value>().await.unwrap()["error"]
                .as_str()
                .unwrap()
                .to_string()
        };
        // Wrong aud, too long a life, wrong kid: invalid_client.
        let bad = a.make_client_secret(&header, &claims("https://example.com", now + 600));
        assert_eq!(
            error(post(bad, code.clone()).await.unwrap()).await,
            "invalid_client"
        );
        let bad = a.make_client_secret(
            &header,
            &claims(apple::APPLE_AUDIENCE, now + apple::MAX_SECRET_LIFETIME + 10),
        );
        assert_eq!(
            error(post(bad, code.clone()).await.unwrap()).await,
            "invalid_client"
        );
        let bad = a.make_client_secret(
            &json!({"alg": "ES256", "kid": "OTHER"}),
            &claims(apple::APPLE_AUDIENCE, now + 600),
        );
        assert_eq!(
            error(post(bad, code.clone()).await.unwrap()).await,
            "invalid_client"
        );
        // A good secret: the ID token, with Apple's string booleans and no name.
        let good = a.make_client_secret(&header, &claims(apple::APPLE_AUDIENCE, now + 600));
        let r = post(good.clone(), code.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let t: Value = r.json().await.unwrap();
        let id = fakes::jwt_claims(t["id_token"].as_str().unwrap());
        assert_eq!(id["iss"], a.issuer.as_str());
        assert_eq!(id["aud"], apple::CLIENT_ID);
        assert_eq!(id["email_verified"], "true");
        assert_eq!(id["is_private_email"], "true");
        assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
        assert!(id.get("name").is_none());
        assert_eq!(
            error(post(good, code).await.unwrap()).await,
            "invalid_grant",
            "code single use"
        );
        // The PEM is PKCS#8 that aws-lc-rs reads back.
        let pem = a.private_key_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
        )
        .expect("PKCS#8 P-256");
    }
}
