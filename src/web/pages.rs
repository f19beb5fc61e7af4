//! The HTML pages: sign-in, sign-out confirmation, error.
use super::extract::{Csrf, OptionalSession};
use super::redirect::{safe_callback_url, signin_landing};
use super::{AppState, RequestContext, WebError};
use crate::error::{AuthError, ErrorCode};
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use minijinja::context;
use std::collections::HashMap;

pub(super) fn html(
    app: &AppState,
    name: &str,
    ctx: minijinja::Value,
) -> Result<Response, WebError> {
    let page = app.templates.render(name, ctx).map_err(|e| {
        WebError::new(
            ErrorCode::InternalError,
            format!("template {name} failed: {e}"),
        )
    })?;
    Ok(Html(page).into_response())
}

pub async fn signin_page(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Query(query): Query<HashMap<String, String>>,
    csrf: Csrf,
) -> Result<Response, WebError> {
    let callback_url = signin_landing(&app.config, query.get("callbackUrl").map(String::as_str));
    let (csrf_token, csrf_cookie) = csrf.token(&app);
    let providers: Vec<_> = app
        .providers
        .iter()
        .map(|p| {
            context! {
                id => p.id(),
                name => p.config.name.clone(),
                action_url => p.signin_url.clone(),
                is_dev => p.dev.is_some(),
                logo => p.config.logo.as_deref().and_then(super::logos::data_uri),
            }
        })
        .collect();
    // Only known codes are shown, so the page never echoes arbitrary text.
    let error = query.get("error").map(|c| ErrorCode::parse(c)).map(|code| {
        context! { code => code.as_str(), message => code.message() }
    });
    let mut response = html(
        &app,
        "signin.html",
        context! {
            title => "Sign in",
            providers,
            csrf_token,
            callback_url,
            error,
            request_id => &*ctx.request_id,
            csp_nonce => ctx.csp_nonce(),
        },
    )?;
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

pub async fn signout_page(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Query(query): Query<HashMap<String, String>>,
    csrf: Csrf,
    signed_in: OptionalSession,
) -> Result<Response, WebError> {
    let callback_url = safe_callback_url(&app.config, query.get("callbackUrl").map(String::as_str));
    let (csrf_token, csrf_cookie) = csrf.token(&app);
    let user = signed_in.session.map(|session| {
        let profile = session.record.profile;
        context! { name => profile.name, email => profile.email }
    });
    let mut response = html(
        &app,
        "signout.html",
        context! {
            title => "Sign out",
            action_url => app.url("/signout"),
            csrf_token,
            callback_url,
            user,
            request_id => &*ctx.request_id,
            csp_nonce => ctx.csp_nonce(),
        },
    )?;
    if let Some(cookie) = csrf_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `/error?error=<Code>`: the page for that code, with its status when that is a 4xx (never a
/// 5xx: see `errors::shown_status`). `provider=<id>` (from a refused callback) names the
/// providers to use instead; only configured ids are shown, so the page echoes no input.
pub async fn error_page(
    State(app): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> WebError {
    let values = |name: &'static str| query.iter().filter(move |(k, _)| k == name).map(|(_, v)| v);
    let code = ErrorCode::parse(values("error").next().map_or("Default", String::as_str));
    let mut ids: Vec<String> = Vec::new();
    for id in values("provider").take(8) {
        if let Some(p) = app.providers.get(id) {
            if !ids.iter().any(|known| known == p.id()) {
                ids.push(p.id().to_string());
            }
        }
    }
    let error = AuthError::new(code, "error page shown");
    let hint = crate::flow::use_instead_hint(&ids, |id| {
        app.providers
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.config.name.clone())
    });
    WebError::shown_error(match hint {
        Some(hint) if code == ErrorCode::OAuthAccountNotLinked => error.with_hint(hint),
        _ => error,
    })
}
