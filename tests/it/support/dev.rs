//! Driving latch's built-in development provider the way a browser would, without checks
//! (tests that check each hop use `signin_dev::sign_in_with_dev`).
use super::browser::{location, Browser};
use super::latch::TestApp;
use reqwest::StatusCode;

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Starts a sign-in the way latch's sign-in page does: `POST /signin/{provider}` with the
/// CSRF token (a signed-in browser's start is recorded, so its callback links). Returns
/// latch's answer: a 302 to the provider.
pub async fn start_signin(
    app: &TestApp,
    browser: &Browser,
    provider: &str,
    callback: &str,
) -> reqwest::Response {
    let csrf: serde_json::Value = browser.get(&app.url("/csrf")).await.json().await.unwrap();
    let token = csrf["csrfToken"].as_str().unwrap().to_string();
    browser
        .post_form(
            &app.url(&format!("/signin/{provider}")),
            &[("csrfToken", token.as_str()), ("callbackUrl", callback)],
        )
        .await
}

/// Starts with [`start_signin`], signs in as `email` at the dev provider, and returns
/// latch's answer to the callback.
pub async fn dev_flow(
    app: &TestApp,
    browser: &Browser,
    provider: &str,
    email: &str,
    callback: &str,
) -> reqwest::Response {
    let start = start_signin(app, browser, provider, callback).await;
    let authorize = location(&start, StatusCode::FOUND);
    let callback = approve(browser, &authorize, email).await;
    browser.get(&callback).await
}

/// Signs in as `email` on the dev provider's authorize page at `authorize` (the URL latch
/// redirected to); returns the callback URL the provider sends the browser back to.
pub async fn approve(browser: &Browser, authorize: &str, email: &str) -> String {
    let url = url::Url::parse(authorize).unwrap();
    let mut form: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("email".into(), email.into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut submit = url.clone();
    submit.set_query(None);
    let approved = browser.post_form(submit.as_str(), &form).await;
    location(&approved, StatusCode::FOUND)
}
