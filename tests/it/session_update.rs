//! `POST /session`, what next-auth's `useSession().update(data)` sends: `{"csrfToken",
//! "data"}` as JSON. CSRF-checked; the answer is `GET /session`'s; it extends the session
//! as a read does; `data` never changes who the session says the user is; a session that
//! has ended stays ended.
use crate::support::browser::{http_client, set_cookie_line, Browser};
use crate::support::dev::signed_in;
use crate::support::flows::{csrf_token, session, sign_out};
use crate::support::latch::{Setup, TestApp};
use crate::support::redis::{redis_cli, RedisServer};
use latch::config::SessionConfig;
use latch::identity::User;
use latch::session::{Clock, SessionOrigin, Sessions};
use latch::store::keys;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const SESSION: &str = "latch.session-token";
const CSRF: &str = "latch.csrf-token";

/// `POST /session` with `body` as JSON, as next-auth's client sends it.
async fn update(app: &TestApp, browser: &Browser, body: &Value) -> reqwest::Response {
    browser
        .send(browser.client.post(app.url("/session")).json(body))
        .await
}

/// A 200 JSON answer with `GET /session`'s headers; its body.
async fn session_answer(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    response.json().await.unwrap()
}

/// A JSON refusal with `status` and `code`, and a request id.
async fn refused(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["requestId"].is_string(), "{body}");
}

#[tokio::test]
async fn update_answers_the_session_and_data_changes_no_identity() {
    let app = Setup::default().spawn().await;
    let browser = signed_in(&app, "ada@example.com").await;
    let before = session(&app, &browser).await;
    assert_eq!(before["user"]["email"], "ada@example.com");
    let token = csrf_token(&app, &browser).await;

    // What an app's update() might try: another identity, a later expiry.
    let takeover = json!({
        "csrfToken": token,
        "data": {
            "user": {"id": "someone-else", "name": "Mallory", "email": "mallory@example.com",
                     "email_verified": true, "groups": ["admin"]},
            "email": "mallory@example.com",
            "expires": "2999-01-01T00:00:00.000Z",
        },
    });
    let answered = session_answer(update(&app, &browser, &takeover).await).await;
    assert_eq!(
        answered, before,
        "the answer is GET /session's, untouched by data"
    );
    assert_eq!(session(&app, &browser).await, before, "nothing was stored");

    // next-auth v4's update() with no data sends the token alone; a form works too.
    let alone = update(&app, &browser, &json!({ "csrfToken": token })).await;
    assert_eq!(session_answer(alone).await, before);
    let form = browser
        .post_form(
            &app.url("/session"),
            &[("csrfToken", token.as_str()), ("data", "x")],
        )
        .await;
    assert_eq!(session_answer(form).await, before);
    app.stop().await;
}

#[tokio::test]
async fn update_without_the_browsers_csrf_token_is_refused() {
    let app = Setup::default().spawn().await;
    let browser = signed_in(&app, "ada@example.com").await;
    let before = session(&app, &browser).await;
    let token = csrf_token(&app, &browser).await;
    let data = json!({"user": {"email": "mallory@example.com"}});

    let missing = update(&app, &browser, &json!({ "data": data })).await;
    refused(missing, StatusCode::FORBIDDEN, "MissingCSRF").await;
    let wrong = update(&app, &browser, &json!({"csrfToken": "wrong", "data": data})).await;
    refused(wrong, StatusCode::FORBIDDEN, "MissingCSRF").await;
    // The right token without its cookie (another site's page cannot read or set it).
    let session_cookie = browser.cookie(SESSION).unwrap().value;
    let no_cookie = http_client()
        .post(app.url("/session"))
        .header(COOKIE, format!("{SESSION}={session_cookie}"))
        .json(&json!({"csrfToken": token, "data": data}))
        .send()
        .await
        .unwrap();
    refused(no_cookie, StatusCode::FORBIDDEN, "MissingCSRF").await;

    assert_eq!(
        session(&app, &browser).await,
        before,
        "still signed in, unchanged"
    );
    app.stop().await;
}

#[tokio::test]
async fn update_signed_out_is_empty_and_bad_bodies_are_refused() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let token = csrf_token(&app, &browser).await;
    let body = json!({"csrfToken": token, "data": {"user": {"email": "a@example.com"}}});
    assert_eq!(
        session_answer(update(&app, &browser, &body).await).await,
        json!({})
    );
    // A cookie naming no session: `{}`, and the cookie is cleared, as GET does.
    browser.set_cookie("127.0.0.1", SESSION, "no-such-session");
    let stale = update(&app, &browser, &body).await;
    let cleared = set_cookie_line(&stale, SESSION).expect("stale cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(session_answer(stale).await, json!({}));

    let post = |content_type: &'static str, body: String| {
        browser.send(
            browser
                .client
                .post(app.url("/session"))
                .header(CONTENT_TYPE, content_type)
                .body(body),
        )
    };
    let malformed = post("application/json", format!("{{\"csrfToken\":\"{token}\""));
    refused(malformed.await, StatusCode::BAD_REQUEST, "InvalidRequest").await;
    let not_an_object = post("application/json", format!("[\"{token}\"]"));
    refused(
        not_an_object.await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
    )
    .await;
    let text = post("text/plain", format!("{{\"csrfToken\":\"{token}\"}}"));
    refused(text.await, StatusCode::BAD_REQUEST, "InvalidRequest").await;
    let huge = format!(
        "{{\"csrfToken\":\"{token}\",\"data\":\"{}\"}}",
        "x".repeat(64 * 1024)
    );
    let huge = post("application/json", huge);
    refused(huge.await, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").await;
    app.stop().await;
}

/// With `update_age = "1ms"` an update extends the session as a read does: one last seen an
/// hour ago (made by a clock set back that much) is seen now, in the answer's `expires` and
/// in the stored record, whose time to live is pushed out with it.
#[tokio::test]
async fn an_update_extends_the_session() {
    const HOUR: u64 = 3600;
    let redis = RedisServer::new();
    let app = Setup {
        session: "idle_timeout = \"2h\"\nupdate_age = \"1ms\"".into(),
        ..Setup::default()
    }
    .store(redis.url())
    .spawn()
    .await;
    let ada = signed_in(&app, "ada@example.com").await;
    let user = User {
        id: session(&app, &ada).await["user"]["id"]
            .as_str()
            .unwrap()
            .into(),
        name: None,
        email: Some("ada@example.com".into()),
        email_verified: true,
        image: None,
        created_at: 0,
        updated_at: 0,
    };
    let config = SessionConfig {
        max_age: Duration::from_secs(30 * 24 * HOUR),
        idle_timeout: Duration::from_secs(2 * HOUR),
        update_age: Duration::from_millis(1),
        cookie_domain: None,
    };
    let store = latch::store::open(&redis.url(), None).await.unwrap();
    let an_hour_ago = Clock::new(|| latch::clock::now_ms() - 1000 * HOUR as i64);
    let (token, made) = Sessions::with_clock(store.clone(), config.clone(), an_hour_ago)
        .create(&user, "dev", SessionOrigin::default(), Vec::new())
        .await
        .unwrap();
    let browser = Browser::new();
    browser.set_cookie("127.0.0.1", SESSION, &token);
    let csrf = csrf_token(&app, &browser).await;

    let now = chrono::Utc::now().timestamp();
    let body = json!({"csrfToken": csrf, "data": {}});
    let answered = session_answer(update(&app, &browser, &body).await).await;
    let expires = chrono::DateTime::parse_from_rfc3339(answered["expires"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let idle = 2 * HOUR as i64;
    assert!(
        expires >= now + idle,
        "expires {expires}, not idle_timeout from now ({now}); before: {}",
        made.expires
    );
    let record = Sessions::new(store, config)
        .live_record(&made.id)
        .await
        .unwrap()
        .expect("the session is live");
    assert!(
        record.last_seen >= now,
        "last seen {}, an hour before the update ({now})",
        record.last_seen
    );
    let ttl = redis_cli(redis.port(), None, &["TTL", &keys::session(&made.id)]);
    let ttl: i64 = ttl.trim().parse().unwrap();
    assert!(
        ttl > idle - 60,
        "the stored record still ends when it would have: TTL {ttl} s"
    );
    app.stop().await;
}

/// With `update_age = "1ms"` every read of a live session writes its extension, so an
/// update that found the record after it ended would have to write it back.
#[tokio::test]
async fn an_update_never_brings_an_ended_session_back() {
    let app = Setup {
        session: "update_age = \"1ms\"".into(),
        ..Setup::default()
    }
    .spawn()
    .await;
    let signed_out = signed_in(&app, "ada@example.com").await;
    let revoked = signed_in(&app, "ada@example.com").await;
    let mut ended = Vec::new();
    for browser in [&signed_out, &revoked] {
        let token = csrf_token(&app, browser).await;
        let body = json!({"csrfToken": token, "data": {"user": {"email": "ada@example.com"}}});
        assert!(session_answer(update(&app, browser, &body).await).await["user"].is_object());
        ended.push((
            browser.cookie(SESSION).unwrap().value,
            browser.cookie(CSRF).unwrap().value,
            body,
        ));
    }
    let out = sign_out(&app, &signed_out, &[("callbackUrl", "/")]).await;
    assert_eq!(out.status(), StatusCode::FOUND);
    let r = revoked.post(&app.url("/revoke")).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The old cookies, sent as they were (the browsers' jars have dropped the session).
    let client = http_client();
    for (session_cookie, csrf_cookie, body) in &ended {
        let cookies = format!("{SESSION}={session_cookie}; {CSRF}={csrf_cookie}");
        for _ in 0..2 {
            let again = client
                .post(app.url("/session"))
                .header(COOKIE, &cookies)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(session_answer(again).await, json!({}));
        }
        let read = client
            .get(app.url("/session"))
            .header(COOKIE, &cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(session_answer(read).await, json!({}), "still ended");
    }
    app.stop().await;
}
