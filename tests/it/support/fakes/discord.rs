//! Discord's OAuth2, from discord.com/developers/docs/topics/oauth2 and .../resources/user:
//! - `GET https://discord.com/oauth2/authorize` (response_type=code, client_id, scope
//!   space-separated, state, redirect_uri, prompt) redirects back with `code` and `state`;
//!   a declined request with `error=access_denied` and `error_description`.
//! - `POST https://discord.com/api/oauth2/token`, form-encoded `grant_type=authorization_code`,
//!   `code`, `redirect_uri`, client credentials by HTTP Basic or in the body; answers
//!   `{"access_token","token_type":"Bearer","expires_in":604800,"refresh_token","scope"}`.
//!   Errors are RFC 6749 JSON: 400 `{"error":"invalid_grant","error_description":"Invalid
//!   \"code\" in request."}`, 401 `{"error":"invalid_client"}`.
//! - `GET https://discord.com/api/users/@me` with `Authorization: Bearer`: the user object
//!   (id snowflake string, username, discriminator "0" after the username migration,
//!   global_name, avatar hash or null, and `email` / `verified` only with the `email`
//!   scope). Unauthorized: 401 `{"message":"401: Unauthorized","code":0}`.
//! - Avatars (docs "Image Formatting"): `https://cdn.discordapp.com/avatars/{id}/{hash}.png`
//!   (`.gif` for hashes starting `a_`); no avatar: `embed/avatars/{(id >> 22) % 6}.png`.
use super::{bearer, bind, client_auth, parse_form, serve, with_query, AuthMethod, Pkce};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "1234567890123456789";
pub const CLIENT_SECRET: &str = "discord-fake-secret-abcdefghijklmnop";

pub struct Behavior {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    pub verified: bool,
    /// Force this `(status, body)` from the token endpoint.
    pub token_error: Option<(u16, Value)>,
    pub authorize_error: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            id: "80351110224678912".into(),
            username: "nelly".into(),
            global_name: Some("Nelly".into()),
            avatar: Some("8342729096ea3675442027381ff50dfe".into()),
            email: Some("nelly@discord.com".into()),
            verified: true,
            token_error: None,
            authorize_error: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenCall {
    pub form: HashMap<String, String>,
    pub auth_method: AuthMethod,
}

#[derive(Default)]
pub struct Seen {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<TokenCall>,
    /// Authorization headers on `/users/@me`.
    pub userinfo: Vec<Option<String>>,
}

struct Grant {
    redirect_uri: String,
    scopes: Vec<String>,
    pkce: Pkce,
}

struct Inner {
    behavior: Mutex<Behavior>,
    codes: Mutex<HashMap<String, Grant>>,
    tokens: Mutex<HashMap<String, Vec<String>>>,
    seen: Mutex<Seen>,
}

#[derive(Clone)]
pub struct Discord {
    inner: Arc<Inner>,
    pub origin: String,
}

impl Discord {
    pub async fn start() -> Discord {
        let listener = bind().await;
        let inner = Arc::new(Inner {
            behavior: Mutex::new(Behavior::default()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/api/oauth2/token", post(token))
            .route("/api/users/@me", get(me))
            .with_state(inner.clone());
        let origin = serve(listener, app).await;
        Discord { inner, origin }
    }

    pub fn edit(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.inner.behavior.lock().unwrap());
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.seen.lock().unwrap())
    }

    pub fn provider_toml(&self) -> String {
        let o = &self.origin;
        format!(
            "[providers.discord]\npreset = \"discord\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorization_url = \"{o}/oauth2/authorize\"\ntoken_url = \"{o}/api/oauth2/token\"\nuserinfo_url = \"{o}/api/users/@me\"\n"
        )
    }
}

/// The avatar URL Discord's docs build from a user object.
pub fn avatar_url(id: &str, avatar: Option<&str>) -> String {
    match avatar {
        Some(hash) => {
            let ext = if hash.starts_with("a_") { "gif" } else { "png" };
            format!("https://cdn.discordapp.com/avatars/{id}/{hash}.{ext}")
        }
        None => {
            let index = (id.parse::<u64>().unwrap_or(0) >> 22) % 6;
            format!("https://cdn.discordapp.com/embed/avatars/{index}.png")
        }
    }
}

async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.seen.lock().unwrap().authorize.push(q.clone());
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_string()).into_response();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad("Unknown application");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad("unsupported response_type");
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return bad("Invalid OAuth2 redirect_uri");
    };
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let b = s.behavior.lock().unwrap();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(error) = &b.authorize_error {
        pairs.push(("error", error.clone()));
        pairs.push((
            "error_description",
            "The resource owner or authorization server denied the request".into(),
        ));
    } else {
        let code = super::random_hex(15);
        s.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                redirect_uri: redirect_uri.clone(),
                scopes,
                pkce: Pkce::from_query(&q),
            },
        );
        pairs.push(("code", code));
    }
    if let Some(state) = q.get("state") {
        pairs.push(("state", state.clone()));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (
        StatusCode::FOUND,
        [("location", with_query(&redirect_uri, &pairs))],
    )
        .into_response()
}

fn oauth_error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: String) -> Response {
    let form = parse_form(&body);
    let auth = client_auth(&headers, &form);
    s.seen.lock().unwrap().token.push(TokenCall {
        form: form.clone(),
        auth_method: auth.as_ref().map(|a| a.method).unwrap_or(AuthMethod::None),
    });
    let ok = auth.as_ref().is_ok_and(|a| {
        a.client_id.as_deref() == Some(CLIENT_ID)
            && a.client_secret.as_deref() == Some(CLIENT_SECRET)
    });
    if !ok {
        return oauth_error(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    if let Some((status, body)) = s.behavior.lock().unwrap().token_error.clone() {
        return oauth_error(StatusCode::from_u16(status).unwrap(), body);
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let invalid = |what: &str| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": format!("Invalid \"{what}\" in request.")}),
        )
    };
    let Some(grant) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return invalid("code");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return invalid("redirect_uri");
    }
    if !grant
        .pkce
        .verify(form.get("code_verifier").map(String::as_str))
    {
        return invalid("code_verifier");
    }
    let token = super::random_hex(15);
    s.tokens
        .lock()
        .unwrap()
        .insert(token.clone(), grant.scopes.clone());
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 604800,
        "refresh_token": super::random_hex(15),
        "scope": grant.scopes.join(" "),
    }))
    .into_response()
}

async fn me(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    s.seen.lock().unwrap().userinfo.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    let scopes = bearer(&headers, false).and_then(|t| s.tokens.lock().unwrap().get(&t).cloned());
    let Some(scopes) = scopes else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401: Unauthorized", "code": 0}),
        );
    };
    if !scopes.iter().any(|s| s == "identify") {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401: Unauthorized", "code": 0}),
        );
    }
    let b = s.behavior.lock().unwrap();
    let mut user = json!({
        "id": b.id,
        "username": b.username,
        "discriminator": "0",
        "global_name": b.global_name,
        "avatar": b.avatar,
        "bot": false,
        "mfa_enabled": false,
        "banner": null,
        "accent_color": null,
        "locale": "en-US",
        "flags": 0,
        "premium_type": 0,
        "public_flags": 0,
    });
    if scopes.iter().any(|s| s == "email") {
        user["email"] = json!(b.email);
        user["verified"] = json!(b.verified);
    }
    Json(user).into_response()
}

/// The fake against its provider's documentation.
mod self_test {
    use super::*;
    use crate::support::fakes::discord;
    use crate::support::fakes::{authorize_url, client, code_from, fetch_json, send, VERIFIER};
    use reqwest::StatusCode;
    use serde_json::Value;

    #[tokio::test]
    async fn fake_discord_behaves_like_its_docs() {
        let d = Discord::start().await;
        let c = client();
        let code = code_from(&authorize_url(
            &format!("{}/oauth2/authorize", d.origin),
            discord::CLIENT_ID,
            "identify",
        ))
        .await;
        let token_url = format!("{}/api/oauth2/token", d.origin);
        let r = send(
            c.post(&token_url)
                .basic_auth(discord::CLIENT_ID, Some(discord::CLIENT_SECRET))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "http://127.0.0.1:1/callback/x"),
                    ("code_verifier", VERIFIER),
                ]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 604800);
        assert_eq!(t["scope"], "identify");
        let me: Value = fetch_json(
            c.get(format!("{}/api/users/@me", d.origin))
                .bearer_auth(t["access_token"].as_str().unwrap()),
        )
        .await;
        assert_eq!(me["id"], "80351110224678912");
        assert!(
            me.get("email").is_none(),
            "no email without the email scope"
        );
        // The code is single use.
        let r = send(c.post(&token_url).form(&[
            ("client_id", discord::CLIENT_ID),
            ("client_secret", discord::CLIENT_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
        ]))
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
        let r = send(c.get(format!("{}/api/users/@me", d.origin))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            discord::avatar_url("80351110224678912", Some("a_1269e74af4df7417b13759eae50c83dc")),
            "https://cdn.discordapp.com/avatars/80351110224678912/a_1269e74af4df7417b13759eae50c83dc.gif"
        );
    }
}
