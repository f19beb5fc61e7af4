//! GitHub as an OAuth app sees it (github.com + api.github.com), from GitHub's docs:
//! - "Authorizing OAuth apps" (docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps):
//!   `GET /login/oauth/authorize` (client_id, redirect_uri, scope, state, code_challenge,
//!   code_challenge_method=S256) redirects back with `code` and `state`; `POST
//!   /login/oauth/access_token` answers form-encoded unless `Accept: application/json`, with
//!   `access_token`, `scope` (comma-separated) and `token_type=bearer`.
//! - "Troubleshooting OAuth app access token request errors": errors come back with HTTP
//!   200 and `error`, `error_description`, `error_uri` (`incorrect_client_credentials`,
//!   `redirect_uri_mismatch`, `bad_verification_code`).
//! - "Troubleshooting authorization request errors": a declined authorization redirects
//!   with `error=access_denied`, `error_description`, `error_uri`, `state`.
//! - REST `GET /user` (login, numeric id, name, public email or null, avatar_url, ...),
//!   `GET /user/emails` (needs `user:email`; `[{"email","primary","verified","visibility"}]`),
//!   `GET /user/memberships/orgs/{org}` (200 with `state` active/pending, `role`,
//!   `organization`; 404 when not a member; 403 when the token lacks the scope).
//! - REST basics: every request needs a `User-Agent` (else 403); `Authorization: Bearer` or
//!   `token`; 401 `{"message":"Bad credentials"}`; `X-OAuth-Scopes` /
//!   `X-Accepted-OAuth-Scopes` headers.
//! - RFC 9207: the redirect back carries `iss=https://github.com/login/oauth`, here
//!   `<base_url>/login/oauth`.
use super::{bearer, bind, client_auth, parse_form, serve, with_query, Pkce};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "Ov23liFakeGitHubApp01";
pub const CLIENT_SECRET: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone, Debug)]
pub struct Email {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
    /// "public", "private", or null (GitHub gives null on non-primary addresses).
    pub visibility: Option<String>,
}

impl Email {
    pub fn new(email: &str, primary: bool, verified: bool) -> Email {
        Email {
            email: email.into(),
            primary,
            verified,
            visibility: primary.then(|| "private".to_string()),
        }
    }
}

pub struct Behavior {
    pub login: String,
    pub id: u64,
    pub name: Option<String>,
    /// `email` on `GET /user`: the public email, or null when the user keeps it private.
    pub public_email: Option<String>,
    pub avatar_url: String,
    /// `GET /user/emails`.
    pub emails: Vec<Email>,
    /// Organizations with an active membership.
    pub orgs: Vec<String>,
    /// Organizations where the invitation is not accepted yet (`state: "pending"`).
    pub pending_orgs: Vec<String>,
    /// (organisation, team slug) the user is in, at `/user/teams`.
    pub teams: Vec<(String, String)>,
    /// Force this `(error, error_description)` from the token endpoint, in HTTP 200.
    pub token_error: Option<(String, String)>,
    /// `iss` on the redirect back: None = `<base_url>/login/oauth`; Some(None) = absent.
    pub iss_param: Option<Option<String>>,
    /// The user declines: redirect back with this `error` instead of a code.
    pub authorize_error: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            login: "monalisa".into(),
            id: 583231,
            name: Some("Monalisa Octocat".into()),
            public_email: Some("monalisa@example.test".into()),
            avatar_url: "https://avatars.githubusercontent.com/u/583231?v=4".into(),
            emails: vec![
                Email::new("monalisa@example.test", true, true),
                Email {
                    email: "583231+monalisa@users.noreply.github.com".into(),
                    primary: false,
                    verified: true,
                    visibility: None,
                },
            ],
            orgs: vec![],
            pending_orgs: vec![],
            teams: vec![],
            token_error: None,
            iss_param: None,
            authorize_error: None,
        }
    }
}

/// One call to the token endpoint, as received.
#[derive(Clone, Debug)]
pub struct TokenCall {
    pub form: HashMap<String, String>,
    pub auth_method: super::AuthMethod,
    pub accept: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ApiCall {
    pub path: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub status: u16,
}

#[derive(Default)]
pub struct Seen {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<TokenCall>,
    pub api: Vec<ApiCall>,
}

struct Grant {
    client_id: String,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    pkce: Pkce,
}

struct Inner {
    base_url: String,
    behavior: Mutex<Behavior>,
    codes: Mutex<HashMap<String, Grant>>,
    /// access token -> granted scopes
    tokens: Mutex<HashMap<String, Vec<String>>>,
    seen: Mutex<Seen>,
}

#[derive(Clone)]
pub struct GitHub {
    inner: Arc<Inner>,
    /// `http://127.0.0.1:<port>`, GitHub's `https://github.com`.
    pub base_url: String,
    /// `<base_url>/api`, GitHub's `https://api.github.com`.
    pub api_url: String,
}

impl GitHub {
    pub async fn start() -> GitHub {
        let listener = bind().await;
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let inner = Arc::new(Inner {
            base_url: base_url.clone(),
            behavior: Mutex::new(Behavior::default()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
        });
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/api/user", get(user))
            .route("/api/user/emails", get(emails))
            .route("/api/user/memberships/orgs/{org}", get(membership))
            .route("/api/user/orgs", get(user_orgs))
            .route("/api/user/teams", get(user_teams))
            .with_state(inner.clone());
        serve(listener, app).await;
        GitHub {
            inner,
            api_url: format!("{base_url}/api"),
            base_url,
        }
    }

    pub fn set(&self, behavior: Behavior) {
        *self.inner.behavior.lock().unwrap() = behavior;
    }

    pub fn edit(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut self.inner.behavior.lock().unwrap());
    }

    /// The RFC 9207 issuer GitHub puts on the redirect back.
    pub fn issuer(&self) -> String {
        format!("{}/login/oauth", self.base_url)
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.seen.lock().unwrap())
    }

    /// `[providers.github]` for latch; `extra` lines are appended (e.g.
    /// `allowed_orgs = ["acme"]`).
    pub fn provider_toml(&self, extra: &str) -> String {
        format!(
            "[providers.github]\npreset = \"github\"\nbase_url = \"{}\"\napi_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{extra}\n",
            self.base_url, self.api_url
        )
    }
}

/// GitHub takes `scope` space- (documented) or comma-delimited.
fn split_scopes(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split([' ', ',']).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

async fn authorize(
    State(s): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.seen.lock().unwrap().authorize.push(q.clone());
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        // github.com shows its 404 page for an unknown client_id.
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1>")).into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        // Without redirect_uri GitHub uses the app's registered callback; the fake has none.
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri required by this fake",
        )
            .into_response();
    };
    if let Some(method) = q.get("code_challenge_method") {
        if method != "S256" {
            return (
                StatusCode::BAD_REQUEST,
                "code_challenge_method must be S256",
            )
                .into_response();
        }
    }
    let b = s.behavior.lock().unwrap();
    let iss = match &b.iss_param {
        None => Some(format!("{}/login/oauth", s.base_url)),
        Some(v) => v.clone(),
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(error) = &b.authorize_error {
        pairs.push(("error", error.clone()));
        pairs.push((
            "error_description",
            "The user has denied your application access.".into(),
        ));
        pairs.push(("error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied".into()));
    } else {
        let code = super::random_hex(10);
        s.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                client_id: CLIENT_ID.into(),
                redirect_uri: Some(redirect_uri.clone()),
                scopes: split_scopes(q.get("scope").map(String::as_str).unwrap_or("")),
                pkce: Pkce::from_query(&q),
            },
        );
        pairs.push(("code", code));
    }
    if let Some(state) = q.get("state") {
        pairs.push(("state", state.clone()));
    }
    if let Some(iss) = iss {
        pairs.push(("iss", iss));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (
        StatusCode::FOUND,
        [("location", with_query(&redirect_uri, &pairs))],
    )
        .into_response()
}

/// A token-endpoint answer: JSON when asked for, GitHub's default form encoding otherwise.
/// Always HTTP 200, errors included.
fn token_answer(json_wanted: bool, fields: Vec<(&str, String)>) -> Response {
    if json_wanted {
        let map: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        (StatusCode::OK, Json(Value::Object(map))).into_response()
    } else {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        (
            StatusCode::OK,
            [(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

fn token_error(json_wanted: bool, error: &str, description: &str, anchor: &str) -> Response {
    token_answer(
        json_wanted,
        vec![
            ("error", error.into()),
            ("error_description", description.into()),
            ("error_uri", format!("https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#{anchor}")),
        ],
    )
}

async fn access_token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: String) -> Response {
    let form = parse_form(&body);
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json_wanted = accept
        .as_deref()
        .is_some_and(|a| a.contains("application/json"));
    let auth = client_auth(&headers, &form);
    s.seen.lock().unwrap().token.push(TokenCall {
        form: form.clone(),
        auth_method: auth
            .as_ref()
            .map(|a| a.method)
            .unwrap_or(super::AuthMethod::None),
        accept,
    });
    let credentials_ok = auth.as_ref().is_ok_and(|a| {
        a.client_id.as_deref() == Some(CLIENT_ID)
            && a.client_secret.as_deref() == Some(CLIENT_SECRET)
    });
    if !credentials_ok {
        return token_error(
            json_wanted,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        );
    }
    if let Some((error, description)) = s.behavior.lock().unwrap().token_error.clone() {
        return token_error(json_wanted, &error, &description, &error.replace('_', "-"));
    }
    let bad_code = || {
        token_error(
            json_wanted,
            "bad_verification_code",
            "The code passed is incorrect or expired.",
            "bad-verification-code",
        )
    };
    let Some(grant) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return bad_code();
    };
    if grant.client_id != CLIENT_ID {
        return bad_code();
    }
    if let Some(uri) = form.get("redirect_uri") {
        if Some(uri) != grant.redirect_uri.as_ref() {
            return token_error(
                json_wanted,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
                "redirect-uri-mismatch",
            );
        }
    }
    // GitHub documents no separate error code for a failed PKCE check; the code is refused.
    if !grant
        .pkce
        .verify(form.get("code_verifier").map(String::as_str))
    {
        return bad_code();
    }
    let token = format!("gho_{}", super::random_hex(18));
    s.tokens
        .lock()
        .unwrap()
        .insert(token.clone(), grant.scopes.clone());
    token_answer(
        json_wanted,
        vec![
            ("access_token", token),
            ("token_type", "bearer".into()),
            ("scope", grant.scopes.join(",")),
        ],
    )
}

fn api_json(status: StatusCode, scopes: &[String], accepted: &str, body: Value) -> Response {
    (
        status,
        [
            ("x-oauth-scopes", scopes.join(", ")),
            ("x-accepted-oauth-scopes", accepted.to_string()),
            ("x-github-media-type", "github.v3; format=json".to_string()),
        ],
        Json(body),
    )
        .into_response()
}

/// The REST API's gate: User-Agent, then the token. Ok(scopes of the token).
#[allow(clippy::result_large_err)]
fn api_gate(s: &Inner, headers: &HeaderMap, path: &str) -> Result<Vec<String>, Response> {
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let record = |status: u16| {
        s.seen.lock().unwrap().api.push(ApiCall {
            path: path.into(),
            authorization: authorization.clone(),
            user_agent: user_agent.clone(),
            status,
        })
    };
    if user_agent.is_none() {
        record(403);
        return Err((
            StatusCode::FORBIDDEN,
            [("content-type", "text/plain; charset=utf-8")],
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
        )
            .into_response());
    }
    let Some(token) = bearer(headers, true) else {
        record(401);
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response());
    };
    let Some(scopes) = s.tokens.lock().unwrap().get(&token).cloned() else {
        record(401);
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response());
    };
    record(200);
    Ok(scopes)
}

async fn user(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let scopes = match api_gate(&s, &headers, "/user") {
        Ok(scopes) => scopes,
        Err(r) => return r,
    };
    let b = s.behavior.lock().unwrap();
    let login = &b.login;
    api_json(
        StatusCode::OK,
        &scopes,
        "",
        json!({
            "login": login,
            "id": b.id,
            "node_id": "MDQ6VXNlcjU4MzIzMQ==",
            "avatar_url": b.avatar_url,
            "gravatar_id": "",
            "url": format!("https://api.github.com/users/{login}"),
            "html_url": format!("https://github.com/{login}"),
            "type": "User",
            "site_admin": false,
            "name": b.name,
            "company": null,
            "blog": "",
            "location": null,
            "email": b.public_email,
            "hireable": null,
            "bio": null,
            "twitter_username": null,
            "public_repos": 2,
            "public_gists": 0,
            "followers": 20,
            "following": 0,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": "2024-01-25T18:44:36Z",
        }),
    )
}

async fn emails(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let scopes = match api_gate(&s, &headers, "/user/emails") {
        Ok(scopes) => scopes,
        Err(r) => return r,
    };
    let accepted = "user, user:email";
    if !scopes.iter().any(|s| s == "user" || s == "user:email") {
        return api_json(
            StatusCode::NOT_FOUND,
            &scopes,
            accepted,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user", "status": "404"}),
        );
    }
    let b = s.behavior.lock().unwrap();
    let list: Vec<Value> = b
        .emails
        .iter()
        .map(|e| json!({"email": e.email, "primary": e.primary, "verified": e.verified, "visibility": e.visibility}))
        .collect();
    api_json(StatusCode::OK, &scopes, accepted, Value::Array(list))
}

/// `/user/orgs` and `/user/teams` need `read:org` (else 403, as GitHub answers).
#[allow(clippy::result_large_err)]
fn org_scoped(s: &Inner, headers: &HeaderMap, path: &str) -> Result<Vec<String>, Response> {
    let scopes = api_gate(s, headers, path)?;
    if !scopes
        .iter()
        .any(|s| s == "read:org" || s == "write:org" || s == "admin:org")
    {
        return Err(api_json(
            StatusCode::FORBIDDEN,
            &scopes,
            "admin:org, read:org, write:org",
            json!({"message": "Forbidden", "status": "403"}),
        ));
    }
    Ok(scopes)
}

async fn user_orgs(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let scopes = match org_scoped(&s, &headers, "/user/orgs") {
        Ok(scopes) => scopes,
        Err(r) => return r,
    };
    let orgs: Vec<Value> = s
        .behavior
        .lock()
        .unwrap()
        .orgs
        .iter()
        .map(|login| json!({"login": login, "id": 1, "url": format!("https://api.github.com/orgs/{login}")}))
        .collect();
    api_json(
        StatusCode::OK,
        &scopes,
        "admin:org, read:org, write:org",
        json!(orgs),
    )
}

async fn user_teams(State(s): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let scopes = match org_scoped(&s, &headers, "/user/teams") {
        Ok(scopes) => scopes,
        Err(r) => return r,
    };
    let teams: Vec<Value> = s
        .behavior
        .lock()
        .unwrap()
        .teams
        .iter()
        .map(|(org, slug)| json!({"slug": slug, "name": slug, "organization": {"login": org, "id": 1}}))
        .collect();
    api_json(
        StatusCode::OK,
        &scopes,
        "admin:org, read:org, write:org",
        json!(teams),
    )
}

async fn membership(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    let scopes = match api_gate(&s, &headers, &format!("/user/memberships/orgs/{org}")) {
        Ok(scopes) => scopes,
        Err(r) => return r,
    };
    let accepted = "admin:org, read:org, write:org";
    if !scopes
        .iter()
        .any(|s| s == "read:org" || s == "write:org" || s == "admin:org")
    {
        return api_json(
            StatusCode::FORBIDDEN,
            &scopes,
            accepted,
            json!({"message": "Forbidden", "documentation_url": "https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user", "status": "403"}),
        );
    }
    let b = s.behavior.lock().unwrap();
    let find = |list: &[String]| list.iter().find(|o| o.eq_ignore_ascii_case(&org)).cloned();
    let (login, state) = match (find(&b.orgs), find(&b.pending_orgs)) {
        (Some(o), _) => (o, "active"),
        (None, Some(o)) => (o, "pending"),
        (None, None) => {
            return api_json(
                StatusCode::NOT_FOUND,
                &scopes,
                accepted,
                json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user", "status": "404"}),
            )
        }
    };
    api_json(
        StatusCode::OK,
        &scopes,
        accepted,
        json!({
            "url": format!("https://api.github.com/orgs/{login}/memberships/{}", b.login),
            "state": state,
            "role": "member",
            "organization_url": format!("https://api.github.com/orgs/{login}"),
            "organization": {
                "login": login,
                "id": 1,
                "url": format!("https://api.github.com/orgs/{login}"),
                "description": "",
            },
            "user": {"login": b.login, "id": b.id, "type": "User", "site_admin": false},
        }),
    )
}

/// The fake against its provider's documentation.
mod self_test {
    use super::*;
    use crate::support::browser::query_param;
    use crate::support::fakes::{self, authorize_url, client, code_from, github, send, VERIFIER};
    use reqwest::StatusCode;
    use serde_json::Value;

    #[tokio::test]
    async fn fake_github_behaves_like_its_docs() {
        let gh = GitHub::start().await;
        let c = client();
        let auth = format!("{}/login/oauth/authorize", gh.base_url);
        let token_url = format!("{}/login/oauth/access_token", gh.base_url);

        // The redirect back carries code, state and the RFC 9207 iss.
        let response = send(c.get(authorize_url(
            &auth,
            github::CLIENT_ID,
            "read:user user:email",
        )))
        .await;
        let loc = response.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
        assert_eq!(query_param(&loc, "iss"), Some(gh.issuer()));
        let code = query_param(&loc, "code").unwrap();

        // A wrong verifier: HTTP 200 with an error body.
        let form = [
            ("client_id", github::CLIENT_ID),
            ("client_secret", github::CLIENT_SECRET),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
            (
                "code_verifier",
                "wrong-wrong-wrong-wrong-wrong-wrong-wrong-wr",
            ),
        ];
        let r = send(
            c.post(&token_url)
                .header("accept", "application/json")
                .form(&form),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_verification_code");
        assert!(body["error_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/"));

        // Without Accept: JSON the answer is form-encoded; Basic auth works.
        let code = code_from(&authorize_url(
            &auth,
            github::CLIENT_ID,
            "read:user user:email",
        ))
        .await;
        let r = send(
            c.post(&token_url)
                .basic_auth(github::CLIENT_ID, Some(github::CLIENT_SECRET))
                .form(&[("code", code.as_str()), ("code_verifier", VERIFIER)]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = r.text().await.unwrap();
        let fields = fakes::parse_form(&body);
        assert_eq!(fields["token_type"], "bearer");
        assert_eq!(fields["scope"], "read:user,user:email");
        let token = fields["access_token"].clone();
        assert!(token.starts_with("gho_"));

        // REST: a User-Agent is required; then the user, the emails, the org membership.
        let api = &gh.api_url;
        let r = send(c.get(format!("{api}/user")).bearer_auth(&token)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no User-Agent");
        let get = |path: &str, scheme: &str| {
            c.get(format!("{api}{path}"))
                .header("user-agent", "fake-check")
                .header("authorization", format!("{scheme} {token}"))
                .send()
        };
        let user: Value = get("/user", "token").await.unwrap().json().await.unwrap();
        assert_eq!(user["id"], 583231);
        assert_eq!(user["login"], "monalisa");
        let emails: Value = get("/user/emails", "Bearer")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(emails[0]["primary"], true);
        assert_eq!(emails[0]["verified"], true);
        let r = get("/user/memberships/orgs/acme", "Bearer").await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no read:org scope");
        assert_eq!(r.headers()["x-oauth-scopes"], "read:user, user:email");

        // With read:org: 404 when not a member, 200 active when one.
        gh.edit(|b| b.orgs = vec!["Acme".into()]);
        let code = code_from(&authorize_url(
            &auth,
            github::CLIENT_ID,
            "read:user read:org",
        ))
        .await;
        let r = send(
            c.post(&token_url)
                .header("accept", "application/json")
                .form(&[
                    ("client_id", github::CLIENT_ID),
                    ("client_secret", github::CLIENT_SECRET),
                    ("code", code.as_str()),
                    ("code_verifier", VERIFIER),
                ]),
        )
        .await;
        let token: Value = r.json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_string();
        let get = |path: &str| {
            c.get(format!("{api}{path}"))
                .header("user-agent", "fake-check")
                .bearer_auth(&token)
                .send()
        };
        let r = get("/user/memberships/orgs/acme").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["state"], "active");
        assert_eq!(m["organization"]["login"], "Acme");
        let r = get("/user/memberships/orgs/other").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");
        let r = get("/user/emails").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "no user:email scope");
    }
}
