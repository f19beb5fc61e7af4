//! JSON routes the `next-auth/react` client calls (session, CSRF token, providers), and
//! forward auth (`/verify`).
use super::extract::{Caller, Csrf, OptionalSession};
use super::{AppState, WebError};
use crate::error::AuthError;
use crate::policy::{self, Decision, Who};
use crate::tokens::access::Accepted;
use axum::extract::{RawQuery, State};
use axum::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SET_COOKIE};
use axum::response::{IntoResponse, Json, Response};
use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{json, Map, Value};

pub async fn csrf(State(app): State<AppState>, csrf: Csrf) -> Response {
    let (token, cookie) = csrf.token(&app);
    let mut response = Json(json!({ "csrfToken": token })).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// `{"user":{...},"expires":"..."}` for a live session, `{}` otherwise.
pub async fn session(State(app): State<AppState>, signed_in: OptionalSession) -> Response {
    let Some(session) = signed_in.session else {
        let mut response = Json(json!({})).into_response();
        if signed_in.cookie {
            response
                .headers_mut()
                .append(SET_COOKIE, app.cookies.clear(&app.cookies.session));
        }
        return response;
    };
    // The profile of the session record (the sign-in's); the picture from the user record,
    // which `Users::picture` reads at most every few seconds.
    let record = &session.record;
    let profile = &record.profile;
    let picture = match app.users.picture(&record.user_id).await {
        Ok(Some(picture)) => picture,
        Ok(None) => return Json(json!({})).into_response(), // the user was just deleted
        Err(e) => return WebError::json(AuthError::from(e)).into_response(),
    };
    json_answer(&SessionJson {
        user: UserJson {
            id: &record.user_id,
            name: profile.name.as_deref(),
            email: profile.email.as_deref(),
            email_verified: profile.email.is_some() && profile.email_verified,
            image: picture.as_deref(),
            groups: &record.groups,
        },
        expires: session.expires.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// `value` as a 200 JSON answer, like axum's `Json` but built for the hot path: the body is
/// written into a buffer that fits a session's JSON at once, and the header map has room for
/// every header the answer will carry (`headers::with_room_for`), so neither grows.
fn json_answer(value: &impl Serialize) -> Response {
    let mut body = Vec::with_capacity(512);
    if let Err(e) = serde_json::to_writer(&mut body, value) {
        // Only a map with non-string keys fails, which these types do not have.
        return WebError::json(AuthError::new(
            crate::error::ErrorCode::InternalError,
            format!("/session JSON: {e}"),
        ))
        .into_response();
    }
    let mut response = Response::new(axum::body::Body::from(body));
    let headers = response.headers_mut();
    *headers = super::headers::with_room_for(1);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `/session`'s answer, serialised straight from the record (no intermediate `Value`).
#[derive(Serialize)]
struct SessionJson<'a> {
    user: UserJson<'a>,
    expires: String,
}

#[derive(Serialize)]
struct UserJson<'a> {
    id: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    email_verified: bool,
    image: Option<&'a str>,
    /// The groups the provider said at this session's sign-in (SPEC §6); `[]` for none.
    groups: &'a [String],
}

pub async fn providers(State(app): State<AppState>) -> Json<Value> {
    let mut out = Map::new();
    for p in app.providers.iter() {
        out.insert(
            p.id().to_string(),
            json!({
                "id": p.id(),
                "name": p.config.name,
                "type": p.kind_name(),
                "signinUrl": p.signin_url,
                "callbackUrl": p.callback_url,
            }),
        );
    }
    Json(Value::Object(out))
}

/// `GET /verify`: forward auth for nginx `auth_request` and Traefik ForwardAuth. 200 with the
/// user in `X-Auth-Request-*` headers for a live session (extending it per `update_age`) or a
/// latch access token in `Authorization: Bearer` whose session is live, 401 otherwise. A store
/// outage is a 503, so the proxy fails closed and says why. The email header is sent only
/// for an email the provider verified.
///
/// Then the `[[policies]]` (SPEC §6): the first whose hosts and paths match the forwarded
/// request (`X-Forwarded-Host` or `Host`; `X-Original-URI` from nginx or `X-Forwarded-Uri`
/// from Traefik) decides, and `?allowed_groups=a,b` narrows further; a signed-in user they
/// refuse gets 403 `PolicyDenied`.
pub async fn verify(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, WebError> {
    // Without policies or `?allowed_groups=` there is nothing to look up (the hot path).
    let asked = if app.config.policies.is_empty() && query.is_none() {
        Forwarded::default()
    } else {
        Forwarded::of(&headers, query.as_deref())
    };
    match caller {
        Caller::Bearer(bearer) => verify_bearer(&app, bearer.token(), &asked).await,
        Caller::Session(OptionalSession {
            session: Some(session),
            ..
        }) => {
            let record = &session.record;
            let who = Who {
                groups: &record.groups,
                verified_email: record.profile.verified_email(),
                provider: Some(&record.provider),
            };
            if let Some(refused) = asked.refuse(&app, &who, &record.user_id) {
                return Ok(refused);
            }
            Ok(identity_headers(
                &record.user_id,
                record.profile.verified_email(),
                record.profile.name.as_deref(),
                &record.groups,
            ))
        }
        Caller::Session(_) => Ok((
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": "SessionRequired"})),
        )
            .into_response()),
    }
}

/// What the proxy says the request was for, and `/verify`'s own `?allowed_groups=`.
#[derive(Default)]
struct Forwarded<'a> {
    /// Raw bytes: `policy` reads the host name as nginx does, whatever follows it.
    host: Option<&'a [u8]>,
    uri: Option<&'a str>,
    narrow: Vec<String>,
    /// `?allowed_groups=` present but naming no group: refused rather than ignored.
    empty_narrow: bool,
}

impl<'a> Forwarded<'a> {
    fn of(headers: &'a HeaderMap, query: Option<&str>) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut asked_narrow = false;
        let mut narrow: Vec<String> = Vec::new();
        let pairs = query.map(|q| url::form_urlencoded::parse(q.as_bytes()));
        for (_, value) in pairs
            .into_iter()
            .flatten()
            .filter(|(k, _)| k == "allowed_groups")
        {
            asked_narrow = true;
            narrow.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string),
            );
        }
        Forwarded {
            host: headers
                .get("x-forwarded-host")
                .or_else(|| headers.get("host"))
                .map(|v| v.as_bytes()),
            uri: header("x-original-uri").or_else(|| header("x-forwarded-uri")),
            empty_narrow: asked_narrow && narrow.is_empty(),
            narrow,
        }
    }

    /// The 403 for a signed-in `who` the policies refuse (with its log line), or `None`.
    fn refuse(&self, app: &AppState, who: &Who, user: &str) -> Option<Response> {
        if self.empty_narrow {
            let error = AuthError::new(
                crate::error::ErrorCode::InvalidRequest,
                "/verify?allowed_groups= names no group (a comma-separated list is expected)",
            );
            return Some(WebError::json(error).into_response());
        }
        if app.config.policies.is_empty() && self.narrow.is_empty() {
            return None;
        }
        match policy::decide(&app.config.policies, self.host, self.uri, who, &self.narrow) {
            Decision::Allowed => None,
            Decision::Denied(reason) => {
                tracing::info!(user, host = self.host.map(|h| crate::error::printable(&String::from_utf8_lossy(h), 200)), uri = self.uri.map(|u| crate::error::printable(u, 200)), %reason, "forward auth refused by policy");
                Some(
                    (
                        axum::http::StatusCode::FORBIDDEN,
                        Json(json!({"error": "PolicyDenied"})),
                    )
                        .into_response(),
                )
            }
        }
    }
}

/// `/verify` for APIs behind the proxy: a latch access token (signature, `exp`, one of the
/// configured audiences, and a live `sid`).
async fn verify_bearer(
    app: &AppState,
    token: &str,
    asked: &Forwarded<'_>,
) -> Result<Response, WebError> {
    let verdict = app
        .tokens
        .verify(token, Accepted::Api, &app.sessions)
        .await
        .map_err(|e| WebError::json(AuthError::from(e)))?;
    let claims = match verdict {
        Ok(claims) => claims,
        Err(why) => {
            return Ok(super::extract::invalid_token(format!(
                "access token refused: {why}"
            )))
        }
    };
    // The token claims `email` only when it was verified (see `tokens::access`).
    let user = claims["sub"].as_str().unwrap_or_default();
    let groups: Vec<String> = claims["groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str())
                .filter(|g| crate::provider::groups::acceptable(g))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let who = Who {
        groups: &groups,
        verified_email: claims["email"].as_str(),
        provider: None,
    };
    if let Some(refused) = asked.refuse(app, &who, user) {
        return Ok(refused);
    }
    Ok(identity_headers(
        user,
        claims["email"].as_str(),
        claims["name"].as_str(),
        &groups,
    ))
}

/// 200 with `X-Auth-Request-User`, `-Email`, `-Name` and `-Groups` (comma-joined; only
/// names without commas are kept, see `provider::groups`).
fn identity_headers(
    user: &str,
    email: Option<&str>,
    name: Option<&str>,
    groups: &[String],
) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    let out = response.headers_mut();
    *out = super::headers::with_room_for(4);
    let mut put = |name: &'static str, value: Option<&str>| {
        // Names may be UTF-8; control characters (header injection) are dropped.
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            out.insert(name, v);
        }
    };
    put("x-auth-request-user", Some(user));
    put("x-auth-request-email", email);
    put("x-auth-request-name", name);
    if !groups.is_empty() {
        put("x-auth-request-groups", Some(&groups.join(",")));
    }
    response
}
