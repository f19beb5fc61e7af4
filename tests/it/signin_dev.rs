//! Full sign-in against the built-in development provider, every hop checked.
use crate::support::browser::{location, query_param, set_cookie_line, Browser};
use crate::support::latch::{Setup, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

/// Signs in as `email` through the dev provider, checking each hop; returns the final URL.
pub async fn sign_in_with_dev(
    app: &TestApp,
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
    let csrf: Value = browser.get(&app.url("/csrf")).await.json().await.unwrap();
    let csrf = csrf["csrfToken"].as_str().unwrap().to_string();

    // POST /signin/dev starts the flow: 302 to the provider with PKCE and a flow cookie.
    let start = browser
        .post_form(
            &app.url("/signin/dev"),
            &[("csrfToken", &csrf), ("callbackUrl", callback)],
        )
        .await;
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
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("email".into(), email.into()));
    let form_ref: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let approved = browser
        .post_form(&app.url("/dev/dev/authorize"), &form_ref)
        .await;
    let callback_url = location(&approved, StatusCode::FOUND);
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

pub use crate::support::dev::urlencode;

async fn full_sign_in_and_out(app: TestApp) {
    let browser = Browser::new();
    let empty: Value = browser
        .get(&app.url("/session"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, serde_json::json!({}));

    let landed = sign_in_with_dev(&app, &browser, "ada@example.com", "/welcome").await;
    assert_eq!(landed, format!("{}/welcome", app.origin));

    let session = browser.get(&app.url("/session")).await;
    assert_eq!(session.headers()["cache-control"], "no-store");
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["user"]["email"], "ada@example.com");
    assert_eq!(session["user"]["name"], "ada");
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    assert!(chrono::DateTime::parse_from_rfc3339(session["expires"].as_str().unwrap()).is_ok());

    // Signing in again finds the same user, with a fresh session id.
    let first_token = browser.cookie("latch.session-token").unwrap().value;
    sign_in_with_dev(&app, &browser, "ada@example.com", "/").await;
    let second_token = browser.cookie("latch.session-token").unwrap().value;
    assert_ne!(first_token, second_token);
    let again: Value = browser
        .get(&app.url("/session"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["user"]["id"], user_id.as_str());
    // The replaced session is gone.
    let stale = Browser::new();
    stale.set_cookie("127.0.0.1", "latch.session-token", &first_token);
    let stale_session: Value = stale.get(&app.url("/session")).await.json().await.unwrap();
    assert_eq!(stale_session, serde_json::json!({}));

    // Sign out: CSRF-checked POST, cookie cleared, record deleted.
    let csrf: Value = browser.get(&app.url("/csrf")).await.json().await.unwrap();
    let out = browser
        .post_form(
            &app.url("/signout"),
            &[
                ("csrfToken", csrf["csrfToken"].as_str().unwrap()),
                ("callbackUrl", "/bye"),
            ],
        )
        .await;
    let cleared = set_cookie_line(&out, "latch.session-token").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        location(&out, StatusCode::FOUND),
        format!("{}/bye", app.origin)
    );
    let after: Value = browser
        .get(&app.url("/session"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, serde_json::json!({}));
    let replay = Browser::new();
    replay.set_cookie("127.0.0.1", "latch.session-token", &second_token);
    let replayed: Value = replay.get(&app.url("/session")).await.json().await.unwrap();
    assert_eq!(
        replayed,
        serde_json::json!({}),
        "a signed-out session id is dead everywhere"
    );
    app.stop().await;
}

#[tokio::test]
async fn dev_provider_sign_in_on_memory_store() {
    full_sign_in_and_out(Setup::default().spawn().await).await;
}

#[tokio::test]
async fn dev_provider_sign_in_on_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("latch.db").display());
    full_sign_in_and_out(Setup::default().store(url).spawn().await).await;
}

#[tokio::test]
async fn auth_js_layout_under_api_auth_with_json_redirects() {
    let app = Setup::default().base_path("/api/auth").spawn().await;
    let browser = Browser::new();
    let providers: Value = browser
        .get(&app.url("/providers"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(providers["dev"]["signinUrl"], app.url("/signin/dev"));
    assert_eq!(providers["dev"]["callbackUrl"], app.url("/callback/dev"));
    assert_eq!(providers["dev"]["type"], "oidc");
    let csrf: Value = browser.get(&app.url("/csrf")).await.json().await.unwrap();
    let csrf = csrf["csrfToken"].as_str().unwrap();
    // Auth.js v5 client: header asks for JSON.
    let v5 = browser
        .send(
            browser
                .client
                .post(app.url("/signin/dev"))
                .header("X-Auth-Return-Redirect", "1")
                .form(&[("csrfToken", csrf), ("callbackUrl", "/")]),
        )
        .await;
    assert_eq!(v5.status(), StatusCode::OK);
    let body: Value = v5.json().await.unwrap();
    assert!(body["url"]
        .as_str()
        .unwrap()
        .starts_with(&app.url("/dev/dev/authorize?")));
    // next-auth v4 client: json=true form field.
    let v4 = browser
        .post_form(
            &app.url("/signin/dev"),
            &[("csrfToken", csrf), ("callbackUrl", "/"), ("json", "true")],
        )
        .await;
    let body: Value = v4.json().await.unwrap();
    assert!(body["url"].as_str().is_some());
    // Routes outside base_path are not latch's.
    let outside = browser.get(&format!("{}/session", app.origin)).await;
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    // Sign-out with JSON.
    let out = browser
        .post_form(
            &app.url("/signout"),
            &[("csrfToken", csrf), ("callbackUrl", "/x"), ("json", "true")],
        )
        .await;
    let body: Value = out.json().await.unwrap();
    assert_eq!(body["url"], format!("{}/x", app.origin));
}
