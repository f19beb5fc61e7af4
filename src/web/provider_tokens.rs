//! `GET /provider-token/{provider}`: an app holding a latch access token for a user gets that
//! user's current access token at `provider` (refreshed there first if it has expired).
use super::tokens::TokenState;
use super::WebError;
use crate::error::{AuthError, ErrorCode};
use axum::extract::{Path, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CACHE_CONTROL, PRAGMA};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

fn refused(code: ErrorCode, reason: impl Into<String>) -> WebError {
    WebError::json(AuthError::new(code, reason))
}

/// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 section 3).
fn invalid_token(reason: impl Into<String>) -> Response {
    let mut response = refused(ErrorCode::InvalidAccessToken, reason).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

/// The token of an `Authorization: Bearer` header (RFC 6750), if well-formed.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 8192)
        .then_some(token)
}

pub async fn provider_token(
    State(t): State<TokenState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let app = &t.app;
    let Some(token) = bearer(&headers) else {
        let mut response = refused(
            ErrorCode::InvalidAccessToken,
            "no Authorization: Bearer header",
        )
        .into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    // Only a token minted for this route (`audience=<provider_token_audience>` at `/token`)
    // whose session is still live: an API token, or one outliving a sign-out, is refused.
    let audience = [app.config.tokens.provider_token_audience.as_str()];
    let claims = match app
        .tokens
        .verify_live(token, &audience, &app.sessions)
        .await
    {
        Ok(Ok(claims)) => claims,
        Ok(Err(why)) => return invalid_token(format!("access token refused: {why}")),
        Err(e) => return WebError::json(e.into()).into_response(),
    };
    let user_id = claims["sub"].as_str().unwrap_or_default();
    let Some(provider) = app.providers.get(&provider_id) else {
        return refused(
            ErrorCode::UnknownProvider,
            format!("no provider {provider_id:?}"),
        )
        .into_response();
    };
    if !provider.config.expose_tokens {
        return refused(
            ErrorCode::TokensNotExposed,
            format!("provider {provider_id:?} does not set expose_tokens"),
        )
        .into_response();
    }
    let accounts = match app
        .store
        .set_members(&format!("user_accounts:{user_id}"))
        .await
    {
        Ok(accounts) => accounts,
        Err(e) => return WebError::json(e.into()).into_response(),
    };
    let prefix = format!("{provider_id}:");
    let Some(subject) = accounts
        .iter()
        .filter_map(|a| a.strip_prefix(&prefix))
        .min()
    else {
        return refused(
            ErrorCode::NoProviderAccount,
            format!("user {user_id} has no {provider_id} account"),
        )
        .into_response();
    };
    let kept = match crate::provider_tokens::current(&app.store, provider, subject).await {
        Ok(kept) => kept,
        Err(e) => return WebError::json(e).into_response(),
    };
    let expires_at = kept
        .expires_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut response = Json(json!({
        "access_token": kept.access_token,
        "token_type": "Bearer",
        "expires_at": expires_at,
        "scope": kept.scope,
    }))
    .into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
