//! The facts of one request that its answer carries: its id and the CSP nonce.
use crate::crypto::random_token;
use axum::extract::Request;

/// Per-request facts, in the request's extensions for handlers that render pages.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// Nonce for this response's Content-Security-Policy `style-src`.
    pub csp_nonce: String,
}

impl RequestContext {
    /// The client's `X-Request-Id` when it is a sensible one, else a new id.
    pub(super) fn new(req: &Request) -> Self {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| valid_request_id(id))
            .map(str::to_string)
            .unwrap_or_else(|| random_token(12));
        RequestContext {
            request_id,
            csp_nonce: random_token(16),
        }
    }
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
