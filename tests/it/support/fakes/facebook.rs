//! Facebook Login and the Graph API, from developers.facebook.com:
//! - "Manually Build a Login Flow": `GET https://www.facebook.com/v19.0/dialog/oauth`
//!   (client_id, redirect_uri, state, scope comma- or space-separated, response_type=code)
//!   redirects back with `code` and `state` (Facebook appends the fragment `#_=_`); a
//!   declined dialog with `error_reason=user_denied&error=access_denied&error_description=
//!   Permissions+error.`. "Exchanging Code for an Access Token": `GET
//!   https://graph.facebook.com/v19.0/oauth/access_token?client_id&redirect_uri&client_secret&code`
//!   (POST with the same parameters works too) answers `{"access_token","token_type":
//!   "bearer","expires_in"}`; the OIDC/PKCE guide adds `code_verifier`.
//! - "Handling Errors" (graph-api/guides/error-handling): failures are HTTP 400 with
//!   `{"error":{"message","type":"OAuthException","code","error_subcode","fbtrace_id"}}`;
//!   a bad code is code 100, an invalid access token code 190.
//! - Graph `GET /me?fields=id,name,email,picture` with `access_token` as a query parameter
//!   or `Authorization: Bearer`; without `fields` only `id` and `name` come back; `email`
//!   only with the `email` permission; `picture` is `{"data":{"height","is_silhouette",
//!   "url","width"}}`.
use super::{bearer, bind, client_auth, parse_form, serve, with_query, AuthMethod, Pkce};
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "3087198538966924";
pub const CLIENT_SECRET: &str = "q0ajuzz0dvjrylrej0lklqgrz4yhbij3";
pub const VERSION: &str = "v19.0";

pub struct Behavior {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub picture_url: String,
    /// Force this Graph error object (the value of `"error"`) from the token endpoint, 400.
    pub token_error: Option<Value>,
    pub authorize_error: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            id: "10224386245563279".into(),
            name: "Jane Doe".into(),
            email: Some("jane.doe@example.test".into()),
            picture_url: "https://platform-lookaside.fbsbx.com/platform/profilepic/?asid=10224386245563279&height=50&width=50&ext=1700000000&hash=AbZ".into(),
            token_error: None,
            authorize_error: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenCall {
    pub method: String,
    pub params: HashMap<String, String>,
    pub auth_method: AuthMethod,
}

#[derive(Default)]
pub struct Seen {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<TokenCall>,
    /// (raw query, Authorization header) of each `/me`.
    pub me: Vec<(Option<String>, Option<String>)>,
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
pub struct Facebook {
    inner: Arc<Inner>,
    pub origin: String,
}

fn graph_error(message: &str, code: u32, subcode: Option<u32>) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "A1b2C3d4E5f",
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

impl Facebook {
    pub async fn start() -> Facebook {
        let listener = bind().await;
        let inner = Arc::new(Inner {
            behavior: Mutex::new(Behavior::default()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route(&format!("/{VERSION}/dialog/oauth"), get(dialog))
            .route(
                &format!("/{VERSION}/oauth/access_token"),
                get(access_token).post(access_token),
            )
            .route("/oauth/access_token", get(access_token).post(access_token))
            .route(&format!("/{VERSION}/me"), get(me))
            .route("/me", get(me))
            .with_state(inner.clone());
        let origin = serve(listener, app).await;
        Facebook { inner, origin }
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
            "[providers.facebook]\npreset = \"facebook\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthorization_url = \"{o}/{VERSION}/dialog/oauth\"\ntoken_url = \"{o}/{VERSION}/oauth/access_token\"\nuserinfo_url = \"{o}/me?fields=id,name,email,picture\"\n"
        )
    }
}

async fn dialog(State(s): State<Arc<Inner>>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.seen.lock().unwrap().authorize.push(q.clone());
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return (StatusCode::BAD_REQUEST, "Invalid App ID").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "URL blocked: redirect_uri missing").into_response();
    };
    let scopes: Vec<String> = q
        .get("scope")
        .map(|s| {
            s.split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let b = s.behavior.lock().unwrap();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(error) = &b.authorize_error {
        pairs.push(("error_reason", "user_denied".into()));
        pairs.push(("error", error.clone()));
        pairs.push(("error_description", "Permissions error.".into()));
    } else {
        let code = format!("AQ{}", super::random_hex(40));
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
    let location = format!("{}#_=_", with_query(&redirect_uri, &pairs));
    (StatusCode::FOUND, [("location", location)]).into_response()
}

async fn access_token(
    State(s): State<Arc<Inner>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let mut params = parse_form(query.as_deref().unwrap_or(""));
    params.extend(parse_form(&body));
    let auth = client_auth(&headers, &params);
    s.seen.lock().unwrap().token.push(TokenCall {
        method: method.to_string(),
        params: params.clone(),
        auth_method: auth.as_ref().map(|a| a.method).unwrap_or(AuthMethod::None),
    });
    let Ok(auth) = auth else {
        return graph_error("Error validating client secret.", 1, None);
    };
    if auth.client_id.as_deref() != Some(CLIENT_ID) {
        return graph_error(
            "Error validating application. Invalid application ID.",
            101,
            None,
        );
    }
    if auth.client_secret.as_deref() != Some(CLIENT_SECRET) {
        return graph_error("Error validating client secret.", 1, None);
    }
    if let Some(error) = s.behavior.lock().unwrap().token_error.clone() {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    }
    let Some(grant) = params
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return graph_error("Invalid verification code format.", 100, None);
    };
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return graph_error(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            100,
            None,
        );
    }
    if !grant
        .pkce
        .verify(params.get("code_verifier").map(String::as_str))
    {
        return graph_error("Invalid code verifier.", 100, None);
    }
    let token = format!("EAA{}", super::random_hex(30));
    s.tokens
        .lock()
        .unwrap()
        .insert(token.clone(), grant.scopes.clone());
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 5183944}))
        .into_response()
}

async fn me(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let auth_header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.seen.lock().unwrap().me.push((query.clone(), auth_header));
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = pairs
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.clone())
        .or_else(|| bearer(&headers, false));
    let Some(token) = token else {
        return graph_error(
            "An active access token must be used to query information about the current user.",
            2500,
            None,
        );
    };
    let Some(scopes) = s.tokens.lock().unwrap().get(&token).cloned() else {
        return graph_error(
            "Invalid OAuth access token - Cannot parse access token",
            190,
            None,
        );
    };
    let mut fields: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|f| f.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty() {
        fields = vec!["id".into(), "name".into()];
    }
    let b = s.behavior.lock().unwrap();
    let mut out = serde_json::Map::new();
    for field in &fields {
        match field.as_str() {
            "id" => {
                out.insert("id".into(), json!(b.id));
            }
            "name" => {
                out.insert("name".into(), json!(b.name));
            }
            "email" => {
                if let (Some(email), true) = (&b.email, scopes.iter().any(|s| s == "email")) {
                    out.insert("email".into(), json!(email));
                }
            }
            "picture" => {
                out.insert(
                    "picture".into(),
                    json!({"data": {"height": 50, "is_silhouette": false, "url": b.picture_url, "width": 50}}),
                );
            }
            other => {
                return graph_error(
                    &format!(
                        "(#100) Tried accessing nonexisting field ({other}) on node type (User)"
                    ),
                    100,
                    None,
                )
            }
        }
    }
    // Graph always includes the id.
    out.entry("id").or_insert(json!(b.id));
    Json(Value::Object(out)).into_response()
}

/// The fake against its provider's documentation.
mod self_test {
    use super::*;
    use crate::support::browser::query_param;
    use crate::support::fakes::{authorize_url, client, facebook, fetch_json, send, VERIFIER};
    use reqwest::StatusCode;
    use serde_json::{json, Value};

    #[tokio::test]
    async fn fake_facebook_behaves_like_its_docs() {
        let f = Facebook::start().await;
        let c = client();
        let dialog = format!("{}/{}/dialog/oauth", f.origin, facebook::VERSION);
        let response = send(c.get(authorize_url(&dialog, facebook::CLIENT_ID, "email"))).await;
        let loc = response.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.ends_with("#_=_"), "{loc}");
        let code = query_param(&loc, "code").unwrap();
        // The documented GET exchange.
        let mut url = url::Url::parse(&format!(
            "{}/{}/oauth/access_token",
            f.origin,
            facebook::VERSION
        ))
        .unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", facebook::CLIENT_ID)
            .append_pair("redirect_uri", "http://127.0.0.1:1/callback/x")
            .append_pair("client_secret", facebook::CLIENT_SECRET)
            .append_pair("code", &code)
            .append_pair("code_verifier", VERIFIER);
        let t: Value = fetch_json(c.get(url.clone())).await;
        assert_eq!(t["token_type"], "bearer");
        let token = t["access_token"].as_str().unwrap();
        // Used code: a Graph error object with HTTP 400.
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "OAuthException");
        assert!(e["error"]["code"].is_number());
        // /me: default fields id and name; the token as a query parameter or a bearer header.
        let me: Value = fetch_json(c.get(format!("{}/me?access_token={token}", f.origin))).await;
        assert_eq!(me, json!({"id": "10224386245563279", "name": "Jane Doe"}));
        let me: Value = fetch_json(
            c.get(format!("{}/me?fields=id,name,email,picture", f.origin))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(me["email"], "jane.doe@example.test");
        assert_eq!(me["picture"]["data"]["is_silhouette"], false);
        let r = send(c.get(format!("{}/me?access_token=nope", f.origin))).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 190);
    }
}
