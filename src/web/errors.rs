//! Turning refusals into answers. Handlers return `WebError`; the middleware here renders it
//! (HTML page or JSON, with the request id), writes the one log line, and adds the security
//! headers every response carries.
use super::{AppState, RequestContext};
use crate::crypto::random_token;
use crate::error::{AuthError, ErrorCode};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json, Response};
use minijinja::context;
use tracing::Instrument;

/// A refusal plus how to answer it.
#[derive(Debug)]
pub struct WebError {
    pub error: AuthError,
    pub json: bool,
    /// A page shown on request (`/error?error=`), not a refusal: no warning in the log.
    pub quiet: bool,
}

impl WebError {
    pub fn page(error: AuthError) -> Self {
        WebError {
            error,
            json: false,
            quiet: false,
        }
    }
    pub fn json(error: AuthError) -> Self {
        WebError {
            error,
            json: true,
            quiet: false,
        }
    }
    /// The error page for `code`, shown because it was asked for.
    pub fn shown(code: ErrorCode) -> Self {
        WebError {
            error: AuthError::new(code, "error page shown"),
            json: false,
            quiet: true,
        }
    }
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self::page(AuthError::new(code, reason))
    }
    /// A page or JSON, as the client asked.
    pub fn answer(error: AuthError, json: bool) -> Self {
        if json {
            Self::json(error)
        } else {
            Self::page(error)
        }
    }
}

impl From<AuthError> for WebError {
    fn from(error: AuthError) -> Self {
        WebError::page(error)
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(err: crate::store::StoreError) -> Self {
        WebError::page(err.into())
    }
}

/// Marker carried in response extensions to the middleware, which renders it.
#[derive(Clone)]
struct PendingError {
    error: AuthError,
    json: bool,
    quiet: bool,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut response = self.error.code.status().into_response();
        response.extensions_mut().insert(PendingError {
            error: self.error,
            json: self.json,
            quiet: self.quiet,
        });
        response
    }
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Does this client want JSON rather than a page?
fn wants_json(req: &Request) -> bool {
    let headers = req.headers();
    let accept_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let path = req.uri().path();
    let api_path = [
        "/session",
        "/csrf",
        "/providers",
        "/readyz",
        "/verify",
        "/token",
        "/refresh",
        "/revoke",
        "/introspect",
        "/.well-known/jwks.json",
    ]
    .iter()
    .any(|p| path.ends_with(p))
        || path.contains("/provider-token/");
    let return_redirect = req.method() == Method::POST
        && headers
            .get("x-auth-return-redirect")
            .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes() == b"true");
    accept_json || api_path || return_redirect
}

pub async fn request_context(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_request_id(id))
        .map(str::to_string)
        .unwrap_or_else(|| random_token(12));
    let ctx = RequestContext {
        request_id: request_id.clone(),
        csp_nonce: random_token(16),
    };
    let json_client = wants_json(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(ctx.clone());
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
    let started = std::time::Instant::now();
    let flow_route = flow_route(&app, &path);
    let provider = flow_route.map_or("none", |(_, p)| p).to_string();
    let mut response =
        crate::telemetry::with_provider(provider.clone(), next.run(req).instrument(span.clone()))
            .await;
    if let Some((FlowRoute::Callback, _)) = flow_route {
        crate::telemetry::callback_duration(&provider, started.elapsed());
    }

    // axum's own body-limit rejection (`DefaultBodyLimit`) is plain text: answer it like
    // every other refusal.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.extensions().get::<PendingError>().is_none()
    {
        response.extensions_mut().insert(PendingError {
            error: AuthError::new(
                ErrorCode::PayloadTooLarge,
                "request body over the 64 KiB limit",
            ),
            json: false,
            quiet: false,
        });
    }

    if let Some(pending) = response.extensions_mut().remove::<PendingError>() {
        let _entered = span.enter();
        let status = pending.error.code.status();
        if let Some((FlowRoute::Start | FlowRoute::Callback, _)) = flow_route {
            crate::telemetry::signin_failed(&provider, pending.error.code.as_str());
        }
        if pending.quiet {
            tracing::debug!(code = %pending.error.code, "error page shown");
        } else if status.is_server_error() {
            tracing::error!(code = %pending.error.code, status = status.as_u16(), reason = %pending.error.reason, "request failed");
        } else {
            tracing::warn!(code = %pending.error.code, status = status.as_u16(), reason = %pending.error.reason, "request refused");
        }
        let mut rendered = render(&app, &ctx, &pending.error, pending.json || json_client);
        // Keep headers a handler set deliberately (e.g. clearing a cookie).
        for (name, value) in response.headers() {
            if name == header::SET_COOKIE
                || name == header::WWW_AUTHENTICATE
                || name == header::RETRY_AFTER
                || name == header::ALLOW
            {
                rendered.headers_mut().append(name, value.clone());
            }
        }
        response = rendered;
    }
    crate::telemetry::http_request(response.status().as_u16());
    tracing::debug!(parent: &span, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "served");
    security_headers(&mut response, &ctx, &request_id, app.cookies.is_secure());
    response
}

#[derive(Clone, Copy)]
enum FlowRoute {
    Start,
    Callback,
    ProviderToken,
}

/// For `/signin/{provider}`, `/callback/{provider}` and `/provider-token/{provider}`: which,
/// and the provider's configured id (`unknown` for anything else, so request input never
/// becomes a metric label).
fn flow_route<'a>(app: &'a AppState, path: &str) -> Option<(FlowRoute, &'a str)> {
    let rest = path.strip_prefix(app.config.server.base_path.as_str())?;
    let (route, id) = if let Some(id) = rest.strip_prefix("/signin/") {
        (FlowRoute::Start, id)
    } else if let Some(id) = rest.strip_prefix("/callback/") {
        (FlowRoute::Callback, id)
    } else {
        (
            FlowRoute::ProviderToken,
            rest.strip_prefix("/provider-token/")?,
        )
    };
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some((route, app.providers.get(id).map_or("unknown", |p| p.id())))
}

fn render(app: &AppState, ctx: &RequestContext, error: &AuthError, json: bool) -> Response {
    let code = error.code;
    let status = code.status();
    if json {
        let body = serde_json::json!({
            "error": code.as_str(),
            "message": code.message(),
            "hint": error.hint,
            "requestId": ctx.request_id,
        });
        return (status, Json(body)).into_response();
    }
    let page = app.templates.render(
        "error.html",
        context! {
            title => code.heading(),
            heading => code.heading(),
            message => code.message(),
            hint => error.hint.clone(),
            code => code.as_str(),
            status => status.as_u16(),
            request_id => ctx.request_id.clone(),
            csp_nonce => ctx.csp_nonce.clone(),
            signin_url => app.url("/signin"),
        },
    );
    match page {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page template failed");
            (
                status,
                format!(
                    "{}: {}\nrequest id: {}\n",
                    code,
                    code.message(),
                    ctx.request_id
                ),
            )
                .into_response()
        }
    }
}

fn security_headers(response: &mut Response, ctx: &RequestContext, request_id: &str, https: bool) {
    let headers = response.headers_mut();
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
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
        let csp = format!(
            "default-src 'none'; style-src 'nonce-{}'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
            ctx.csp_nonce
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
}
