//! The headers every response carries: transport and framing rules, the request id, no
//! caching by default, and the CSP of HTML pages.
use super::{App, RequestContext};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;

/// How many headers [`security`] adds at most to an answer that is not HTML.
const SECURITY_HEADERS: usize = 6;

/// A header map with room for `own` headers and the ones [`security`] adds. The hot routes
/// (`/session`, `/verify`) start their answers with it: an empty map grows once at its first
/// insert and again past six headers, rehashing each time (`bench/instructions.sh`).
pub(super) fn with_room_for(own: usize) -> HeaderMap {
    // Content-Length, which axum adds to every answer with a body of known length.
    HeaderMap::with_capacity(own + 1 + SECURITY_HEADERS)
}

/// The headers every response carries; on HTML pages also the Content-Security-Policy with
/// this response's nonce.
pub(super) fn security(response: &mut Response, ctx: &RequestContext, app: &App) {
    let image = response
        .extensions()
        .get::<super::csp::ImageOrigin>()
        .cloned();
    let headers = response.headers_mut();
    if app.cookies.is_secure() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(super::context::X_REQUEST_ID, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The callback URL carries a code and state: never leak it to another origin.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let csp = super::csp::policy(app, &ctx.csp_nonce(), image.as_ref());
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
}
