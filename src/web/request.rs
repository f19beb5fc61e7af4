//! The middleware every request passes through first. Each job is one call: the request's
//! context (id, CSP nonce), the X-Forwarded-For notice, its log span, the audit log's view of
//! it (`audit::RequestInfo`), then, on the way out,
//! the refusal's log line and page or JSON (`errors::answer`), the request count and the
//! response headers (`headers::security`).
use super::{errors, headers, AppState, RequestContext};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use tracing::Instrument;

pub async fn request_context(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let ctx = RequestContext::new(&req);
    let client_json = errors::client_wants_json(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %ctx.request_id,
        method = %req.method(),
        path = %req.uri().path()
    );
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        span.in_scope(|| app.limiter.notice_forwarded(peer.ip(), req.headers()));
    }
    // What the audit log says of the request its events happen in (only when it is on).
    let audit = app.audit.is_on().then(|| crate::audit::RequestInfo {
        ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| app.limiter.client_ip(peer.ip(), req.headers())),
        user_agent: req
            .headers()
            .get(axum::http::header::USER_AGENT)
            .map(|v| crate::audit::RequestInfo::user_agent(v.as_bytes())),
        request_id: Some(ctx.request_id.clone()),
    });
    req.extensions_mut().insert(ctx.clone());
    let started = std::time::Instant::now();
    let served = next.run(req).instrument(span.clone());
    let mut response = match audit {
        Some(info) => crate::audit::Audit::in_request(info, served).await,
        None => served.await,
    };
    errors::answer(&app, &ctx, &mut response, client_json, &span);
    crate::telemetry::http_request(response.status().as_u16());
    tracing::debug!(parent: &span, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "served");
    headers::security(&mut response, &ctx, &app);
    response
}
