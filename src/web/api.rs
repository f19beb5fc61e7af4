//! JSON routes the `next-auth/react` client calls: session, CSRF token, providers.
use super::{csrf, AppState, WebError};
use crate::error::AuthError;
use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use axum::response::{IntoResponse, Json, Response};
use chrono::SecondsFormat;
use serde_json::{json, Map, Value};

/// The CSRF token for this browser: the one in its valid cookie, or a new one plus the
/// `Set-Cookie` that carries it.
pub(super) fn csrf_token_for(app: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let existing = super::cookies::read(headers, &app.cookies.csrf)
        .and_then(|c| csrf::token_from_cookie(app.secret(), c));
    match existing {
        Some(token) => (token.to_string(), None),
        None => {
            let (token, cookie) = csrf::issue(app.secret());
            let header = app.cookies.set(
                &app.cookies.csrf,
                &cookie,
                std::time::Duration::from_secs(24 * 3600),
            );
            (token, Some(header))
        }
    }
}

pub async fn csrf(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (token, cookie) = csrf_token_for(&app, &headers);
    let mut response = Json(json!({ "csrfToken": token })).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// `{"user":{...},"expires":"..."}` for a live session, `{}` otherwise.
pub async fn session(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let json_err = |e: crate::store::StoreError| WebError::json(AuthError::from(e));
    let Some(token) = super::cookies::read(&headers, &app.cookies.session) else {
        return Ok(Json(json!({})).into_response());
    };
    let Some(session) = app.sessions.load(token).await.map_err(json_err)? else {
        let mut response = Json(json!({})).into_response();
        response
            .headers_mut()
            .append(SET_COOKIE, app.cookies.clear(&app.cookies.session));
        return Ok(response);
    };
    let Some(user) = app
        .users
        .get(&session.record.user_id)
        .await
        .map_err(json_err)?
    else {
        return Ok(Json(json!({})).into_response());
    };
    Ok(Json(json!({
        "user": {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "email_verified": user.email.is_some() && user.email_verified,
            "image": user.image,
        },
        "expires": session.expires.to_rfc3339_opts(SecondsFormat::Millis, true),
    }))
    .into_response())
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
pub async fn verify(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let json_err = |e: crate::store::StoreError| WebError::json(AuthError::from(e));
    let unauthorized = || {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": "SessionRequired"})),
        )
            .into_response()
    };
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return verify_bearer(&app, &headers).await;
    }
    let Some(token) = super::cookies::read(&headers, &app.cookies.session) else {
        return Ok(unauthorized());
    };
    let Some(session) = app.sessions.load(token).await.map_err(json_err)? else {
        return Ok(unauthorized());
    };
    let record = &session.record;
    Ok(identity_headers(
        &record.user_id,
        record.profile.verified_email(),
        record.profile.name.as_deref(),
    ))
}

/// `/verify` for APIs behind the proxy: a latch access token (signature, `exp`, one of the
/// configured audiences, and a live `sid`).
async fn verify_bearer(app: &AppState, headers: &HeaderMap) -> Result<Response, WebError> {
    let Some(token) = super::provider_tokens::bearer(headers) else {
        return Err(WebError::json(AuthError::new(
            crate::error::ErrorCode::InvalidAccessToken,
            "Authorization header is not `Bearer <token>`",
        )));
    };
    let audiences: Vec<&str> = app
        .config
        .tokens
        .audience
        .iter()
        .map(String::as_str)
        .collect();
    let verdict = app
        .tokens
        .verify_live(token, &audiences, &app.sessions)
        .await
        .map_err(|e| WebError::json(AuthError::from(e)))?;
    let claims = match verdict {
        Ok(claims) => claims,
        Err(why) => {
            let mut response = WebError::json(AuthError::new(
                crate::error::ErrorCode::InvalidAccessToken,
                format!("access token refused: {why}"),
            ))
            .into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return Ok(response);
        }
    };
    // The token claims `email` only when it was verified (see `tokens::access`).
    Ok(identity_headers(
        claims["sub"].as_str().unwrap_or_default(),
        claims["email"].as_str(),
        claims["name"].as_str(),
    ))
}

/// 200 with `X-Auth-Request-User`, `-Email` and `-Name`.
fn identity_headers(user: &str, email: Option<&str>, name: Option<&str>) -> Response {
    let mut response = axum::http::StatusCode::OK.into_response();
    let out = response.headers_mut();
    let mut put = |name: &'static str, value: Option<&str>| {
        // Names may be UTF-8; control characters (header injection) are dropped.
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            out.insert(name, v);
        }
    };
    put("x-auth-request-user", Some(user));
    put("x-auth-request-email", email);
    put("x-auth-request-name", name);
    response
}
