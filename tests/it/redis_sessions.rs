//! latch on its own redis-server: sign-in, sessions shared by two instances, and an outage
//! in the middle (503s with reasons, then recovery without a restart).
use crate::support::browser::Browser;
use crate::support::dev::{sign_in_with_dev, signed_in};
use crate::support::latch::Setup;
use crate::support::redis::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sign_in_on_redis_and_session_valid_on_a_second_instance() {
    let redis = RedisServer::new();
    let one = Setup::default().store(redis.url()).spawn().await;
    let browser = signed_in(&one, "grace@example.com").await;
    let token = browser.cookie("latch.session-token").unwrap().value;

    // Only the hash of the cookie token is a key in Redis.
    let keys = crate::support::redis::raw_command(redis.port(), "KEYS *").unwrap();
    assert!(keys.contains("session:"), "{keys}");
    assert!(!keys.contains(&token), "raw session token stored as a key");

    // A second instance on the same Redis accepts the session.
    let two = Setup::default().store(redis.url()).spawn().await;
    let other = Browser::new();
    other.set_cookie("127.0.0.1", "latch.session-token", &token);
    let session = other.json(&two.url("/session")).await;
    assert_eq!(session["user"]["email"], "grace@example.com");
}

async fn wait_until_ready(url: &str, browser: &Browser, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = browser.get(url).await.status();
        if status == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_outage_answers_503_and_recovers() {
    let mut redis = RedisServer::new();
    let app = Setup::default().store(redis.url()).spawn().await;
    let browser = signed_in(&app, "outage@example.com").await;

    redis.stop();
    // Readiness says why, quickly.
    let started = Instant::now();
    let ready = browser.get(&app.url("/readyz")).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().len() > 5, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The session endpoint: a JSON 503, not a hang and not a 500.
    let started = Instant::now();
    let session = browser.get(&app.url("/session")).await;
    assert_eq!(session.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = session.json().await.unwrap();
    assert_eq!(body["error"], "StoreUnavailable");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Starting a sign-in: a page with the code.
    let start = browser.get(&app.url("/signin/dev")).await;
    assert_eq!(start.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.text().await.unwrap().contains("StoreUnavailable"));

    // Redis returns (empty: it keeps nothing on disk); latch recovers by itself.
    redis.start();
    wait_until_ready(&app.url("/readyz"), &browser, Duration::from_secs(10)).await;
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(
        session,
        json!({}),
        "the session was lost with Redis's memory"
    );
    sign_in_with_dev(&app, &browser, "outage@example.com", "/").await;
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "outage@example.com");
}
