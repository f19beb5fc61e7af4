//! The facts of one request that its answer carries: its id and the CSP nonce.
use axum::extract::Request;
use axum::http::HeaderName;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use std::sync::Arc;

/// The request id's header, in the request (a client's own id) and in every response.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Random bytes of a new request id (16 characters of base64url).
const ID_BYTES: usize = 12;

/// Per-request facts, in the request's extensions for handlers that render pages. Cheap to
/// clone (the id is shared): the request layer keeps one copy for the response.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    /// The random bytes of this response's CSP nonce, written out only for an HTML page
    /// (most answers are JSON or a redirect, which need none).
    nonce: [u8; 16],
}

impl RequestContext {
    /// The client's `X-Request-Id` when it is a sensible one, else a new id.
    pub(super) fn new(req: &Request) -> Self {
        // One draw for the nonce and a new id's bytes.
        let mut random = [0u8; 16 + ID_BYTES];
        rand::rng().fill_bytes(&mut random);
        let (nonce, id) = random.split_at(16);
        let request_id = match req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| valid_request_id(id))
        {
            Some(client) => Arc::from(client),
            None => {
                let mut text = [0u8; ID_BYTES / 3 * 4];
                let n = URL_SAFE_NO_PAD
                    .encode_slice(id, &mut text)
                    .expect("12 bytes are 16 base64 characters");
                Arc::from(std::str::from_utf8(&text[..n]).expect("base64 is ASCII"))
            }
        };
        RequestContext {
            request_id,
            nonce: nonce.try_into().expect("16 bytes"),
        }
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
        assert_eq!(a.request_id.len(), 16);
        assert!(valid_request_id(&a.request_id));
    }

    #[test]
    fn a_sensible_client_id_is_kept_and_another_replaced() {
        let with = |id: &str| {
            let mut req = Request::new(axum::body::Body::empty());
            req.headers_mut().insert(X_REQUEST_ID, id.parse().unwrap());
            RequestContext::new(&req).request_id
        };
        assert_eq!(&*with("abc-123_x.y"), "abc-123_x.y");
        assert_ne!(&*with("no spaces"), "no spaces");
        assert_eq!(with(&"a".repeat(65)).len(), 16);
    }
}
