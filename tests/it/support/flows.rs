//! What a test does with any latch (in-process, the real binary, behind nginx) the way a
//! browser would: read the session, fetch a CSRF token, sign out, POST to a token route,
//! pass a provider that answers at once, and sign in through a provider hop by hop, checking
//! each (`run_flow`: latch's start, the provider, latch's callback, also by `form_post`). The
//! dev provider's own hops are in `dev`.
use super::browser::{http_client, location, query_param, Browser};
use super::fakes::parse_form_post;
use super::latch::{Setup, TestApp};
use super::latch_bin::LatchProcess;
use super::refusal::assert_refused;
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

/// latch with these `[providers.<id>]` tables (and the defaults otherwise).
pub async fn latch_with(providers: String) -> TestApp {
    Setup::default().with_providers(providers).spawn().await
}

/// latch's start -> the provider's authorize, which must start with `provider`, with PKCE.
/// Returns the provider's answer.
pub async fn to_provider(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    provider: &str,
) -> reqwest::Response {
    let start = browser
        .get(&app.url(&format!("/signin/{id}?callbackUrl=/home")))
        .await;
    let authorize = location(&start, StatusCode::FOUND);
    assert!(
        authorize.starts_with(provider),
        "latch sends the browser to the provider: {authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256"),
        "PKCE on every flow: {authorize}"
    );
    browser.get(&authorize).await
}

/// The provider's answer -> latch's callback (a redirect back, or the auto-submitting
/// form of `response_mode=form_post`). Returns latch's answer to the callback.
pub async fn back_to_latch(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    back: reqwest::Response,
) -> reqwest::Response {
    let callback_url = app.url(&format!("/callback/{id}"));
    if back.status() == StatusCode::OK {
        let (action, fields) = parse_form_post(&back.text().await.unwrap());
        assert_eq!(action, callback_url, "form_post goes to the callback");
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return browser.post_form(&action, &fields).await;
    }
    let callback = location(&back, StatusCode::FOUND);
    assert!(callback.starts_with(&callback_url), "{callback}");
    browser.get(&callback).await
}

/// A whole sign-in at provider `id`: latch's start, the provider (whose authorize URL starts
/// with `provider`), back to latch's callback. Returns latch's answer to the callback.
pub async fn run_flow(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    provider: &str,
) -> reqwest::Response {
    let back = to_provider(app, browser, id, provider).await;
    back_to_latch(app, browser, id, back).await
}

/// Signed in: the callback sends the browser on to `/home`, with a session.
pub async fn assert_signed_in(app: &TestApp, browser: &Browser, done: reqwest::Response) -> Value {
    assert_ne!(done.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let status = done.status();
    if status != StatusCode::FOUND {
        let body = done.text().await.unwrap_or_default();
        panic!("sign-in refused with {status}: {body}");
    }
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    assert!(browser.cookie("latch.session-token").is_some());
    let session = session(app, browser).await;
    assert!(session["user"].is_object(), "{session}");
    session
}

/// The email of the user of a `/session` answer.
pub fn email_of(session: &Value) -> Option<&str> {
    session["user"]["email"].as_str()
}

/// A sign-in at `id` in a fresh browser ([`run_flow`]) that ends signed in
/// ([`assert_signed_in`]); returns its `/session`.
pub async fn signs_in(app: &TestApp, id: &str, provider: &str) -> Value {
    let browser = Browser::new();
    let done = run_flow(app, &browser, id, provider).await;
    assert_signed_in(app, &browser, done).await
}

/// A sign-in at `id` in a fresh browser ([`run_flow`]), refused with `code` and `status`
/// (`assert_refused`).
pub async fn refused(app: &TestApp, id: &str, provider: &str, code: &str, status: StatusCode) {
    let browser = Browser::new();
    let response = run_flow(app, &browser, id, provider).await;
    assert_refused(app, &browser, response, code, status).await;
}
