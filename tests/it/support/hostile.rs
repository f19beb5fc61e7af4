//! An in-repo OpenID provider that misbehaves on request: the cases a real provider will
//! not produce (forged signatures, wrong issuer, expired tokens, slow or broken endpoints).
use super::latch::{Setup, TestApp};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CLIENT_ID: &str = "latch-test";
pub const CLIENT_SECRET: &str = "hostile-client-secret";

/// A provider endpoint, for behaviour aimed at one of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Endpoint {
    Discovery,
    Jwks,
    Token,
    Userinfo,
}

/// An answer larger than latch reads (1 MiB): declared up front, or streamed without a length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Oversize {
    /// 2 MiB with `Content-Length`.
    Declared,
    /// 4 MiB in 64 KiB chunks, no `Content-Length`.
    Chunked,
}

/// How the ID token's header and signature are made.
#[derive(Clone, Debug, PartialEq)]
pub enum Signing {
    /// ES256 with the published key.
    Good,
    /// ES256 with a key that is not published, under the published kid.
    WrongKey,
    /// `alg: none`, empty signature.
    AlgNone,
    /// HS256 keyed with the published public key (the classic key-confusion attack).
    Hs256WithPublicKey,
    /// ES256 with the second key under its own kid (published or not, see `publish_second`).
    SecondKey,
}

pub struct Behavior {
    pub signing: Signing,
    /// Edits the default claims before signing.
    pub claims: Box<dyn Fn(&mut Value) + Send + Sync>,
    /// `iss` parameter on the redirect back: None = the right issuer.
    pub iss_param: Option<Option<String>>,
    /// Error parameter on the redirect back instead of a code.
    pub authorize_error: Option<String>,
    pub token_status: Option<u16>,
    /// An OAuth error answer from the token endpoint: HTTP status and `error`.
    pub token_error: Option<(u16, String)>,
    pub token_delay: Option<Duration>,
    /// Whether the JWKS also lists the second key.
    pub publish_second: bool,
    /// This endpoint answers 200 with a body over latch's limit.
    pub oversize: Option<(Endpoint, Oversize)>,
    /// Discovery names no `end_session_endpoint` (it names `{issuer}/logout`, which is not
    /// served: tests read latch's redirect to it and come back themselves).
    pub no_end_session: bool,
    /// Extra userinfo members (GitLab sends `groups` there, not in the ID token).
    pub userinfo_extra: Option<Value>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            signing: Signing::Good,
            claims: Box::new(|_| {}),
            iss_param: None,
            authorize_error: None,
            token_status: None,
            token_error: None,
            token_delay: None,
            publish_second: false,
            oversize: None,
            no_end_session: false,
            userinfo_extra: None,
        }
    }
}

struct Inner {
    issuer: String,
    key: EcdsaKeyPair,
    other_key: EcdsaKeyPair,
    second_key: EcdsaKeyPair,
    behavior: Mutex<Behavior>,
    /// code -> nonce
    codes: Mutex<HashMap<String, Option<String>>>,
    pub jwks_hits: AtomicUsize,
}

#[derive(Clone)]
pub struct Hostile {
    inner: Arc<Inner>,
    pub issuer: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(key: &EcdsaKeyPair, kid: &str) -> Value {
    let point = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": kid, "alg": "ES256", "use": "sig"})
}

impl Hostile {
    pub async fn start() -> Hostile {
        let (listener, issuer) = super::stub::listen().await;
        let gen = || EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            key: gen(),
            other_key: gen(),
            second_key: gen(),
            behavior: Mutex::new(Behavior::default()),
            codes: Mutex::new(HashMap::new()),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        super::stub::spawn(listener, app);
        Hostile { inner, issuer }
    }

    pub fn set(&self, behavior: Behavior) {
        *self.inner.behavior.lock().unwrap() = behavior;
    }

    pub fn jwks_hits(&self) -> usize {
        self.inner.jwks_hits.load(Ordering::SeqCst)
    }

    /// A hostile provider behaving as `behavior`, and latch (`setup`, with its providers
    /// replaced) with it as its one provider.
    pub async fn with_app(behavior: Behavior, setup: Setup) -> (Hostile, TestApp) {
        let hostile = Hostile::start().await;
        hostile.set(behavior);
        let app = setup.with_providers(hostile.provider_toml()).spawn().await;
        (hostile, app)
    }

    /// A Logout Token (Back-Channel Logout 1.0) for the account the hostile provider signs in
    /// (`sub` "hostile-user-1"), with a fresh `jti`, signed as `signing`, after `edit`.
    pub fn logout_token(&self, signing: Signing, edit: impl Fn(&mut Value)) -> String {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": chrono::Utc::now().timestamp(),
            "jti": format!("jti-{}", rand_suffix()),
            "sub": "hostile-user-1",
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        edit(&mut claims);
        sign(&self.inner, &signing, &claims)
    }

    /// The issuer's end-session endpoint (in discovery unless `no_end_session`).
    pub fn end_session_endpoint(&self) -> String {
        format!("{}/logout", self.issuer)
    }

    /// The `[providers.hostile]` table for latch.
    pub fn provider_toml(&self) -> String {
        format!(
            "[providers.hostile]\ntype = \"oidc\"\nname = \"Hostile\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\ntimeout = \"2s\"\n",
            self.issuer
        )
    }
}

/// `value` as JSON, or, when the behaviour makes `endpoint` oversized, the same JSON followed
/// by megabytes of whitespace: still a valid answer, so only a size limit refuses it.
fn answer(s: &Inner, endpoint: Endpoint, value: Value) -> Response {
    let shape = match s.behavior.lock().unwrap().oversize {
        Some((at, shape)) if at == endpoint => shape,
        _ => return Json(value).into_response(),
    };
    let json = bytes::Bytes::from(value.to_string());
    let body = match shape {
        Oversize::Declared => {
            let mut all = json.to_vec();
            all.resize(2 << 20, b' ');
            axum::body::Body::from(all)
        }
        Oversize::Chunked => {
            let padding = (0..64).map(|_| bytes::Bytes::from(vec![b' '; 64 << 10]));
            let chunks = std::iter::once(json)
                .chain(padding)
                .map(Ok::<_, std::io::Error>);
            axum::body::Body::from_stream(futures_util::stream::iter(chunks))
        }
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

async fn discovery(State(s): State<Arc<Inner>>) -> Response {
    let mut document = super::stub::discovery(&s.issuer, "ES256");
    if !s.behavior.lock().unwrap().no_end_session {
        document["end_session_endpoint"] = json!(format!("{}/logout", s.issuer));
    }
    answer(&s, Endpoint::Discovery, document)
}

async fn jwks(State(s): State<Arc<Inner>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mut keys = vec![jwk(&s.key, "main")];
    if s.behavior.lock().unwrap().publish_second {
        keys.push(jwk(&s.second_key, "second"));
    }
    answer(&s, Endpoint::Jwks, json!({ "keys": keys }))
}

/// Redirects straight back to the client (no login page): with a code, or an error.
async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let b = s.behavior.lock().unwrap();
    let mut url = url::Url::parse(&q["redirect_uri"]).unwrap();
    {
        let mut pairs = url.query_pairs_mut();
        match &b.authorize_error {
            Some(error) => {
                pairs.append_pair("error", error);
            }
            None => {
                let code = format!("code-{}", rand_suffix());
                s.codes
                    .lock()
                    .unwrap()
                    .insert(code.clone(), q.get("nonce").cloned());
                pairs.append_pair("code", &code);
            }
        }
        if let Some(state) = q.get("state") {
            pairs.append_pair("state", state);
        }
        match &b.iss_param {
            None => {
                pairs.append_pair("iss", &s.issuer);
            }
            Some(Some(iss)) => {
                pairs.append_pair("iss", iss);
            }
            Some(None) => {}
        }
    }
    (StatusCode::FOUND, [("location", url.to_string())]).into_response()
}

fn rand_suffix() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::SeqCst))
}

fn sign(s: &Inner, signing: &Signing, claims: &Value) -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let (alg, kid) = match signing {
        Signing::AlgNone => ("none", "main"),
        Signing::Hs256WithPublicKey => ("HS256", "main"),
        Signing::SecondKey => ("ES256", "second"),
        _ => ("ES256", "main"),
    };
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match signing {
        Signing::Good => s
            .key
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        Signing::WrongKey => s
            .other_key
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        Signing::SecondKey => s
            .second_key
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        Signing::AlgNone => Vec::new(),
        Signing::Hs256WithPublicKey => {
            let public = jwk(&s.key, "main").to_string();
            let mut mac = Hmac::<Sha256>::new_from_slice(public.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", b64(&signature))
}

async fn token(State(s): State<Arc<Inner>>, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (delay, status, error) = {
        let b = s.behavior.lock().unwrap();
        (b.token_delay, b.token_status, b.token_error.clone())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = status {
        return (
            StatusCode::from_u16(status).unwrap(),
            "<html>upstream exploded</html>",
        )
            .into_response();
    }
    if let Some((status, error)) = error {
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"error": error, "error_description": "refused by the hostile provider"})),
        )
            .into_response();
    }
    let Some(nonce) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": s.issuer,
        "sub": "hostile-user-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "email": "mallory@example.test",
        "email_verified": true,
        "name": "Mallory",
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let b = s.behavior.lock().unwrap();
    (b.claims)(&mut claims);
    let id_token = sign(&s, &b.signing, &claims);
    let tokens = json!({"access_token": "hostile-access", "token_type": "Bearer", "expires_in": 300, "id_token": id_token});
    drop(b);
    answer(&s, Endpoint::Token, tokens)
}

async fn userinfo(State(s): State<Arc<Inner>>) -> Response {
    let mut claims = json!({"sub": "hostile-user-1", "email": "mallory@example.test", "email_verified": true, "name": "Mallory"});
    if let Some(Value::Object(extra)) = s.behavior.lock().unwrap().userinfo_extra.clone() {
        claims.as_object_mut().unwrap().extend(extra);
    }
    answer(&s, Endpoint::Userinfo, claims)
}
