//! Driving latch's built-in development provider the way a browser would: every hop checked
//! ([`sign_in_with_dev`]), or just done ([`dev_flow`], [`approve`]), or tolerating a refusal
//! at the approval ([`try_approve`]).
use super::browser::{location, query_param, set_cookie_line, Browser};
use super::flows::{csrf_token, post_signin, Site};
use reqwest::StatusCode;

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Starts a sign-in the way latch's sign-in page does: `POST /signin/{provider}` with the
/// CSRF token (a signed-in browser's start is recorded, so its callback links). Returns
/// latch's answer: a 302 to the provider.
pub async fn start_signin(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    provider: &str,
    callback: &str,
) -> reqwest::Response {
    let token = csrf_token(app, browser).await;
    post_signin(app, browser, &token, provider, callback).await
}

/// Starts with [`start_signin`], signs in as `email` at the dev provider, and returns
/// latch's answer to the callback.
pub async fn dev_flow(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    provider: &str,
    email: &str,
    callback: &str,
) -> reqwest::Response {
    let start = start_signin(app, browser, provider, callback).await;
    finish_at_dev(browser, &start, email).await
}

/// Latch's redirect to the dev provider (`start`, a 302), approved as `email`: latch's
/// answer to the callback.
pub async fn finish_at_dev(
    browser: &Browser,
    start: &reqwest::Response,
    email: &str,
) -> reqwest::Response {
    let callback = approve(browser, &location(start, StatusCode::FOUND), email).await;
    browser.get(&callback).await
}

/// [`dev_callback`], followed: latch's answer to the callback.
pub async fn dev_get_flow(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    start: &str,
    email: &str,
) -> reqwest::Response {
    let start = browser.get(&app.url(start)).await;
    finish_at_dev(browser, &start, email).await
}

/// `GET start?callbackUrl=<callback>` (`start` a `/signin/{provider}` path: a start without
/// CSRF, as a link makes it): the provider's URL latch redirects to.
pub async fn authorize_url(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    start: &str,
    callback: &str,
) -> String {
    let url = app.url(&format!("{start}?callbackUrl={}", urlencode(callback)));
    location(&browser.get(&url).await, StatusCode::FOUND)
}

/// `GET start` (a `/signin/{provider}?callbackUrl=…` path: a start without CSRF, as a link
/// makes it), then the approval as `email`: the callback URL, not yet followed.
pub async fn dev_callback(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    start: &str,
    email: &str,
) -> String {
    let start = browser.get(&app.url(start)).await;
    approve(browser, &location(&start, StatusCode::FOUND), email).await
}

/// Signs in as `email` on the dev provider's authorize page at `authorize` (the URL latch
/// redirected to); returns the callback URL the provider sends the browser back to.
pub async fn approve(browser: &Browser, authorize: &str, email: &str) -> String {
    match try_approve(browser, authorize, email).await {
        Ok(callback) => callback,
        Err(refused) => location(&refused, StatusCode::FOUND),
    }
}

/// [`approve`] that gives back any answer but the provider's redirect (a 503 while the
/// store is down, say) instead of panicking on it.
pub async fn try_approve(
    browser: &Browser,
    authorize: &str,
    email: &str,
) -> Result<String, reqwest::Response> {
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
    if approved.status() == StatusCode::FOUND {
        Ok(location(&approved, StatusCode::FOUND))
    } else {
        Err(approved)
    }
}

/// Signs in as `email` through the dev provider, checking each hop; returns the final URL.
pub async fn sign_in_with_dev(
    app: &(impl Site + ?Sized),
    browser: &Browser,
    email: &str,
    callback: &str,
) -> String {
    // The sign-in page sets the CSRF cookie and offers the provider.
    let page = browser
        .get(&app.url(&format!("/signin?callbackUrl={}", urlencode(callback))))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with"), "{html}");

    // POST /signin/dev starts the flow: 302 to the provider with PKCE and a flow cookie.
    let start = start_signin(app, browser, "dev", callback).await;
    let flow_cookie = set_cookie_line(&start, "latch.flow").expect("flow binding cookie");
    assert!(
        flow_cookie.contains("HttpOnly")
            && flow_cookie.contains("SameSite=Lax")
            && flow_cookie.contains("Path=/")
    );
    let authorize = location(&start, StatusCode::FOUND);
    assert!(
        authorize.starts_with(&app.url("/dev/dev/authorize?")),
        "{authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&authorize, "nonce").is_some());
    let state = query_param(&authorize, "state").unwrap();
    assert!(state.len() >= 43);

    // The provider's page, then "sign in as".
    let page = browser.get(&authorize).await;
    assert_eq!(page.status(), StatusCode::OK);
    let callback_url = approve(browser, &authorize, email).await;
    assert!(
        callback_url.starts_with(&app.url("/callback/dev?")),
        "{callback_url}"
    );
    assert_eq!(
        query_param(&callback_url, "state").as_deref(),
        Some(state.as_str())
    );
    assert!(query_param(&callback_url, "iss").is_some());

    // The callback mints the session and sends the browser to callbackUrl.
    let done = browser.get(&callback_url).await;
    let session_cookie = set_cookie_line(&done, "latch.session-token").expect("session cookie");
    assert!(session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(session_cookie.contains("SameSite=Lax"), "{session_cookie}");
    assert!(session_cookie.contains("Path=/"), "{session_cookie}");
    assert!(
        !session_cookie.contains("Secure"),
        "http origin: no Secure flag"
    );
    location(&done, StatusCode::FOUND)
}

/// A fresh browser signed in as `email` with [`sign_in_with_dev`].
pub async fn signed_in(app: &(impl Site + ?Sized), email: &str) -> Browser {
    let browser = Browser::new();
    sign_in_with_dev(app, &browser, email, "/").await;
    browser
}
