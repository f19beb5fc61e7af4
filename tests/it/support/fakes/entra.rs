//! Microsoft Entra ID (v2.0 endpoints), multi-tenant, from learn.microsoft.com:
//! - "OpenID Connect on the Microsoft identity platform": the metadata document at
//!   `https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration`; for
//!   `common` and `organizations` its `issuer` is the template
//!   `https://login.microsoftonline.com/{tenantid}/v2.0` (the literal placeholder), and
//!   apps must check the token's `iss` against the template filled with the token's own
//!   `tid`. Endpoints `/{tenant}/oauth2/v2.0/authorize`, `/{tenant}/oauth2/v2.0/token`,
//!   `/{tenant}/discovery/v2.0/keys`; userinfo is on Graph (`/oidc/userinfo`).
//! - "ID token claims reference" (v2.0): `ver` "2.0", `iss`
//!   `https://login.microsoftonline.com/{tid}/v2.0`, `sub` (pairwise), `aud` = client id,
//!   `exp`, `iat`, `nbf`, `nonce`, `name`, `preferred_username`, `oid`, `tid`, optional
//!   `email` (not verified by Microsoft), `aio`, `rh`, `uti`. RS256.
//! - "Authorization code flow": the redirect back carries `code`, `state`,
//!   `session_state`; errors `error`, `error_description` (AADSTS...). Token endpoint
//!   (client_secret_basic or _post, `code_verifier`): `{"token_type":"Bearer","scope",
//!   "expires_in","ext_expires_in","access_token","id_token"}`; errors HTTP 400/401 with
//!   `error`, `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`.
//! - The keys at `jwks_uri` carry an `issuer` member (the same `{tenantid}` template).
use super::{
    bearer, bind, client_auth, form_post_page, now, parse_form, rs256_jwt, rsa_jwk, serve,
    with_query, AuthMethod, Pkce,
};
use aws_lc_rs::signature::RsaKeyPair;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "Xk28Q~fake.entra.secret-0123456789abcdefg";
/// The tenant of Microsoft's docs samples.
pub const TENANT_A: &str = "9122040d-6c67-4c5b-b112-36a304b66dad";
pub const TENANT_B: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

pub struct Behavior {
    /// The user's home tenant: the `tid` claim.
    pub tid: String,
    /// The tenant named in `iss`; None = `tid` (what Microsoft does).
    pub iss_tenant: Option<String>,
    pub oid: String,
    pub sub: String,
    pub name: String,
    pub preferred_username: String,
    pub email: Option<String>,
    pub authorize_error: Option<(String, String)>,
    pub claims: Box<dyn Fn(&mut Value) + Send + Sync>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            tid: TENANT_A.into(),
            iss_tenant: None,
            oid: "00000000-0000-0000-66f3-3332eca7ea81".into(),
            sub: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ".into(),
            name: "Abe Lincoln".into(),
            preferred_username: "AbeLi@microsoft.com".into(),
            email: Some("AbeLi@microsoft.com".into()),
            authorize_error: None,
            claims: Box::new(|_| {}),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenCall {
    pub tenant: String,
    pub form: HashMap<String, String>,
    pub auth_method: AuthMethod,
}

#[derive(Default)]
pub struct Seen {
    /// (tenant path segment, query)
    pub authorize: Vec<(String, HashMap<String, String>)>,
    pub token: Vec<TokenCall>,
    /// Tenant path segments of discovery requests.
    pub discovery: Vec<String>,
    pub id_tokens: Vec<String>,
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    scopes: Vec<String>,
    pkce: Pkce,
}

struct Inner {
    origin: String,
    key: RsaKeyPair,
    behavior: Mutex<Behavior>,
    codes: Mutex<HashMap<String, Grant>>,
    /// access token -> sub
    tokens: Mutex<HashMap<String, String>>,
    seen: Mutex<Seen>,
}

#[derive(Clone)]
pub struct Entra {
    inner: Arc<Inner>,
    pub origin: String,
}

const KID: &str = "nOo3ZDrODXEK1jKWhXslHR_KXEg";

fn is_multi_tenant(tenant: &str) -> bool {
    matches!(tenant, "common" | "organizations")
}

impl Entra {
    pub async fn start() -> Entra {
        let listener = bind().await;
        let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let inner = Arc::new(Inner {
            origin: origin.clone(),
            key: super::new_rsa_key(),
            behavior: Mutex::new(Behavior::default()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/oidc/userinfo", get(userinfo))
            .with_state(inner.clone());
        serve(listener, app).await;
        Entra { inner, origin }
    }

    pub fn edit(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.inner.behavior.lock().unwrap());
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.seen.lock().unwrap())
    }

    /// The issuer latch is configured with: `<origin>/common/v2.0`.
    pub fn common_issuer(&self) -> String {
        format!("{}/common/v2.0", self.origin)
    }

    pub fn provider_toml(&self) -> String {
        format!(
            "[providers.microsoft-entra-id]\npreset = \"microsoft-entra-id\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            self.common_issuer()
        )
    }
}

/// The `issuer` of a tenant's metadata: the `{tenantid}` template for multi-tenant
/// endpoints, the tenant's own issuer otherwise.
fn metadata_issuer(origin: &str, tenant: &str) -> String {
    if is_multi_tenant(tenant) {
        format!("{origin}/{{tenantid}}/v2.0")
    } else {
        format!("{origin}/{tenant}/v2.0")
    }
}

async fn discovery(State(s): State<Arc<Inner>>, Path(tenant): Path<String>) -> Json<Value> {
    s.seen.lock().unwrap().discovery.push(tenant.clone());
    let o = &s.origin;
    Json(json!({
        "token_endpoint": format!("{o}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{o}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": metadata_issuer(o, &tenant),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{o}/oidc/userinfo"),
        "authorization_endpoint": format!("{o}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{o}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{o}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{o}/{tenant}/kerberos"),
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
}

async fn keys(State(s): State<Arc<Inner>>, Path(tenant): Path<String>) -> Json<Value> {
    let mut jwk = rsa_jwk(&s.key, KID);
    jwk.as_object_mut().unwrap().remove("alg");
    jwk["x5t"] = json!(KID);
    jwk["issuer"] = json!(metadata_issuer(&s.origin, &tenant));
    Json(json!({ "keys": [jwk] }))
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333 Correlation ID: aaaa0000-bb11-2222-33cc-444444dddddd Timestamp: 2024-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2024-01-01 00:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
        })),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .authorize
        .push((tenant.clone(), q.clone()));
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application with identifier was not found in the directory.",
        );
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            700054,
            "response_type is not enabled for the application.",
        );
    }
    let b = s.behavior.lock().unwrap();
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some((error, description)) = &b.authorize_error {
        fields.push(("error".into(), error.clone()));
        fields.push(("error_description".into(), description.clone()));
    } else {
        let code = format!("0.A{}", super::random_hex(30));
        s.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                redirect_uri: redirect_uri.clone(),
                nonce: q.get("nonce").cloned(),
                scopes: q
                    .get("scope")
                    .map(|s| s.split(' ').map(String::from).collect())
                    .unwrap_or_default(),
                pkce: Pkce::from_query(&q),
            },
        );
        fields.push(("code".into(), code));
    }
    if let Some(state) = q.get("state") {
        fields.push(("state".into(), state.clone()));
    }
    if b.authorize_error.is_none() {
        fields.push((
            "session_state".into(),
            "3f4c5ab8-0000-4b4a-9c41-1f1b1b1b1b1b".into(),
        ));
    }
    if q.get("response_mode").map(String::as_str) == Some("form_post") {
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

async fn token(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = parse_form(&body);
    let auth = client_auth(&headers, &form);
    s.seen.lock().unwrap().token.push(TokenCall {
        tenant: tenant.clone(),
        form: form.clone(),
        auth_method: auth.as_ref().map(|a| a.method).unwrap_or(AuthMethod::None),
    });
    let Ok(auth) = auth else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90023,
            "Multiple client authentication methods were provided.",
        );
    };
    if auth.client_id.as_deref() != Some(CLIENT_ID) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application with identifier was not found in the directory.",
        );
    }
    if auth.client_secret.as_deref() != Some(CLIENT_SECRET) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(grant) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        );
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70009,
            "The redirect URI does not match the one used in the authorization request.",
        );
    }
    if !grant
        .pkce
        .verify(form.get("code_verifier").map(String::as_str))
    {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    let b = s.behavior.lock().unwrap();
    let now = now();
    let iss_tenant = b.iss_tenant.clone().unwrap_or_else(|| b.tid.clone());
    let mut claims = json!({
        "ver": "2.0",
        "iss": format!("{}/{iss_tenant}/v2.0", s.origin),
        "sub": b.sub,
        "aud": CLIENT_ID,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "name": b.name,
        "preferred_username": b.preferred_username,
        "oid": b.oid,
        "tid": b.tid,
        "aio": "Df2UVXL1ix!lMCWMSOJBcFatzcGfvFGhjKv8q5g0x732dR5MB5BisvGQO7YWByjd8iQDLq!eGbIDakyp5mnOrcdqHeYSnltepQmRp6AIZ8jY",
        "rh": "0.AAAA.fake.",
        "uti": super::random_hex(8),
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    if grant.scopes.iter().any(|s| s == "email") {
        if let Some(email) = &b.email {
            claims["email"] = json!(email);
        }
    }
    (b.claims)(&mut claims);
    let id_token = rs256_jwt(&s.key, KID, &claims);
    s.seen.lock().unwrap().id_tokens.push(id_token.clone());
    let access_token = format!(
        "eyJ0eXAiOiJKV1Qi.fake-graph-token.{}",
        super::random_hex(16)
    );
    s.tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), b.sub.clone());
    Json(json!({
        "token_type": "Bearer",
        "scope": "openid profile email User.Read",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access_token,
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let sub = bearer(&headers, false).and_then(|t| s.tokens.lock().unwrap().get(&t).cloned());
    let Some(sub) = sub else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}})),
        )
            .into_response();
    };
    let b = s.behavior.lock().unwrap();
    let (given, family) = b.name.split_once(' ').unwrap_or((&b.name, ""));
    let mut out = json!({
        "sub": sub,
        "name": b.name,
        "family_name": family,
        "given_name": given,
        "picture": "https://graph.microsoft.com/v1.0/me/photo/$value",
    });
    if let Some(email) = &b.email {
        out["email"] = json!(email);
    }
    Json(out).into_response()
}

/// The fake against its provider's documentation.
mod self_test {
    use super::*;
    use crate::support::fakes::{
        self, authorize_url, client, code_from, entra, fetch_json, send, VERIFIER,
    };
    use reqwest::StatusCode;
    use serde_json::Value;

    #[tokio::test]
    async fn fake_entra_behaves_like_its_docs() {
        let e = Entra::start().await;
        let c = client();
        let meta: Value = fetch_json(c.get(format!(
            "{}/.well-known/openid-configuration",
            e.common_issuer()
        )))
        .await;
        assert_eq!(meta["issuer"], format!("{}/{{tenantid}}/v2.0", e.origin));
        let keys: Value = fetch_json(c.get(meta["jwks_uri"].as_str().unwrap())).await;
        let key = &keys["keys"][0];
        let code = code_from(&authorize_url(
            meta["authorization_endpoint"].as_str().unwrap(),
            entra::CLIENT_ID,
            "openid profile email",
        ))
        .await;
        let r = send(c.post(meta["token_endpoint"].as_str().unwrap()).form(&[
            ("client_id", entra::CLIENT_ID),
            ("client_secret", entra::CLIENT_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
            (
                "code_verifier",
                "not-the-verifier-not-the-verifier-not-the-ve",
            ),
        ]))
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 501481);

        let code = code_from(&authorize_url(
            meta["authorization_endpoint"].as_str().unwrap(),
            entra::CLIENT_ID,
            "openid profile email",
        ))
        .await;
        let t: Value = fetch_json(
            c.post(meta["token_endpoint"].as_str().unwrap())
                .basic_auth(entra::CLIENT_ID, Some(entra::CLIENT_SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "http://127.0.0.1:1/callback/x"),
                    ("code_verifier", VERIFIER),
                ]),
        )
        .await;
        let id_token = t["id_token"].as_str().unwrap();
        // RS256 under the published key.
        let parts: Vec<&str> = id_token.split('.').collect();
        use base64::Engine;
        let d = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let public = aws_lc_rs::signature::RsaPublicKeyComponents {
            n: d(key["n"].as_str().unwrap()),
            e: d(key["e"].as_str().unwrap()),
        };
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &d(parts[2]),
            )
            .expect("ID token signed by the published key");
        let claims = fakes::jwt_claims(id_token);
        let template = meta["issuer"].as_str().unwrap();
        assert_eq!(
            claims["iss"],
            template.replace("{tenantid}", claims["tid"].as_str().unwrap())
        );
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["aud"], entra::CLIENT_ID);
        assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
        let info: Value = fetch_json(
            c.get(meta["userinfo_endpoint"].as_str().unwrap())
                .bearer_auth(t["access_token"].as_str().unwrap()),
        )
        .await;
        assert_eq!(info["sub"], claims["sub"]);
    }
}
