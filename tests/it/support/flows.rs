//! What a test does with any latch (in-process, the real binary, behind nginx) the way a
//! browser would: read the session, fetch a CSRF token, sign out, POST to a token route,
//! and pass a provider that answers at once. The dev provider's own hops are in `dev`.
use super::browser::{http_client, location, Browser};
use super::latch::TestApp;
use super::latch_bin::LatchProcess;
use reqwest::header::COOKIE;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// A latch reached over HTTP: where its routes are.
pub trait Site {
    fn url(&self, path: &str) -> String;
}

impl<T: Site + ?Sized> Site for &T {
    fn url(&self, path: &str) -> String {
        (**self).url(path)
    }
}

impl Site for TestApp {
    fn url(&self, path: &str) -> String {
        TestApp::url(self, path)
    }
}

impl Site for LatchProcess {
    fn url(&self, path: &str) -> String {
        LatchProcess::url(self, path)
    }
}

/// An origin (or base URL) such as `http://127.0.0.1:8080/auth`.
impl Site for str {
    fn url(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl Site for String {
    fn url(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

/// `GET /session` (200) as JSON: `{}` when signed out.
pub async fn session(site: &(impl Site + ?Sized), browser: &Browser) -> Value {
    let response = browser.get(&site.url("/session")).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /session");
    response.json().await.unwrap()
}

/// The signed-in user's id (empty when signed out).
pub async fn user_id(site: &(impl Site + ?Sized), browser: &Browser) -> String {
    session(site, browser).await["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `GET /csrf`: the token a form posts (its cookie is now in the browser).
pub async fn csrf_token(site: &(impl Site + ?Sized), browser: &Browser) -> String {
    let csrf = browser.json(&site.url("/csrf")).await;
    csrf["csrfToken"].as_str().unwrap().to_string()
}

/// `POST /signout` with a fresh CSRF token and the rest of `form` (`callbackUrl`,
/// `everywhere`, `json`).
pub async fn sign_out(
    site: &(impl Site + ?Sized),
    browser: &Browser,
    form: &[(&str, &str)],
) -> Response {
    let token = csrf_token(site, browser).await;
    let mut all = vec![("csrfToken", token.as_str())];
    all.extend_from_slice(form);
    browser.post_form(&site.url("/signout"), &all).await
}

/// `POST /signin/{provider}` with `csrf` and `callbackUrl`, as latch's sign-in page does.
pub async fn post_signin(
    site: &(impl Site + ?Sized),
    browser: &Browser,
    csrf: &str,
    provider: &str,
    callback: &str,
) -> Response {
    browser
        .post_form(
            &site.url(&format!("/signin/{provider}")),
            &[("csrfToken", csrf), ("callbackUrl", callback)],
        )
        .await
}

/// `POST path` (`/token`, `/refresh`) with `form`, which must answer 200: the access token.
pub async fn access_token(
    site: &(impl Site + ?Sized),
    browser: &Browser,
    path: &str,
    form: &[(&str, &str)],
) -> String {
    let response = browser
        .send(browser.client.post(site.url(path)).form(form))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// `POST /refresh` with exactly this refresh token, from a client without other cookies.
pub async fn refresh_with(site: &(impl Site + ?Sized), token: &str) -> Response {
    http_client()
        .post(site.url("/refresh"))
        .header(COOKIE, format!("latch.refresh-token={token}"))
        .send()
        .await
        .unwrap()
}

/// `GET start` (e.g. `/signin/hostile`), then the provider, which redirects straight back:
/// the callback URL it sends the browser to, not yet followed.
pub async fn provider_callback(
    site: &(impl Site + ?Sized),
    browser: &Browser,
    start: &str,
) -> String {
    let start = browser.get(&site.url(start)).await;
    let back = browser.get(&location(&start, StatusCode::FOUND)).await;
    location(&back, StatusCode::FOUND)
}

/// [`provider_callback`], followed: latch's answer to the callback.
pub async fn through_provider(
    site: &(impl Site + ?Sized),
    browser: &Browser,
    start: &str,
) -> Response {
    let callback = provider_callback(site, browser, start).await;
    browser.get(&callback).await
}
