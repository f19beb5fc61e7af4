//! HTTP face of the development OpenID provider (see `provider::dev`).
use super::{parse_form, AppState, RequestContext, WebError};
use crate::error::ErrorCode;
use crate::provider::dev::DevProvider;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{HeaderMap, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::Extension;
use base64::Engine;
use minijinja::context;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn dev(app: &AppState, id: &str) -> Result<Arc<DevProvider>, WebError> {
    app.providers
        .get(id)
        .and_then(|p| p.dev.clone())
        .ok_or_else(|| WebError::new(ErrorCode::NotFound, "no development provider with that id"))
}

pub(super) async fn discovery(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    Ok(Json(dev(&app, &id)?.discovery()))
}

pub(super) async fn jwks(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, WebError> {
    Ok(Json(dev(&app, &id)?.jwks()))
}

fn render_authorize(
    app: &AppState,
    ctx: &RequestContext,
    id: &str,
    params: &HashMap<String, String>,
    default_email: &str,
    problem: Option<String>,
) -> Result<Response, WebError> {
    const CARRIED: [&str; 7] = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
    ];
    let mut hidden: Vec<_> = CARRIED
        .iter()
        .filter_map(|k| params.get(*k).map(|v| context! { name => *k, value => v }))
        .collect();
    hidden.push(context! { name => "code_challenge_method", value => "S256" });
    let page = app
        .templates
        .render(
            "dev_authorize.html",
            context! {
                title => "Development sign-in",
                action_url => app.url(&format!("/dev/{id}/authorize")),
                client_name => "latch",
                hidden,
                default_email,
                problem,
                request_id => &*ctx.request_id,
                csp_nonce => ctx.csp_nonce(),
            },
        )
        .map_err(|e| WebError::new(ErrorCode::InternalError, format!("dev_authorize.html: {e}")))?;
    Ok(Html(page).into_response())
}

pub(super) async fn authorize_page(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let provider = dev(&app, &id)?;
    provider.check_authorize(&params).map_err(|reason| {
        WebError::new(ErrorCode::InvalidRequest, format!("dev provider: {reason}"))
    })?;
    render_authorize(&app, &ctx, &id, &params, "ada@example.com", None)
}

pub(super) async fn authorize_submit(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let provider = dev(&app, &id)?;
    let form = parse_form(&body);
    let request = provider.check_authorize(&form).map_err(|reason| {
        WebError::new(ErrorCode::InvalidRequest, format!("dev provider: {reason}"))
    })?;
    let email = form.get("email").map(String::as_str).unwrap_or("");
    let groups = form.get("groups").map(String::as_str);
    match provider.approve(
        &request,
        email,
        form.get("name").map(String::as_str),
        groups,
    ) {
        Ok(location) => {
            let mut response = StatusCode::FOUND.into_response();
            let location = HeaderValue::from_str(&location).map_err(|_| {
                WebError::new(ErrorCode::InternalError, "redirect not a header value")
            })?;
            response.headers_mut().insert(LOCATION, location);
            Ok(response)
        }
        Err(problem) => {
            let mut response = render_authorize(&app, &ctx, &id, &form, email, Some(problem))?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

pub(super) async fn token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let provider = dev(&app, &id)?;
    let form = parse_form(&body);
    Ok(match provider.token(basic_credentials(&headers), &form) {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => {
            tracing::warn!(
                error = e.1,
                reason = e.2,
                "dev provider token request refused"
            );
            let status = StatusCode::from_u16(e.0).unwrap_or(StatusCode::BAD_REQUEST);
            (
                status,
                Json(json!({"error": e.1, "error_description": e.2})),
            )
                .into_response()
        }
    })
}

pub(super) async fn userinfo(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let provider = dev(&app, &id)?;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    Ok(match token.and_then(|t| provider.userinfo(t)) {
        Some(claims) => Json(claims).into_response(),
        None => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_token"})),
            )
                .into_response();
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            r
        }
    })
}
