//! The facts of one request that its answer carries: its id and the CSP nonce.
use crate::crypto::random_token;
use axum::extract::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// Per-request facts, in the request's extensions for handlers that render pages.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// The random bytes of this response's CSP nonce, written out only for an HTML page
    /// (most answers are JSON or a redirect, which need none).
    nonce: [u8; 16],
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
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        RequestContext { request_id, nonce }
    }

    /// Nonce for this response's Content-Security-Policy `style-src` (the same on every call).
    pub fn csp_nonce(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.nonce)
    }
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_is_the_same_for_one_request_and_new_for_the_next() {
        let req = Request::new(axum::body::Body::empty());
        let (a, b) = (RequestContext::new(&req), RequestContext::new(&req));
        assert_eq!(a.csp_nonce(), a.clone().csp_nonce());
        assert_eq!(a.csp_nonce().len(), 22);
        assert_ne!(a.csp_nonce(), b.csp_nonce());
        assert_ne!(a.request_id, b.request_id);
    }
}
