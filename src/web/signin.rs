//! Starting a sign-in, the provider callback, and sign-out.
use super::redirect::safe_callback_url;
use super::{cookies, csrf, parse_form, AppState, WebError};
use crate::crypto::random_token;
use crate::error::{AuthError, ErrorCode};
use crate::flow::{self, CallbackParams, FLOW_TTL};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::collections::HashMap;

/// 302 to `url`, or `{"url": url}` for the next-auth client.
fn redirect(url: &str, json: bool, cookies: Vec<HeaderValue>) -> Response {
    let mut response = if json {
        Json(json!({ "url": url })).into_response()
    } else {
        match HeaderValue::from_str(url) {
            Ok(location) => {
                let mut r = StatusCode::FOUND.into_response();
                r.headers_mut().insert(LOCATION, location);
                r
            }
            Err(_) => WebError::new(
                ErrorCode::InternalError,
                "redirect target not a header value",
            )
            .into_response(),
        }
    };
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Did the client ask for `{"url"}` instead of a redirect (Auth.js v5 header, v4 form field)?
fn wants_url_json(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let header = headers
        .get("x-auth-return-redirect")
        .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes() == b"true");
    header || form.get("json").is_some_and(|v| v == "true")
}

fn check_csrf(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    json: bool,
) -> Result<(), WebError> {
    let cookie = cookies::read(headers, &app.cookies.csrf);
    if csrf::verify(
        app.secret(),
        cookie,
        form.get("csrfToken").map(String::as_str),
    ) {
        return Ok(());
    }
    let reason = match (cookie.is_some(), form.contains_key("csrfToken")) {
        (false, _) => "no CSRF cookie",
        (true, false) => "no csrfToken field",
        (true, true) => "csrfToken does not match the CSRF cookie",
    };
    let error = AuthError::new(ErrorCode::MissingCSRF, reason);
    Err(WebError::answer(error, json))
}

async fn begin(
    app: &AppState,
    headers: &HeaderMap,
    provider_id: &str,
    callback_url: Option<&str>,
    json: bool,
) -> Result<Response, WebError> {
    let wrap = |error: AuthError| WebError::answer(error, json);
    let provider = app.providers.get(provider_id).ok_or_else(|| {
        wrap(AuthError::new(
            ErrorCode::UnknownProvider,
            format!(
                "no provider {:?}",
                provider_id.chars().take(64).collect::<String>()
            ),
        ))
    })?;
    let callback_url = safe_callback_url(&app.config, callback_url);
    // One binding per browser, reused by parallel flows in several tabs.
    let binding = cookies::read(headers, &app.cookies.flow)
        .or_else(|| cookies::read(headers, &app.cookies.flow_cross_site))
        .filter(|b| b.len() == 43)
        .map(str::to_string)
        .unwrap_or_else(|| random_token(32));
    let started = flow::start(&*app.store, provider, &callback_url, &binding)
        .await
        .map_err(wrap)?;
    tracing::info!(provider = provider.id(), "sign-in started");
    crate::telemetry::signin_started(provider.id());
    // `form_post` callbacks are cross-site POSTs, which carry only SameSite=None cookies.
    let cookie = if provider.uses_form_post() {
        app.cookies
            .set_cross_site(&app.cookies.flow_cross_site, &binding, FLOW_TTL)
    } else {
        app.cookies.set(&app.cookies.flow, &binding, FLOW_TTL)
    };
    Ok(redirect(&started.authorization_url, json, vec![cookie]))
}

/// `GET /signin/{provider}`: start at once (for apps that link straight to a provider).
pub async fn start_get(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    begin(
        &app,
        &headers,
        &provider,
        query.get("callbackUrl").map(String::as_str),
        false,
    )
    .await
}

/// `POST /signin/{provider}`: the Auth.js form post, CSRF-checked.
pub async fn start_post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    let json = wants_url_json(&headers, &form);
    check_csrf(&app, &headers, &form, json)?;
    begin(
        &app,
        &headers,
        &provider,
        form.get("callbackUrl").map(String::as_str),
        json,
    )
    .await
}

fn params_from(mut map: HashMap<String, String>) -> CallbackParams {
    CallbackParams {
        state: map.remove("state"),
        code: map.remove("code"),
        error: map.remove("error"),
        error_description: map.remove("error_description"),
        iss: map.remove("iss"),
        user: map.remove("user"),
    }
}

pub async fn callback_get(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    callback(&app, &headers, &provider, params_from(query)).await
}

/// `response_mode=form_post` lands here.
pub async fn callback_post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    callback(&app, &headers, &provider, params_from(parse_form(&body))).await
}

async fn callback(
    app: &AppState,
    headers: &HeaderMap,
    provider_id: &str,
    params: CallbackParams,
) -> Result<Response, WebError> {
    let provider = app.providers.get(provider_id).ok_or_else(|| {
        WebError::new(
            ErrorCode::UnknownProvider,
            format!(
                "callback for unknown provider {:?}",
                provider_id.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let binding = if provider.uses_form_post() {
        cookies::read(headers, &app.cookies.flow_cross_site)
    } else {
        cookies::read(headers, &app.cookies.flow)
    };
    // A signed-in user who signs in with another provider links that account.
    let current_user = match cookies::read(headers, &app.cookies.session) {
        Some(token) => app.sessions.load(token).await?.map(|s| s.record.user_id),
        None => None,
    };
    let names = |id: &str| {
        app.providers
            .get(id)
            .map(|p| p.config.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let finished = flow::finish(
        &*app.store,
        &app.users,
        provider,
        params,
        binding,
        current_user.as_deref(),
        names,
    )
    .await?;
    // A fresh session id at every sign-in; the previous session (if any) ends.
    if let Some(old) = cookies::read(headers, &app.cookies.session) {
        app.sessions.delete(old).await?;
    }
    let (token, session) = app.sessions.create(&finished.user, provider.id()).await?;
    tracing::info!(provider = provider.id(), user = %finished.user.id, session = %session.id, "signed in");
    crate::telemetry::signin_completed(provider.id());
    let cookie = app
        .cookies
        .set(&app.cookies.session, &token, app.sessions.max_age());
    Ok(redirect(&finished.callback_url, false, vec![cookie]))
}

/// `POST /signout`: ends the session, clears the cookie, and sends the browser on.
pub async fn signout_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    let json = wants_url_json(&headers, &form);
    check_csrf(&app, &headers, &form, json)?;
    let store_error = |e: crate::store::StoreError| WebError::answer(e.into(), json);
    let everywhere = form
        .get("everywhere")
        .is_some_and(|v| v == "1" || v == "true");
    if let Some(token) = cookies::read(&headers, &app.cookies.session) {
        let session = app.sessions.load(token).await.map_err(store_error)?;
        match session {
            Some(session) if everywhere => {
                // Every session of this user, on every device; refresh tokens die with them.
                let user = &session.record.user_id;
                let ended = app.sessions.revoke_user(user).await.map_err(store_error)?;
                app.sessions.delete(token).await.map_err(store_error)?;
                tracing::info!(user = %user, sessions = ended, "signed out everywhere");
            }
            _ => {
                app.sessions.delete(token).await.map_err(store_error)?;
                tracing::info!("signed out");
            }
        }
    }
    let target = safe_callback_url(&app.config, form.get("callbackUrl").map(String::as_str));
    let clear = app.cookies.clear(&app.cookies.session);
    Ok(redirect(&target, json, vec![clear]))
}
