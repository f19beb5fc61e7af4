//! Full sign-in against the built-in development provider, every hop checked.
use crate::support::browser::{location, set_cookie_line, Browser};
use crate::support::dev::sign_in_with_dev;
use crate::support::flows::{csrf_token, session, sign_out};
use crate::support::latch::{Setup, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

async fn full_sign_in_and_out(app: TestApp) {
    let browser = Browser::new();
    let empty = browser.json(&app.url("/session")).await;
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
    let again = browser.json(&app.url("/session")).await;
    assert_eq!(again["user"]["id"], user_id.as_str());
    // The replaced session is gone.
    let stale = Browser::new();
    stale.set_cookie("127.0.0.1", "latch.session-token", &first_token);
    let stale_session = stale.json(&app.url("/session")).await;
    assert_eq!(stale_session, serde_json::json!({}));

    // Sign out: CSRF-checked POST, cookie cleared, record deleted.
    let out = sign_out(&app, &browser, &[("callbackUrl", "/bye")]).await;
    let cleared = set_cookie_line(&out, "latch.session-token").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        location(&out, StatusCode::FOUND),
        format!("{}/bye", app.origin)
    );
    let after = browser.json(&app.url("/session")).await;
    assert_eq!(after, serde_json::json!({}));
    let replay = Browser::new();
    replay.set_cookie("127.0.0.1", "latch.session-token", &second_token);
    let replayed = replay.json(&app.url("/session")).await;
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
    let providers = browser.json(&app.url("/providers")).await;
    assert_eq!(providers["dev"]["signinUrl"], app.url("/signin/dev"));
    assert_eq!(providers["dev"]["callbackUrl"], app.url("/callback/dev"));
    assert_eq!(providers["dev"]["type"], "oidc");
    let csrf = csrf_token(&app, &browser).await;
    let csrf = csrf.as_str();
    // Auth.js v5 client: header asks for JSON.
    let v5 = browser
        .post_form_with(
            &app.url("/signin/dev"),
            ("X-Auth-Return-Redirect", "1"),
            &[("csrfToken", csrf), ("callbackUrl", "/")],
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

/// `everywhere=1` or `everywhere=true` ends every session of the user; any other value, or
/// none, only this browser's.
#[tokio::test]
async fn sign_out_ends_every_session_only_when_asked() {
    let app = Setup::default().spawn().await;
    for (everywhere, all) in [
        (Some("1"), true),
        (Some("true"), true),
        (Some("0"), false),
        (Some("yes"), false),
        (None, false),
    ] {
        let (here, there) = (Browser::new(), Browser::new());
        sign_in_with_dev(&app, &here, "eve@example.com", "/").await;
        sign_in_with_dev(&app, &there, "eve@example.com", "/").await;
        let mut form = vec![("callbackUrl", "/")];
        form.extend(everywhere.map(|v| ("everywhere", v)));
        sign_out(&app, &here, &form).await;
        assert_eq!(session(&app, &here).await, serde_json::json!({}));
        let there_live = session(&app, &there).await != serde_json::json!({});
        assert_eq!(there_live, !all, "everywhere={everywhere:?}");
    }
    app.stop().await;
}

/// The CSRF cookie lives a day, and a browser that has a valid one keeps it.
#[tokio::test]
async fn the_csrf_cookie_lives_a_day() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let first = browser.get(&app.url("/csrf")).await;
    let line = set_cookie_line(&first, "latch.csrf-token").expect("a CSRF cookie");
    assert!(line.contains("Max-Age=86400"), "{line}");
    let token = first.json::<Value>().await.unwrap()["csrfToken"].clone();
    let again = browser.get(&app.url("/csrf")).await;
    assert_eq!(set_cookie_line(&again, "latch.csrf-token"), None);
    assert_eq!(again.json::<Value>().await.unwrap()["csrfToken"], token);
    app.stop().await;
}
