//! The session cache on Redis (`store::cache`, `store::redis::tracking`): a second instance
//! answers `/session` and `/verify` from memory (Redis sees no `GET`), and still refuses a
//! session the moment its revocation answered elsewhere: on another instance, from the
//! admin CLI in another process, or by a hand-made `DEL`; while its invalidation
//! connection is lost it reads Redis again, and it comes back.
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::flows::{sign_out, user_id};
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::command;
use crate::support::redis::{redis_cli, RedisServer};
use latch::store::Store;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const SESSION: &str = "latch.session-token";
const FEED: &str = "latch-session-cache";

/// `GET` commands Redis has run so far.
fn gets(redis: &RedisServer) -> u64 {
    let stats = redis_cli(redis.port(), None, &["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The ids of the instances' invalidation connections (`CLIENT LIST name=…`).
fn feeds(redis: &RedisServer) -> Vec<String> {
    redis_cli(redis.port(), None, &["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name={FEED}")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

/// Waits (polling, bounded) until `n` instances have their feed connected.
async fn wait_for_feeds(redis: &RedisServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while feeds(redis).len() != n {
        assert!(
            Instant::now() < deadline,
            "{} invalidation connections, expected {n}",
            feeds(redis).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// (`/session` names a user, `/verify` answered 200) for the cookie `token` on `app`.
async fn live(app: &TestApp, client: &reqwest::Client, token: &str) -> (bool, bool) {
    let cookie = format!("{SESSION}={token}");
    let session: Value = client
        .get(app.url("/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verify = client
        .get(app.url("/verify"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        verify == StatusCode::OK || verify == StatusCode::UNAUTHORIZED,
        "/verify answered {verify}"
    );
    (session.get("user").is_some(), verify == StatusCode::OK)
}

fn token(browser: &Browser) -> String {
    browser.cookie(SESSION).expect("session cookie").value
}

#[tokio::test]
async fn a_second_instance_answers_from_memory_and_refuses_at_once_what_was_revoked_elsewhere() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    let setup = || Setup::default().store(redis.url());
    let cli_config = dir.path().join("cli.toml");
    std::fs::write(
        &cli_config,
        setup().toml("http://127.0.0.1:3000", "127.0.0.1:0"),
    )
    .unwrap();
    let a = Arc::new(setup().spawn().await);
    let b = Arc::new(setup().spawn().await);
    wait_for_feeds(&redis, 2).await;

    const USERS: usize = 12;
    let mut browsers = Vec::new();
    for n in 0..USERS {
        browsers.push(signed_in(&*a, &format!("cached-{n}@example.com")).await);
    }
    let tokens: Vec<String> = browsers.iter().map(token).collect();

    // B reads each record from Redis once, then from memory.
    let client = raw();
    for t in &tokens {
        assert_eq!(live(&b, &client, t).await, (true, true));
    }
    let before = gets(&redis);
    for _ in 0..3 {
        for t in &tokens {
            assert_eq!(live(&b, &client, t).await, (true, true));
        }
    }
    assert_eq!(
        gets(&redis),
        before,
        "B read Redis for sessions it had already read"
    );

    // The race: B under load on every session while they are revoked one by one on A and
    // from the admin CLI. A request sent after a revocation answered must be refused.
    let revoked_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (b, tokens, revoked_at, stop) =
            (b.clone(), tokens.clone(), revoked_at.clone(), stop.clone());
        load.spawn(async move {
            let client = raw();
            let mut wrong = Vec::new();
            let mut requests = 0;
            while !stop.load(Ordering::Relaxed) && requests < 5_000 {
                let t = &tokens[(requests + worker) % tokens.len()];
                let sent = Instant::now();
                let answer = live(&b, &client, t).await;
                requests += 1;
                let revoked = revoked_at.lock().unwrap().get(t).copied();
                if matches!(revoked, Some(at) if at < sent) && answer != (false, false) {
                    wrong.push(format!(
                        "{answer:?} for a session revoked before the request"
                    ));
                }
            }
            wrong
        });
    }
    for (n, browser) in browsers.iter().enumerate().take(USERS - 2) {
        let t = &tokens[n];
        if n % 2 == 0 {
            let r = sign_out(&*a, browser, &[("callbackUrl", "/")]).await;
            assert_eq!(r.status(), StatusCode::FOUND);
        } else {
            let id = user_id(&*a, browser).await;
            let out = command(&["sessions", "revoke", "--user", &id], &cli_config)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        revoked_at.lock().unwrap().insert(t.clone(), Instant::now());
        // At once, on a fresh connection to B.
        assert_eq!(
            live(&b, &raw(), t).await,
            (false, false),
            "session {n} still live on B after its revocation answered"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut wrong = Vec::new();
    while let Some(done) = load.join_next().await {
        wrong.extend(done.unwrap());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The two left are live on both, and still answered from memory by B.
    let before = gets(&redis);
    for t in &tokens[USERS - 2..] {
        assert_eq!(live(&b, &client, t).await, (true, true));
        assert_eq!(live(&a, &client, t).await, (true, true));
    }
    let after_first = gets(&redis);
    for t in &tokens[USERS - 2..] {
        assert_eq!(live(&b, &client, t).await, (true, true));
    }
    assert_eq!(gets(&redis), after_first, "B read Redis again");
    assert!(after_first >= before);
}

/// The answer of `get` if it is ready at once (from memory), `None` if it would wait (for
/// Redis).
fn at_once(store: &dyn Store, key: &str) -> Option<Option<Vec<u8>>> {
    let mut get = std::pin::pin!(store.get(key));
    match get
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(answer) => Some(answer.unwrap()),
        Poll::Pending => None,
    }
}

/// A hit first reads what Redis has already sent: here the runtime's only thread is blocked
/// in `redis-cli` while Redis deletes the key and sends the invalidation, so the feed's own
/// task cannot have run when the next read comes.
#[tokio::test]
async fn a_hit_first_applies_the_invalidations_already_received() {
    let redis = RedisServer::new();
    let store = latch::store::open_for_server(&redis.url(), None, 100)
        .await
        .unwrap();
    wait_for_feeds(&redis, 1).await;
    for round in 0..20 {
        let key = format!("session:hit-{round}");
        store.put(&key, b"record", None).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().unwrap(), b"record");
        assert_eq!(
            at_once(&*store, &key),
            Some(Some(b"record".to_vec())),
            "from memory"
        );
        redis_cli(redis.port(), None, &["DEL", &key]);
        assert_eq!(
            at_once(&*store, &key),
            None,
            "round {round}: answered from memory after DEL"
        );
        assert_eq!(store.get(&key).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_lost_invalidation_connection_turns_the_cache_off_until_it_is_back() {
    let redis = RedisServer::new();
    let app = Setup::default().store(redis.url()).spawn().await;
    wait_for_feeds(&redis, 1).await;
    let client = raw();

    let browser = signed_in(&app, "lost-feed@example.com").await;
    let t = token(&browser);
    assert_eq!(live(&app, &client, &t).await, (true, true));
    let keys = redis_cli(redis.port(), None, &["KEYS", "session:*"]);
    let key = keys.trim().to_string();
    assert!(key.starts_with("session:"), "{keys}");

    // The invalidation connection is cut; then the record is deleted behind latch's back,
    // so no invalidation can reach it. latch must not answer from memory.
    let ids = feeds(&redis);
    redis_cli(redis.port(), None, &["CLIENT", "KILL", "ID", &ids[0]]);
    redis_cli(redis.port(), None, &["DEL", &key]);
    assert_eq!(live(&app, &client, &t).await, (false, false));

    // The connection comes back by itself, and with it reads from memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    while feeds(&redis).first() == ids.first() || feeds(&redis).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the invalidation connection did not come back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let browser = signed_in(&app, "lost-feed@example.com").await;
    let t = token(&browser);
    assert_eq!(live(&app, &client, &t).await, (true, true));
    let before = gets(&redis);
    assert_eq!(live(&app, &client, &t).await, (true, true));
    assert_eq!(
        gets(&redis),
        before,
        "not answered from memory after the reconnection"
    );

    // A hand-made DEL (another program) is an invalidation like any other.
    let key = redis_cli(redis.port(), None, &["KEYS", "session:*"]);
    redis_cli(redis.port(), None, &["DEL", key.trim()]);
    assert_eq!(live(&app, &client, &t).await, (false, false));
}

#[tokio::test]
async fn with_session_cache_0_every_read_goes_to_redis() {
    let redis = RedisServer::new();
    let mut setup = Setup::default().store(redis.url());
    setup.store_extra = "session_cache = 0".into();
    let app = setup.spawn().await;
    let browser = signed_in(&app, "uncached@example.com").await;
    let t = token(&browser);
    let client = raw();
    live(&app, &client, &t).await;
    let before = gets(&redis);
    for _ in 0..3 {
        assert_eq!(live(&app, &client, &t).await, (true, true));
    }
    assert!(
        gets(&redis) >= before + 6,
        "reads were answered without Redis"
    );
    assert!(
        feeds(&redis).is_empty(),
        "an invalidation connection with the cache off"
    );
}
