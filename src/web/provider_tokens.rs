//! `GET /provider-token/{provider}`: an app holding a latch access token for a user gets that
//! user's current access token at `provider` (refreshed there first if it has expired).
use super::extract::{invalid_token, Bearer};
use super::{AppState, WebError};
use crate::error::{AuthError, ErrorCode};
use crate::tokens::access::Accepted;
use axum::extract::{Path, State};
use axum::http::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

pub async fn provider_token(
    State(app): State<AppState>,
    Path(provider_id): Path<String>,
    bearer: Bearer,
) -> Response {
    // Only a token minted for this route (`audience=<provider_token_audience>` at `/token`)
    // whose session is still live: an API token, or one outliving a sign-out, is refused.
    let claims = match app
        .tokens
        .verify(bearer.token(), Accepted::ProviderTokens, &app.sessions)
        .await
    {
        Ok(Ok(claims)) => claims,
        Ok(Err(why)) => return invalid_token(format!("access token refused: {why}")),
        Err(e) => return WebError::json(e.into()).into_response(),
    };
    let user_id = claims["sub"].as_str().unwrap_or_default();
    let Some(provider) = app.providers.get(&provider_id) else {
        let error = AuthError::new(
            ErrorCode::UnknownProvider,
            format!("no provider {provider_id:?}"),
        );
        return WebError::json(error).into_response();
    };
    let kept = match app
        .provider_tokens
        .for_user(&app.users, user_id, provider)
        .await
    {
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
