//! Liveness, readiness, metrics and the 404 and 405 fallbacks.
use super::{AppState, WebError};
use crate::error::ErrorCode;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::time::Duration;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the store answers, 503 with the reason when it does not (bounded wait).
pub async fn readyz(State(app): State<AppState>) -> Response {
    let backend = app.store.backend();
    let result = tokio::time::timeout(Duration::from_secs(3), app.store.ping()).await;
    let reason = match result {
        Ok(Ok(())) => return Json(json!({"status": "ready", "store": backend})).into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "store did not answer within 3 s".to_string(),
    };
    tracing::warn!(store = backend, %reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "store": backend, "reason": reason})),
    )
        .into_response()
}

/// Prometheus text exposition of the process's metrics.
pub async fn metrics() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::handle().render(),
    )
        .into_response()
}

pub async fn method_not_allowed(method: axum::http::Method) -> WebError {
    WebError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not served here"),
    )
}

pub async fn not_found() -> WebError {
    WebError::new(ErrorCode::NotFound, "no route")
}
