//! What every refusal must look like from the browser's side.
use super::browser::Browser;
use super::latch::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The refusal has the expected status (never a 500), a request id, names its code, sets no
/// session cookie, and leaves the browser signed out.
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
    assert_eq!(response.status(), status, "expected {code}");
    assert!(response.headers().get("x-request-id").is_some());
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("latch.session-token=")),
        "no session cookie on refusal"
    );
    let body = response.text().await.unwrap();
    assert!(body.contains(code), "page names {code}: {body}");
    assert!(browser.cookie("latch.session-token").is_none());
    let session = browser.get(&app.url("/session")).await;
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session, json!({}));
}
