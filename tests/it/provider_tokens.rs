//! Provider tokens for apps (`expose_tokens`, `GET /provider-token/{provider}`): kept sealed,
//! refreshed at the provider once per account however many callers race, readable after a
//! secret rotation through `previous_secrets`.
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::flows::{self, through_provider};
use crate::support::latch::{Setup, TestApp, SECRET};
use crate::support::stub::{approve_at_once, serve};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An OAuth 2.0 provider whose access tokens expire quickly and whose refresh tokens are
/// single-use (a reused one is `invalid_grant`); it counts refresh calls.
#[derive(Default)]
struct FakeState {
    refreshes: AtomicUsize,
    issued: AtomicUsize,
    /// `expires_in` of tokens issued by a refresh.
    refresh_expires_in: AtomicU64,
    live_refresh_tokens: Mutex<HashSet<String>>,
    /// Every access token issued, for the at-rest check.
    access_tokens: Mutex<Vec<String>>,
    bad_client_auth: AtomicUsize,
}

struct Fake {
    base: String,
    state: Arc<FakeState>,
}

impl Fake {
    fn refreshes(&self) -> usize {
        self.state.refreshes.load(Ordering::SeqCst)
    }
}

fn issue(state: &FakeState, expires_in: u64) -> Value {
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let access = format!("fake-access-{n}-{}", uuid_like(n));
    let refresh = format!("fake-refresh-{n}-{}", uuid_like(n + 1000));
    state.access_tokens.lock().unwrap().push(access.clone());
    state
        .live_refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh.clone());
    json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh,
        "scope": "read write",
    })
}

fn uuid_like(n: usize) -> String {
    format!("{:016x}", (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn token_endpoint(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    // client_secret_basic for both grants: Basic base64("c:s").
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic Yzpz") {
        state.bad_client_auth.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            assert!(form.contains_key("code_verifier"));
            Json(issue(&state, 1)).into_response()
        }
        Some("refresh_token") => {
            state.refreshes.fetch_add(1, Ordering::SeqCst);
            // Slow enough that racing callers really overlap with the refresh.
            tokio::time::sleep(Duration::from_millis(150)).await;
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if !state.live_refresh_tokens.lock().unwrap().remove(&presented) {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant"})),
                )
                    .into_response();
            }
            let expires_in = state.refresh_expires_in.load(Ordering::SeqCst);
            let mut answer = issue(&state, expires_in);
            // A refresh may omit the scope (unchanged).
            answer.as_object_mut().unwrap().remove("scope");
            Json(answer).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

async fn fake_provider() -> Fake {
    let state = Arc::new(FakeState::default());
    state.refresh_expires_in.store(300, Ordering::SeqCst);
    let app = Router::new()
        .route("/authorize", get(approve_at_once))
        .route("/token", post(token_endpoint))
        .route(
            "/me",
            get(|| async {
                Json(json!({"id": "acct-7", "email": "pat@fake.test", "verified": true, "name": "Pat"}))
            }),
        )
        .with_state(state.clone());
    let base = serve(app).await;
    Fake { base, state }
}

/// `fake` exposes its tokens; `other` (the same provider) too, but the user never signs in
/// with it; `dev` does not expose tokens.
fn providers_toml(base: &str) -> String {
    let one = |id: &str| {
        format!(
            "[providers.{id}]\ntype = \"oauth2\"\nauthorization_url = \"{base}/authorize\"\ntoken_url = \"{base}/token\"\nuserinfo_url = \"{base}/me\"\nclient_id = \"c\"\nclient_secret = \"s\"\nexpose_tokens = true\n\n[providers.{id}.profile]\nid = \"id\"\nemail = \"email\"\nemail_verified = \"verified\"\nname = \"name\"\n\n"
        )
    };
    format!(
        "{}{}[providers.dev]\npreset = \"dev\"\n",
        one("fake"),
        one("other")
    )
}

async fn sign_in_fake(app: &TestApp, browser: &Browser) {
    let done = through_provider(app, browser, "/signin/fake?callbackUrl=/").await;
    assert_eq!(done.status(), StatusCode::FOUND, "sign-in finished");
}

/// A latch access token for the browser's session, minted for `/provider-token`.
async fn access_token(app: &TestApp, browser: &Browser) -> String {
    flows::access_token(
        app,
        browser,
        "/token",
        &[("audience", "latch:provider-token")],
    )
    .await
}

async fn provider_token(app: &TestApp, provider: &str, bearer: Option<&str>) -> Response2 {
    get_provider_token(
        app.url(&format!("/provider-token/{provider}")),
        bearer.map(str::to_string),
    )
    .await
}

async fn get_provider_token(url: String, bearer: Option<String>) -> Response2 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    Response2 {
        status,
        headers,
        body,
    }
}

struct Response2 {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Response2 {
    fn ok(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.headers["cache-control"], "no-store");
        assert_eq!(self.body["token_type"], "Bearer");
        self.body["access_token"].as_str().unwrap().to_string()
    }
    fn refused(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        self.body["error"].as_str().unwrap()
    }
}

/// Waits until the fake's last access token (`expires_in: 1`) has expired.
async fn until_expired() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn racing_callers_share_one_upstream_refresh_and_refusals_are_precise() {
    let fake = fake_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latch.db");
    let app = Setup::default()
        .store(format!("sqlite://{}", db.display()))
        .with_providers(providers_toml(&fake.base))
        .spawn()
        .await;
    let browser = Browser::new();
    sign_in_fake(&app, &browser).await;
    let bearer = access_token(&app, &browser).await;
    let first = fake.state.access_tokens.lock().unwrap()[0].clone();

    // At rest: one sealed record; neither token appears in clear in the store or the file.
    let store = latch::store::open(&format!("sqlite://{}", db.display()), Some(&db))
        .await
        .unwrap();
    let keys = store.keys_with_prefix("provider_tokens:").await.unwrap();
    assert_eq!(keys, ["provider_tokens:fake:acct-7"]);
    let raw = store.get(&keys[0]).await.unwrap().unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("v1."), "{raw}");
    assert!(!raw.contains(&first) && !raw.contains("fake-refresh-"));
    for file in [db.clone(), dir.path().join("latch.db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&first), "{} holds the token", file.display());
            assert!(!text.contains("fake-refresh-"));
        }
    }

    // Refusals, each before anything reaches the provider.
    let r = provider_token(&app, "fake", None).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    let r = provider_token(&app, "fake", Some("garbage")).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    assert_eq!(
        r.headers["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    // A token signed by another latch (other secret, other store, other keys).
    let stranger = Setup::default()
        .secret("another-latch-secret-0123456789abcdefgh")
        .spawn()
        .await;
    let elsewhere = signed_in(&stranger, "pat@fake.test").await;
    let foreign = access_token(&stranger, &elsewhere).await;
    let r = provider_token(&app, "fake", Some(&foreign)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    // A tampered signature.
    let mut tampered = bearer.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = provider_token(&app, "fake", Some(&tampered)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    let r = provider_token(&app, "dev", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::FORBIDDEN), "TokensNotExposed");
    let r = provider_token(&app, "nope", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::NOT_FOUND), "UnknownProvider");
    let r = provider_token(&app, "other", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::NOT_FOUND), "NoProviderAccount");
    assert_eq!(fake.refreshes(), 0);

    // Expired: 20 racing callers, one upstream refresh, one new token for all.
    until_expired().await;
    let url = app.url("/provider-token/fake");
    let racing: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get_provider_token(url.clone(), Some(bearer.clone()))))
        .collect();
    let mut answers = Vec::new();
    for task in racing {
        answers.push(task.await.unwrap());
    }
    let tokens: HashSet<String> = answers.iter().map(Response2::ok).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let refreshed = tokens.into_iter().next().unwrap();
    assert_ne!(refreshed, first);
    assert_eq!(fake.refreshes(), 1, "exactly one upstream refresh");
    assert_eq!(fake.state.bad_client_auth.load(Ordering::SeqCst), 0);
    let r = &answers[0];
    assert_eq!(
        r.body["scope"], "read write",
        "kept when a refresh omits it"
    );
    let expires_at = r.body["expires_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(expires_at).is_ok(),
        "{expires_at}"
    );

    // Fresh now: answered from the store, no upstream call.
    let again = provider_token(&app, "fake", Some(&bearer)).await.ok();
    assert_eq!(again, refreshed);
    assert_eq!(fake.refreshes(), 1);

    // A token minted for the API audience cannot fetch provider tokens.
    let response = browser.post(&app.url("/token")).await;
    let api: Value = response.json().await.unwrap();
    let api = api["access_token"].as_str().unwrap();
    let r = provider_token(&app, "fake", Some(api)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    // After sign-out the provider-token token stops working, though its `exp` is ahead.
    let r = browser.post(&app.url("/revoke")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = provider_token(&app, "fake", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "InvalidAccessToken");
    assert_eq!(fake.refreshes(), 1);
    stranger.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn previous_secrets_keep_records_readable_and_a_refused_refresh_means_sign_in_again() {
    let fake = fake_provider().await;
    fake.state.refresh_expires_in.store(1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latch.db");
    let store_url = format!("sqlite://{}", db.display());
    let new_secret = "the-rotated-secret-0123456789abcdefghij";

    let a = Setup::default()
        .store(&store_url)
        .with_providers(providers_toml(&fake.base))
        .spawn()
        .await;
    let browser = Browser::new();
    sign_in_fake(&a, &browser).await;
    access_token(&a, &browser).await; // creates latch's signing key, sealed with SECRET
    a.stop().await;

    // Rotated without previous_secrets: latch's own keys and the provider tokens are sealed.
    let without = Setup::default()
        .store(&store_url)
        .secret(new_secret)
        .with_providers(providers_toml(&fake.base))
        .spawn()
        .await;
    let response = browser
        .send(browser.client.post(without.url("/token")))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    without.stop().await;

    let b = Setup::default()
        .store(&store_url)
        .secret(new_secret)
        .server(&format!("previous_secrets = [\"{SECRET}\"]"))
        .with_providers(providers_toml(&fake.base))
        .spawn()
        .await;
    // The session and signing key from before the rotation still work.
    let bearer = access_token(&b, &browser).await;
    until_expired().await;
    let token = provider_token(&b, "fake", Some(&bearer)).await.ok();
    assert_eq!(
        fake.refreshes(),
        1,
        "the old record opened and was refreshed"
    );
    assert!(token.starts_with("fake-access-2-"), "{token}");
    // The refreshed record is sealed with the new secret: it opens without previous_secrets.
    let store = latch::store::open(&store_url, Some(&db)).await.unwrap();
    let raw = store
        .get("provider_tokens:fake:acct-7")
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(latch::crypto::open(&[new_secret.as_bytes()], "provider-token", &raw).is_some());
    assert!(latch::crypto::open(&[SECRET.as_bytes()], "provider-token", &raw).is_none());

    // The provider revokes the refresh token: sign in again (401), and no second upstream try.
    fake.state.live_refresh_tokens.lock().unwrap().clear();
    until_expired().await;
    let r = provider_token(&b, "fake", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "ProviderTokenExpired");
    assert_eq!(fake.refreshes(), 2);
    let r = provider_token(&b, "fake", Some(&bearer)).await;
    assert_eq!(r.refused(StatusCode::UNAUTHORIZED), "ProviderTokenExpired");
    assert_eq!(
        fake.refreshes(),
        2,
        "a refused refresh token is not sent again"
    );
    // Signing in again brings usable tokens back.
    sign_in_fake(&b, &browser).await;
    let bearer = access_token(&b, &browser).await;
    let r = provider_token(&b, "fake", Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    b.stop().await;
}
