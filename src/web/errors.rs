//! Turning refusals into answers. Handlers return `WebError`; it travels in the response to
//! [`answer`] (called by `request::RequestLayer`), which writes the one log line and
//! renders it: an HTML page or JSON, with the request id.
use super::{AppState, RequestContext};
use crate::error::{AuthError, ErrorCode};
use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use minijinja::context;

/// A refusal plus how to answer it.
#[derive(Debug)]
pub struct WebError {
    pub error: AuthError,
    pub json: bool,
    /// A page shown on request (`/error?error=`), not a refusal: no warning in the log.
    pub quiet: bool,
    /// Answer with a 303 to this URL instead of a page (refused callbacks, SPEC §3); the
    /// refusal is still logged and counted here.
    pub redirect: Option<String>,
}

impl WebError {
    pub fn page(error: AuthError) -> Self {
        WebError {
            error,
            json: false,
            quiet: false,
            redirect: None,
        }
    }
    pub fn json(error: AuthError) -> Self {
        WebError {
            error,
            json: true,
            quiet: false,
            redirect: None,
        }
    }
    /// The error page for `code`, shown because it was asked for.
    pub fn shown(code: ErrorCode) -> Self {
        Self::shown_error(AuthError::new(code, "error page shown"))
    }
    /// The error page for `error` (its code and hint), shown because it was asked for.
    pub fn shown_error(error: AuthError) -> Self {
        WebError {
            error,
            json: false,
            quiet: true,
            redirect: None,
        }
    }
    /// A refusal answered by sending the browser to `url` (the error page).
    pub fn redirect(error: AuthError, url: String) -> Self {
        WebError {
            redirect: Some(url),
            ..Self::page(error)
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

/// Marker carried in response extensions to [`answer`], which renders it.
#[derive(Clone)]
pub(super) struct PendingError {
    error: AuthError,
    /// Set by the handler, or by the route's group (`layers::GroupLayer`).
    pub(super) json: bool,
    quiet: bool,
    /// The response is already the redirect to the error page: log, count, do not render.
    redirected: bool,
}

impl PendingError {
    /// A refusal found by a layer rather than a handler.
    pub(super) fn new(error: AuthError, json: bool) -> Self {
        PendingError {
            error,
            json,
            quiet: false,
            redirected: false,
        }
    }
}

/// The code of the refusal `response` carries, if it is one.
pub(super) fn refusal_code(response: &Response) -> Option<ErrorCode> {
    response
        .extensions()
        .get::<PendingError>()
        .map(|p| p.error.code)
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let location = self
            .redirect
            .as_deref()
            .and_then(|url| HeaderValue::from_str(url).ok());
        let redirected = location.is_some();
        let mut response = match location {
            Some(location) => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(header::LOCATION, location);
                r
            }
            None => self.error.code.status().into_response(),
        };
        response.extensions_mut().insert(PendingError {
            error: self.error,
            json: self.json,
            quiet: self.quiet,
            redirected,
        });
        response
    }
}

/// The status of `/error?error=<code>`: the code's own status for a refusal of the
/// client's request (4xx), 200 for a code that names a failure on latch's or a provider's
/// side, since the code comes from the query string and showing its page is not a failure
/// (`/error` never answers 5xx). The page still says which status the refusal had.
pub fn shown_status(code: ErrorCode) -> StatusCode {
    let status = code.status();
    if status.is_server_error() {
        StatusCode::OK
    } else {
        status
    }
}

/// Did the client ask for JSON (its `Accept`, or the next-auth client's
/// `X-Auth-Return-Redirect` on a POST), whatever the route's group answers with?
pub(super) fn client_wants_json(req: &Request) -> bool {
    let headers = req.headers();
    let accept_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let return_redirect = req.method() == Method::POST
        && headers
            .get("x-auth-return-redirect")
            .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes() == b"true");
    accept_json || return_redirect
}

/// Logs the refusal `response` carries (one line, in the request's span) and renders it,
/// unless it is already a redirect to the error page.
pub(super) fn answer(
    app: &AppState,
    ctx: &RequestContext,
    response: &mut Response,
    client_json: bool,
    span: &tracing::Span,
) {
    let Some(pending) = response.extensions_mut().remove::<PendingError>() else {
        return;
    };
    let _entered = span.enter();
    let status = pending.error.code.status();
    let redirected = pending.redirected;
    if pending.quiet {
        tracing::debug!(code = %pending.error.code, "error page shown");
    } else if status.is_server_error() {
        tracing::error!(code = %pending.error.code, status = status.as_u16(), redirected, reason = %pending.error.reason, "request failed");
    } else {
        tracing::warn!(code = %pending.error.code, status = status.as_u16(), redirected, reason = %pending.error.reason, "request refused");
    }
    if redirected {
        return;
    }
    let status = if pending.quiet {
        shown_status(pending.error.code)
    } else {
        status
    };
    let json = pending.json || client_json;
    let mut rendered = render(app, ctx, &pending.error, status, json);
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
    *response = rendered;
}

/// `status` is the answer's; the page names the code's own.
fn render(
    app: &AppState,
    ctx: &RequestContext,
    error: &AuthError,
    status: StatusCode,
    json: bool,
) -> Response {
    let code = error.code;
    if json {
        let body = serde_json::json!({
            "error": code.as_str(),
            "message": code.message(),
            "hint": error.hint,
            "requestId": &*ctx.request_id,
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
            status => code.status().as_u16(),
            request_id => &*ctx.request_id,
            csp_nonce => ctx.csp_nonce(),
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
