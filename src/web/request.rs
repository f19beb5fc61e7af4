//! The layer every request passes through first. Each job is one call: the request's
//! context (id, CSP nonce), the X-Forwarded-For notice, its log span, the audit log's view of
//! it (`audit::RequestInfo`), then, on the way out,
//! the refusal's log line and page or JSON (`errors::answer`), the request count and the
//! response headers (`headers::security`).
//!
//! A hand-written tower layer rather than `axum::middleware::from_fn`: that boxes the
//! request's future and clones the inner route into a boxed `Next` on every request
//! (`bench/instructions.sh` counts the difference); this one allocates nothing of its own
//! unless the audit log is on.
use super::{errors, headers, AppState, RequestContext};
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

/// Puts [`RequestService`] around a router's routes.
#[derive(Clone)]
pub struct RequestLayer {
    app: AppState,
}

impl RequestLayer {
    pub fn new(app: AppState) -> Self {
        RequestLayer { app }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService {
            inner,
            app: self.app.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    app: AppState,
}

impl<S> Service<Request> for RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let app = &self.app;
        let ctx = RequestContext::new(&req);
        let client_json = errors::client_wants_json(&req);
        let head = req.method() == axum::http::Method::HEAD;
        let span = tracing::info_span!(
            "request",
            request_id = %ctx.request_id,
            method = %req.method(),
            path = %req.uri().path()
        );
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        if let Some(peer) = peer {
            span.in_scope(|| app.limiter.notice_forwarded(peer, req.headers()));
        }
        // What the audit log says of the request its events happen in (only when it is on).
        let audit = app.audit.is_on().then(|| crate::audit::RequestInfo {
            ip: peer.map(|peer| app.limiter.client_ip(peer, req.headers())),
            user_agent: req
                .headers()
                .get(axum::http::header::USER_AGENT)
                .map(|v| crate::audit::RequestInfo::user_agent(v.as_bytes())),
            request_id: Some(ctx.request_id.to_string()),
        });
        req.extensions_mut().insert(ctx.clone());
        let started = Instant::now();
        // The inner service's own `call` runs in the span too, as the whole request does.
        let served = span
            .in_scope(|| self.inner.call(req))
            .instrument(span.clone());
        let served = match audit {
            Some(info) => Served::Audited(Box::pin(crate::audit::Audit::in_request(info, served))),
            None => Served::Plain(served),
        };
        RequestFuture {
            served,
            done: Some(Done {
                app: self.app.clone(),
                ctx,
                client_json,
                head,
                span,
                started,
            }),
        }
    }
}

/// The inner service's answer on its way, in the request's span (and audit scope).
enum Served<F> {
    Plain(Instrumented<F>),
    Audited(Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>),
}

/// What the way out needs, taken when the answer is there.
struct Done {
    app: AppState,
    ctx: RequestContext,
    client_json: bool,
    /// A HEAD request: the answer goes without its body.
    head: bool,
    span: tracing::Span,
    started: Instant,
}

pub struct RequestFuture<F> {
    served: Served<F>,
    done: Option<Done>,
}

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let answered = match &mut this.served {
            Served::Plain(future) => Pin::new(future).poll(cx),
            Served::Audited(future) => future.as_mut().poll(cx),
        };
        let Ok(mut response) = ready!(answered);
        let Done {
            app,
            ctx,
            client_json,
            head,
            span,
            started,
        } = this.done.take().expect("polled after completion");
        errors::answer(&app, &ctx, &mut response, client_json, &span);
        crate::telemetry::http_request(response.status().as_u16());
        tracing::debug!(parent: &span, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "served");
        headers::security(&mut response, &ctx, &app);
        if head {
            without_body(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

/// A HEAD answer: the length the body would have had, and no body. axum does this for the
/// answers of its routes, but a refusal rendered here comes after it, and over HTTP/2 a
/// HEAD answer with a body is a protocol error.
fn without_body(response: &mut Response) {
    use axum::http::header::CONTENT_LENGTH;
    use hyper::body::Body as _;
    if !response.headers().contains_key(CONTENT_LENGTH) {
        // Not for an empty body: axum empties a streamed one without giving its length.
        if let Some(n) = response.body().size_hint().exact().filter(|&n| n > 0) {
            response.headers_mut().insert(CONTENT_LENGTH, n.into());
        }
    }
    *response.body_mut() = axum::body::Body::empty();
}
