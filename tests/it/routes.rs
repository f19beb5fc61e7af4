//! The routes' contracts beyond the happy path: CSRF, unknown providers, error pages,
//! health, and what a bad request gets.
use crate::support::browser::Browser;
use crate::support::latch::Setup;
use crate::support::refusal::assert_callback_refused;
use reqwest::StatusCode;
use serde_json::Value;

/// The header with which Auth.js v5's client asks for JSON.
const JSON: (&str, &str) = ("X-Auth-Return-Redirect", "1");

#[tokio::test]
async fn signin_post_needs_a_valid_csrf_token() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    // No cookie at all.
    let r = browser
        .post_form(&app.url("/signin/dev"), &[("csrfToken", "x")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("MissingCSRF"));
    // Cookie present, wrong token; JSON client gets JSON.
    let _ = browser.get(&app.url("/csrf")).await;
    let r = browser
        .post_form_with(&app.url("/signin/dev"), JSON, &[("csrfToken", "wrong")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "MissingCSRF");
    assert!(body["requestId"].is_string());
    // Same for sign-out.
    let r = browser.post_form(&app.url("/signout"), &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_provider_and_unknown_route() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let r = browser.get(&app.url("/signin/nope")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("UnknownProvider"));
    let r = browser.get(&app.url("/callback/nope?state=x&code=y")).await;
    assert_callback_refused(&app, &browser, r, "UnknownProvider").await;
    let r = browser.get(&app.url("/no/such/page")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn error_page_has_the_codes_status_and_never_echoes_input() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let r = browser.get(&app.url("/error?error=AccessDenied")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    assert!(html.contains("AccessDenied") && html.contains(&request_id));
    let r = browser
        .get(&app.url("/error?error=%3Cscript%3Ealert(1)%3C/script%3E"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!r.text().await.unwrap().contains("<script>alert"));
    let page = browser.get(&app.url("/signin?error=%3Cb%3Ex")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("<b>x"));
}

#[tokio::test]
async fn health_readiness_and_malformed_input() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    assert_eq!(
        browser.get(&app.url("/healthz")).await.status(),
        StatusCode::OK
    );
    let ready = browser.json(&app.url("/readyz")).await;
    assert_eq!(ready["status"], "ready");
    // A garbage session cookie is simply no session.
    let b = Browser::new();
    b.set_cookie("127.0.0.1", "latch.session-token", "garbage%%%");
    let s = b.json(&app.url("/session")).await;
    assert_eq!(s, serde_json::json!({}));
    // A huge body is refused with 413, not a 500.
    let big = "a".repeat(200 * 1024);
    let r = browser
        .send(browser.client.post(app.url("/signin/dev")).body(big))
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Malformed percent-encoding and odd methods never give a 500.
    let r = browser
        .get(&app.url("/callback/dev?state=%ZZ&code=%"))
        .await;
    assert_callback_refused(&app, &browser, r, "InvalidState").await;
    let r = browser
        .send(browser.client.delete(app.url("/session")))
        .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// A HEAD answer carries no body, also when latch renders a refusal (404, 405) after the
/// route has answered: over HTTP/2 a body on a HEAD answer is a protocol error, and the
/// request fails instead of getting its status.
#[tokio::test]
async fn head_requests_get_their_status_and_no_body_over_http1_and_http2() {
    latch::install_crypto_provider();
    let app = Setup::default().spawn().await;
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (client, version) in [
        (&http1, reqwest::Version::HTTP_11),
        (&http2, reqwest::Version::HTTP_2),
    ] {
        for (path, status) in [
            ("/healthz", StatusCode::OK),
            ("/no/such/page", StatusCode::NOT_FOUND),
            ("/token", StatusCode::METHOD_NOT_ALLOWED),
            ("/session", StatusCode::OK),
        ] {
            let r = client
                .head(app.url(path))
                .send()
                .await
                .unwrap_or_else(|e| panic!("HEAD {path} over {version:?}: {e:?}"));
            assert_eq!((r.version(), r.status()), (version, status), "HEAD {path}");
            let length = r.headers().get("content-length").cloned();
            assert!(
                r.bytes().await.unwrap().is_empty(),
                "HEAD {path} had a body"
            );
            // The length GET's body has, as HEAD must say.
            let get = client.get(app.url(path)).send().await.unwrap();
            let get_length = get.bytes().await.unwrap().len().to_string();
            assert_eq!(
                length.as_ref().map(|v| v.to_str().unwrap()),
                Some(get_length.as_str()),
                "HEAD {path}'s Content-Length"
            );
        }
    }
}
