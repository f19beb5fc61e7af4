//! latch on its own redis-server: sign-in, sessions shared by two instances, an outage in
//! the middle (503s with reasons, then recovery without a restart), what a session costs
//! Redis, sessions from before the compact records, and no request scanning the store.
use crate::support::browser::Browser;
use crate::support::dev::{sign_in_with_dev, signed_in};
use crate::support::latch::Setup;
use crate::support::redis::{redis_cli, RedisServer};
use base64::Engine;
use latch::config::SessionConfig;
use latch::identity::User;
use latch::session::{session_id, Sessions};
use latch::store::keys;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
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

/// `MEMORY USAGE` of a key, all of it (`SAMPLES 0`).
fn memory_usage(redis: &RedisServer, key: &str) -> u64 {
    let out = redis_cli(
        redis.port(),
        None,
        &["MEMORY", "USAGE", key, "SAMPLES", "0"],
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("MEMORY USAGE {key}: {out:?}"))
}

fn sessions_on(store: Arc<dyn latch::store::Store>) -> Sessions {
    Sessions::new(
        store,
        SessionConfig {
            max_age: Duration::from_secs(30 * 24 * 3600),
            idle_timeout: Duration::from_secs(7 * 24 * 3600),
            update_age: Duration::from_secs(24 * 3600),
            cookie_domain: None,
        },
    )
}

/// Scale (issue 9): a session record costs Redis at most 256 bytes, with the development
/// provider's profile and with a Google one (full name, long gmail address, 100-character
/// picture URL, which stays in the user record). bench/scale.sh measures the same at
/// 1,000,000 sessions.
#[tokio::test]
async fn a_session_costs_redis_at_most_256_bytes() {
    let redis = RedisServer::new();
    let app = Setup::default().store(redis.url()).spawn().await;
    let browser = Browser::new();
    sign_in_with_dev(&app, &browser, "grace.hopper@example.com", "/").await;
    let token = browser.cookie("latch.session-token").unwrap().value;
    let dev = memory_usage(&redis, &keys::session(&session_id(&token)));

    let store = latch::store::open(&redis.url(), None).await.unwrap();
    let image = "https://lh3.googleusercontent.com/a/ACg8ocKAxW0Agrz7Mq3cGZ5WArIenENgpcHM7hxnnCvm1fnueYAbCdEfGh=s96-c";
    assert_eq!(image.len(), 100);
    let user = User {
        id: "0cb4170156c0a38b4827024bf5fb9698".into(),
        name: Some("Ada Lovelace-Byron".into()),
        email: Some("ada.lovelace.byron@gmail.com".into()),
        email_verified: true,
        image: Some(image.into()),
        created_at: 0,
        updated_at: 0,
    };
    // Where it came from, as a phone on IPv6 signs in, with a provider session id (a
    // Keycloak-style UUID) for back-channel logout.
    let origin = latch::session::SessionOrigin {
        device: latch::session::device::Device::from_user_agent(Some(
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        )),
        ip: Some("2001:db8:85a3::8a2e:370:7334".parse().unwrap()),
        provider_sid: Some(latch::session::provider_sid_hash(
            "08a5019c-17e1-4977-8f42-65a12843ea02",
        )),
    };
    let (_, session) = sessions_on(store)
        .create(&user, "google", origin, Vec::new())
        .await
        .unwrap();
    let google = memory_usage(&redis, &keys::session(&session.id));
    eprintln!("MEMORY USAGE of a session record: dev {dev} bytes, google {google} bytes");
    assert!(dev <= 256, "dev profile: {dev} bytes");
    assert!(google <= 256, "google profile: {google} bytes");
}

/// A session written by the versions before the binary records and the base64url ids
/// (JSON under `session:<hex sha256>`) still signs its cookie in, under its old id
/// everywhere (the `sid` of its access tokens, `/verify`), and signs out.
#[tokio::test]
async fn a_session_from_before_the_upgrade_still_works() {
    let redis = RedisServer::new();
    let app = Setup::default()
        .store(redis.url())
        .with_providers("[tokens]\naudience = [\"api\"]\n\n[providers.dev]\npreset = \"dev\"\n")
        .spawn()
        .await;
    let first = Browser::new();
    sign_in_with_dev(&app, &first, "old@example.com", "/").await;
    let user: Value = first.get(&app.url("/session")).await.json().await.unwrap();
    let user_id = user["user"]["id"].as_str().unwrap().to_string();

    // The record as the previous version wrote it.
    let token = latch::crypto::random_token(32);
    let old_id = latch::crypto::sha256_hex(&token);
    let now = chrono::Utc::now().timestamp();
    let record = json!({
        "user_id": user_id,
        "provider": "dev",
        "created_at": now - 3600,
        "last_seen": now - 3600,
        "profile": {"name": "old", "email": "old@example.com", "email_verified": true, "image": null},
    })
    .to_string();
    let key = keys::session(&old_id);
    let set = redis_cli(redis.port(), None, &["SET", &key, &record, "EX", "86400"]);
    assert_eq!(set.trim(), "OK");
    let index = keys::user_sessions(&user_id);
    redis_cli(redis.port(), None, &["SADD", &index, &old_id]);

    let browser = Browser::new();
    browser.set_cookie("127.0.0.1", "latch.session-token", &token);
    let session: Value = browser
        .get(&app.url("/session"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["email"], "old@example.com", "{session}");
    assert_eq!(session["user"]["id"], user_id.as_str());

    let response = browser.send(browser.client.post(app.url("/token"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["sid"],
        old_id.as_str(),
        "the old session keeps its id"
    );
    let bearer = |token: String| {
        let url = app.url("/verify");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(bearer(access.clone()).await, StatusCode::OK);

    // Sign-out everywhere from the new session ends the old one too (it is in the index).
    let csrf: Value = first.get(&app.url("/csrf")).await.json().await.unwrap();
    let out = first
        .post_form(
            &app.url("/signout"),
            &[
                ("csrfToken", csrf["csrfToken"].as_str().unwrap()),
                ("everywhere", "1"),
            ],
        )
        .await;
    assert_eq!(out.status(), StatusCode::FOUND);
    assert_eq!(redis_cli(redis.port(), None, &["EXISTS", &key]).trim(), "0");
    let session: Value = browser
        .get(&app.url("/session"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session, json!({}));
    assert_eq!(bearer(access).await, StatusCode::UNAUTHORIZED);
}

/// No request scans the store (issue 9): every route, signed in and out, with tokens,
/// refresh, introspection and sign-out everywhere, runs against a Redis that then reports
/// no `SCAN` or `KEYS` in `INFO commandstats`. The admin's `revoke --all`, which does scan,
/// shows that the check would see one.
#[tokio::test]
async fn no_request_scans_the_store() {
    const SECRET: &str = "introspection-secret-0123456789abcdef";
    let redis = RedisServer::new();
    let app = Setup::default()
        .store(redis.url())
        .with_providers(format!(
            "[tokens]\naudience = [\"api\"]\nintrospection_clients = {{ api = \"{SECRET}\" }}\n\n[providers.dev]\npreset = \"dev\"\nexpose_tokens = true\n"
        ))
        .spawn()
        .await;
    let scans = || {
        let stats = redis_cli(redis.port(), None, &["INFO", "commandstats"]);
        assert!(stats.contains("cmdstat_"), "{stats}");
        stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_scan:") || l.starts_with("cmdstat_keys:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let anonymous = Browser::new();
    for path in [
        "/signin",
        "/signin?error=AccessDenied",
        "/session",
        "/csrf",
        "/providers",
        "/verify",
        "/signout",
        "/error?error=Configuration",
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/provider-token/dev",
        "/no-such-route",
    ] {
        anonymous.get(&app.url(path)).await;
    }
    let browser = Browser::new();
    sign_in_with_dev(&app, &browser, "scan@example.com", "/").await;
    for path in ["/session", "/verify", "/signout", "/provider-token/dev"] {
        browser.get(&app.url(path)).await;
    }
    let response = browser.send(browser.client.post(app.url("/token"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();
    let status = reqwest::Client::new()
        .get(app.url("/verify"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let status = reqwest::Client::new()
        .post(app.url("/introspect"))
        .basic_auth("api", Some(SECRET))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let refreshed = browser.send(browser.client.post(app.url("/refresh"))).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    // A second device, ended from the first with sign-out everywhere; then the first's
    // own /revoke and sign-out.
    let other = Browser::new();
    sign_in_with_dev(&app, &other, "scan@example.com", "/").await;
    let csrf: Value = other.get(&app.url("/csrf")).await.json().await.unwrap();
    let csrf = csrf["csrfToken"].as_str().unwrap().to_string();
    let out = other
        .post_form(
            &app.url("/signout"),
            &[("csrfToken", &csrf), ("everywhere", "1")],
        )
        .await;
    assert_eq!(out.status(), StatusCode::FOUND);
    sign_in_with_dev(&app, &browser, "scan@example.com", "/").await;
    browser.send(browser.client.post(app.url("/revoke"))).await;
    sign_in_with_dev(&app, &browser, "scan@example.com", "/").await;
    let csrf: Value = browser.get(&app.url("/csrf")).await.json().await.unwrap();
    let csrf = csrf["csrfToken"].as_str().unwrap().to_string();
    browser
        .post_form(&app.url("/signout"), &[("csrfToken", &csrf)])
        .await;
    assert_eq!(scans(), Vec::<String>::new(), "a request scanned the store");

    // The admin listing does scan, and the check sees it.
    let store = latch::store::open(&redis.url(), None).await.unwrap();
    sessions_on(store).revoke_all().await.unwrap();
    assert_eq!(scans().len(), 1, "revoke --all scans, and INFO shows it");
}

/// A session record this version cannot read (written by a later version, before a
/// rollback) is still ended by its owner's sign-out and by `/revoke` with its cookie, so it
/// cannot come back after the next upgrade.
#[tokio::test]
async fn sign_out_ends_a_record_of_a_later_version() {
    let redis = RedisServer::new();
    let app = Setup::default().store(redis.url()).spawn().await;
    let store = latch::store::open(&redis.url(), None).await.unwrap();
    for how in ["signout", "revoke"] {
        let browser = Browser::new();
        sign_in_with_dev(&app, &browser, "later@example.com", "/").await;
        let token = browser.cookie("latch.session-token").unwrap().value;
        let key = keys::session(&session_id(&token));
        let mut bytes = store.get(&key).await.unwrap().expect("the record");
        bytes[0] = 3;
        store
            .put(&key, &bytes, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        let status = if how == "signout" {
            crate::support::flows::sign_out(&app, &browser, &[("callbackUrl", "/")])
                .await
                .status()
        } else {
            browser.post(&app.url("/revoke")).await.status()
        };
        // Sign-out goes on as usual; `/revoke` finds no live session (401 SessionRequired).
        let expected = if how == "signout" {
            StatusCode::FOUND
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "{how}");
        assert_eq!(store.get(&key).await.unwrap(), None, "{how}: record left");
    }
}
