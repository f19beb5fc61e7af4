//! What every refusal must look like from the browser's side.
use super::browser::{location, query_param, Browser};
use super::latch::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The refusal has the expected status (never a 500), a request id, names its code, sets no
/// session cookie, and leaves the browser signed out.
///
/// A refused callback (SPEC §3) is a 303 to `{base}/error?error=<code>` that carries neither
/// `code` nor `state`; the error page it leads to names the code and the refusal's status,
/// and answers with that status, except that `/error` never answers 5xx (a server-side code
/// shows its page with 200). Any other refusal is the page itself, with `status`.
pub async fn assert_refused(
    app: &TestApp,
    browser: &Browser,
    response: reqwest::Response,
    code: &str,
    status: StatusCode,
) {
    assert_ne!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "never a 500 ({code})"
    );
    assert_eq!(
        latch::error::ErrorCode::parse(code).status(),
        status,
        "{code} is answered with {status}"
    );
    assert!(response.headers().get("x-request-id").is_some());
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("latch.session-token=")),
        "no session cookie on refusal"
    );
    let page = if response.url().path().contains("/callback/") {
        let page = follow_error_redirect(app, browser, response, code).await;
        assert_eq!(page.status(), shown_status(status), "error page for {code}");
        page
    } else {
        assert_eq!(response.status(), status, "expected {code}");
        response
    };
    let body = page.text().await.unwrap();
    assert!(body.contains(code), "page names {code}: {body}");
    assert!(
        body.contains(&format!("Error {}", status.as_u16())),
        "page names the status {status}: {body}"
    );
    assert!(browser.cookie("latch.session-token").is_none());
    let session = browser.get(&app.url("/session")).await;
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session, json!({}));
}

/// The status `/error` answers for a refusal with `status`: never a 5xx.
pub fn shown_status(status: StatusCode) -> StatusCode {
    if status.is_server_error() {
        StatusCode::OK
    } else {
        status
    }
}

/// A refused callback: a 303 to `{base}/error?error=<code>` that carries neither `code`
/// nor `state`. Follows it and returns the error page's response.
pub async fn follow_error_redirect(
    app: &TestApp,
    browser: &Browser,
    response: reqwest::Response,
    code: &str,
) -> reqwest::Response {
    let target = location(&response, StatusCode::SEE_OTHER);
    assert_eq!(
        target.split('?').next().unwrap(),
        app.url("/error"),
        "a refused callback goes to the error page"
    );
    assert_eq!(
        query_param(&target, "error").as_deref(),
        Some(code),
        "{target}"
    );
    for secret in ["code", "state", "iss"] {
        assert!(query_param(&target, secret).is_none(), "{target}");
    }
    browser.get(&target).await
}

/// A refused callback, for a browser that may be signed in: the redirect, then the error
/// page with the code's status (as `/error` shows it) naming the code. Returns the page.
pub async fn assert_callback_refused(
    app: &TestApp,
    browser: &Browser,
    response: reqwest::Response,
    code: &str,
) -> String {
    assert!(response.headers().get("x-request-id").is_some());
    let status = latch::error::ErrorCode::parse(code).status();
    let page = follow_error_redirect(app, browser, response, code).await;
    assert_eq!(page.status(), shown_status(status), "error page for {code}");
    let body = page.text().await.unwrap();
    assert!(body.contains(code), "page names {code}: {body}");
    body
}
