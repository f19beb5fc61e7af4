//! `POST /backchannel-logout/{provider}`: the OpenID Back-Channel Logout 1.0 receiver. The
//! provider's server posts a Logout Token; latch verifies it (`Provider::verify_logout_token`)
//! and ends the sessions it names (`backchannel::log_out`). Answers as the spec says: 200
//! with `Cache-Control: no-store`, or 400 `{"error":"invalid_request"}` and nothing ended.
use super::{parse_form, AppState, WebError};
use crate::backchannel::{self, Outcome};
use crate::error::{AuthError, ErrorCode};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

pub async fn logout(
    State(app): State<AppState>,
    Path(provider_id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let provider = app.providers.get(&provider_id).ok_or_else(|| {
        WebError::json(AuthError::new(
            ErrorCode::UnknownProvider,
            format!(
                "back-channel logout for unknown provider {:?}",
                provider_id.chars().take(64).collect::<String>()
            ),
        ))
    })?;
    let form = parse_form(&body);
    let Some(token) = form.get("logout_token").filter(|t| !t.is_empty()) else {
        return Ok(refused(provider.id(), "no logout_token form field".into()));
    };
    let claims = match provider
        .verify_logout_token(token)
        .await
        .map_err(WebError::json)?
    {
        Ok(claims) => claims,
        Err(reason) => return Ok(refused(provider.id(), reason)),
    };
    let now = chrono::Utc::now().timestamp();
    let outcome = backchannel::log_out(
        &*app.store,
        &app.users,
        &app.sessions,
        provider.id(),
        &claims,
        now,
    )
    .await
    .map_err(|e| WebError::json(e.into()))?;
    match outcome {
        Outcome::Replayed => Ok(refused(
            provider.id(),
            "jti already used: a replayed Logout Token".into(),
        )),
        Outcome::Ended(sessions) => {
            tracing::info!(
                provider = provider.id(),
                sessions,
                by_sid = claims.sid.is_some(),
                by_sub = claims.sub.is_some(),
                "back-channel logout"
            );
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
    }
}

/// 400 `invalid_request` with the reason, which also goes to the log.
fn refused(provider: &str, reason: String) -> Response {
    tracing::warn!(provider, %reason, "back-channel logout refused: nothing ended");
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "invalid_request", "error_description": reason })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
