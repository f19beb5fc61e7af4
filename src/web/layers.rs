//! The layers a route carries from its group (see `routes.rs`), set once when the router is
//! built: whether its refusals are a page or JSON, the request-head limit, its rate-limit
//! class (`limits::enforce`) and, for sign-in routes, the provider its metrics are about.
use super::errors::{self, PendingError};
use super::{limits, AppState};
use crate::error::{AuthError, ErrorCode};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tower::{Layer, Service};

/// How a route's refusals are answered (a client that asks for JSON gets JSON anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Page,
    Json,
}

/// The layer of every route: refuses a request head over the limits with a 431, turns
/// axum's plain-text 413 into a refusal like any other, and marks the route's refusals as a
/// page or JSON. Unboxed: it adds no allocation to a request.
#[derive(Clone, Copy, Debug)]
pub struct GroupLayer {
    pub answer: Answer,
}

impl<S> Layer<S> for GroupLayer {
    type Service = GroupService<S>;

    fn layer(&self, inner: S) -> GroupService<S> {
        GroupService {
            inner,
            answer: self.answer,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GroupService<S> {
    inner: S,
    answer: Answer,
}

impl<S> Service<Request> for GroupService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GroupFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let state = match limits::head_too_large(&req) {
            Some(refusal) => Inner::Refused(Some(refusal.into_response())),
            None => Inner::Called(self.inner.call(req)),
        };
        GroupFuture {
            state,
            answer: self.answer,
        }
    }
}

enum Inner<F> {
    Called(F),
    Refused(Option<Response>),
}

pub struct GroupFuture<F> {
    state: Inner<F>,
    answer: Answer,
}

impl<F> Future for GroupFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = match &mut this.state {
            Inner::Called(future) => ready!(Pin::new(future).poll(cx))?,
            Inner::Refused(response) => response.take().expect("polled after completion"),
        };
        Poll::Ready(Ok(mark(response, this.answer)))
    }
}

fn mark(mut response: Response, answer: Answer) -> Response {
    let status = response.status();
    if let Some(pending) = response.extensions_mut().get_mut::<PendingError>() {
        pending.json |= answer == Answer::Json;
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        // axum's own body-limit rejection (`DefaultBodyLimit`) is plain text.
        let error = AuthError::new(
            ErrorCode::PayloadTooLarge,
            "request body over the 64 KiB limit",
        );
        response
            .extensions_mut()
            .insert(PendingError::new(error, answer == Answer::Json));
    }
    response
}

/// Which sign-in step a route is, for the metrics about its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowRoute {
    /// `/signin/{provider}`: refusals count as failed sign-ins.
    Start,
    /// `/callback/{provider}`: timed, and refusals count as failed sign-ins.
    Callback,
    /// `/provider-token/{provider}`: only its provider calls are labelled.
    ProviderToken,
}

/// For the routes ending in `{provider}`: the provider's configured id (`unknown` for
/// anything else, so request input never becomes a metric label) labels the provider calls
/// the request makes, the callback's duration and failed sign-ins.
pub async fn flow_metrics(
    State((app, route)): State<(AppState, FlowRoute)>,
    req: Request,
    next: Next,
) -> Response {
    let id = req.uri().path().rsplit('/').next().unwrap_or_default();
    let provider = app
        .providers
        .get(id)
        .map_or("unknown", |p| p.id())
        .to_string();
    let started = std::time::Instant::now();
    let response = crate::telemetry::with_provider(provider.clone(), next.run(req)).await;
    if route == FlowRoute::Callback {
        crate::telemetry::callback_duration(&provider, started.elapsed());
    }
    if route != FlowRoute::ProviderToken {
        if let Some(code) = errors::refusal_code(&response) {
            crate::telemetry::signin_failed(&provider, code.as_str());
        }
    }
    response
}
