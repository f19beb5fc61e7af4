//! Revocation wins (SPEC §4): sign-out, sign-out everywhere, `/revoke` (session or refresh
//! family) and `latch sessions revoke` race with hundreds of `/session` (GET, and POST as
//! next-auth's `update()` sends it), `/verify` and `/refresh` calls that extend the same
//! records (`update_age = "1ms"`, so every read writes; on Redis also with reads answered
//! from the session cache).
//! Once a revocation has answered and the requests in flight are done, nothing revoked may
//! answer again, and the sessions that were not revoked are still live and still found by
//! "sign out everywhere" (the user's session index stayed complete).
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::flows::{csrf_token, session, sign_out};
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::run_ok;
use crate::support::redis::RedisServer;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;

const SESSION: &str = "latch.session-token";
const REFRESH: &str = "latch.refresh-token";
const CSRF: &str = "latch.csrf-token";
/// Users per revocation method; each user has two sessions (two browsers).
const USERS_PER_METHOD: usize = 5;
/// Every `/session` (GET or POST) and `/verify` extends the session, so every read races
/// with a write.
const EVERY_READ_WRITES: &str = "update_age = \"1ms\"";
/// Requests per loader task.
const ROUNDS: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Method {
    /// `POST /revoke` with session A's cookie: A and its refresh families end.
    RevokeSession,
    /// `POST /signout` from A.
    SignOut,
    /// `POST /signout` with `everywhere=1` from A: A and B end.
    SignOutEverywhere,
    /// `latch sessions revoke --user` (the real binary on the same store): A and B end.
    AdminRevoke,
    /// `POST /revoke` with A's refresh token: that family ends, the sessions stay.
    RevokeFamily,
}

const METHODS: [Method; 5] = [
    Method::RevokeSession,
    Method::SignOut,
    Method::SignOutEverywhere,
    Method::AdminRevoke,
    Method::RevokeFamily,
];

/// One signed-in browser: its cookie values, used raw so the racing requests keep sending
/// them after a sign-out clears them from the browser's jar.
struct Device {
    browser: Browser,
    session: String,
    /// Its CSRF cookie and the token in it, for `POST /session`.
    csrf: (String, String),
    /// The latest refresh token of its one family (rotated by its refresh loop).
    refresh: Mutex<String>,
}

struct User {
    id: String,
    email: String,
    method: Method,
    a: Arc<Device>,
    b: Arc<Device>,
}

fn cookie_from(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

async fn device(app: &TestApp, email: &str) -> Arc<Device> {
    let browser = signed_in(app, email).await;
    let session = browser.cookie(SESSION).expect("session cookie").value;
    let token = csrf_token(app, &browser).await;
    let csrf = (browser.cookie(CSRF).expect("CSRF cookie").value, token);
    let response = browser.post(&app.url("/token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refresh = cookie_from(&response, REFRESH).expect("refresh cookie");
    Arc::new(Device {
        browser,
        session,
        csrf,
        refresh: Mutex::new(refresh),
    })
}

/// A client that sends only the cookie given (never the browser's jar).
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn session_live(app: &TestApp, client: &reqwest::Client, token: &str) -> bool {
    let body: Value = client
        .get(app.url("/session"))
        .header(COOKIE, format!("{SESSION}={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.get("user").is_some()
}

/// `POST /session` (next-auth's `update(data)`) with the device's cookies: is it signed in?
async fn update_live(app: &TestApp, client: &reqwest::Client, device: &Device) -> bool {
    let (cookie, token) = &device.csrf;
    let response = client
        .post(app.url("/session"))
        .header(
            COOKIE,
            format!("{SESSION}={}; {CSRF}={cookie}", device.session),
        )
        .json(&serde_json::json!({"csrfToken": token, "data": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "POST /session");
    let body: Value = response.json().await.unwrap();
    body.get("user").is_some()
}

async fn verify_live(app: &TestApp, client: &reqwest::Client, token: &str) -> bool {
    let status = client
        .get(app.url("/verify"))
        .header(COOKIE, format!("{SESSION}={token}"))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "/verify answered {status}"
    );
    status == StatusCode::OK
}

/// One `/refresh` with the device's latest token; remembers the rotated one. True if it
/// was accepted.
async fn refresh_once(app: &TestApp, client: &reqwest::Client, device: &Device) -> bool {
    let mut current = device.refresh.lock().await;
    let response = client
        .post(app.url("/refresh"))
        .header(COOKIE, format!("{REFRESH}={current}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "/refresh answered {status}"
    );
    if let Some(next) = cookie_from(&response, REFRESH) {
        *current = next;
    }
    status == StatusCode::OK
}

/// Reads that extend the session (`GET` and `POST /session`, `/verify`), and one refresh
/// loop, for `device`.
fn load(app: &Arc<TestApp>, device: &Arc<Device>, tasks: &mut tokio::task::JoinSet<()>) {
    for kind in 0..4 {
        let (app, device) = (app.clone(), device.clone());
        tasks.spawn(async move {
            let client = raw();
            for _ in 0..ROUNDS {
                match kind {
                    0 => drop(session_live(&app, &client, &device.session).await),
                    1 => drop(verify_live(&app, &client, &device.session).await),
                    2 => drop(update_live(&app, &client, &device).await),
                    _ => drop(refresh_once(&app, &client, &device).await),
                }
            }
        });
    }
}

/// Revokes as `user.method` says, asserting that the revocation answered success.
async fn revoke(app: &TestApp, cli_config: &Path, user: &User) {
    let a = &user.a;
    match user.method {
        Method::RevokeSession => {
            let r = a.browser.post(&app.url("/revoke")).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        Method::SignOut | Method::SignOutEverywhere => {
            let mut form = vec![("callbackUrl", "/")];
            if user.method == Method::SignOutEverywhere {
                form.push(("everywhere", "1"));
            }
            let r = sign_out(app, &a.browser, &form).await;
            assert_eq!(r.status(), StatusCode::FOUND);
        }
        Method::AdminRevoke => {
            run_ok(&["sessions", "revoke", "--user", &user.id], cli_config).await;
        }
        Method::RevokeFamily => {
            let token = a.refresh.lock().await.clone();
            let r = raw()
                .post(app.url("/revoke"))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}

/// What each device must answer after the race: (session live, refresh live).
fn expected(method: Method) -> [(bool, bool); 2] {
    match method {
        Method::RevokeSession | Method::SignOut => [(false, false), (true, true)],
        Method::SignOutEverywhere | Method::AdminRevoke => [(false, false), (false, false)],
        Method::RevokeFamily => [(true, false), (true, true)],
    }
}

async fn race(store_url: &str, dir: &Path, session_lines: &str) {
    let setup = Setup {
        session: session_lines.into(),
        // The race's own requests must not be rate-limited.
        limits: "signin = \"off\"\ncallback = \"off\"\ntoken = \"off\"\nrefresh = \"off\"".into(),
        ..Setup::default()
    }
    .store(store_url);
    let cli_config = dir.join("cli.toml");
    std::fs::write(
        &cli_config,
        setup.toml("http://127.0.0.1:3000", "127.0.0.1:0"),
    )
    .unwrap();
    let app = Arc::new(setup.spawn().await);

    let mut users = Vec::new();
    for method in METHODS {
        for n in 0..USERS_PER_METHOD {
            let email = format!("{method:?}-{n}@example.com").to_ascii_lowercase();
            let a = device(&app, &email).await;
            let b = device(&app, &email).await;
            let id = session(&*app, &a.browser).await["user"]["id"]
                .as_str()
                .unwrap()
                .to_string();
            users.push(User {
                id,
                email,
                method,
                a,
                b,
            });
        }
    }

    // The race: every device under load while each user's revocation runs.
    let mut tasks = tokio::task::JoinSet::new();
    for user in &users {
        load(&app, &user.a, &mut tasks);
        load(&app, &user.b, &mut tasks);
    }
    let users = Arc::new(users);
    let mut revocations = tokio::task::JoinSet::new();
    for i in 0..users.len() {
        let (app, users, cli_config) = (app.clone(), users.clone(), cli_config.clone());
        revocations.spawn(async move { revoke(&app, &cli_config, &users[i]).await });
    }
    while let Some(done) = revocations.join_next().await {
        done.expect("revocation answered");
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("load task");
    }

    // Afterwards, on fresh connections: nothing revoked came back.
    let client = raw();
    let mut came_back = Vec::new();
    for user in users.iter() {
        for (device, (session_expected, refresh_expected)) in
            [&user.a, &user.b].into_iter().zip(expected(user.method))
        {
            let live = session_live(&app, &client, &device.session).await;
            let verified = verify_live(&app, &client, &device.session).await;
            let updated = update_live(&app, &client, device).await;
            let refreshed = refresh_once(&app, &client, device).await;
            let session_answers = (live, verified, updated);
            let expected_answers = (session_expected, session_expected, session_expected);
            if (session_answers, refreshed) != (expected_answers, refresh_expected) {
                came_back.push(format!(
                    "{} ({:?}): /session {live}, /verify {verified}, POST /session {updated}, /refresh {refreshed}; expected session {session_expected}, refresh {refresh_expected}",
                    user.email, user.method
                ));
            }
        }
    }
    assert!(
        came_back.is_empty(),
        "{} of {} devices answered wrongly after the race on {store_url}:\n{}",
        came_back.len(),
        users.len() * 2,
        came_back.join("\n")
    );

    // The index stayed complete: sign-out everywhere from B ends every remaining session.
    for user in users.iter().filter(|u| expected(u.method)[1].0) {
        let r = sign_out(
            &*app,
            &user.b.browser,
            &[("callbackUrl", "/"), ("everywhere", "1")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        for device in [&user.a, &user.b] {
            assert!(
                !session_live(&app, &client, &device.session).await,
                "{}: a session outlived sign-out everywhere (missing from the user's index)",
                user.email
            );
        }
    }
}

#[tokio::test]
async fn revocation_wins_races_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("latch.db").display());
    race(&url, dir.path(), EVERY_READ_WRITES).await;
}

#[tokio::test]
async fn revocation_wins_races_on_redis() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    race(&redis.url(), dir.path(), EVERY_READ_WRITES).await;
}

/// The same on Redis with reads that do not write (`update_age` left at a day), so most
/// `/session` and `/verify` calls are answered from the session cache (`store::cache`).
#[tokio::test]
async fn revocation_wins_races_on_redis_with_reads_from_memory() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    race(&redis.url(), dir.path(), "").await;
}
