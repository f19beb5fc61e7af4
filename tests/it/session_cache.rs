//! The session cache on Redis (`store::cache`, `store::redis::tracking`): a second instance
//! answers `/session` and `/verify` from memory (Redis sees no `GET`), and still refuses a
//! session the moment its revocation answered elsewhere: on another instance, from the
//! admin CLI in another process, or by a hand-made `DEL`; while its invalidation
//! connection is lost it reads Redis again, and it comes back.
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::flows::{sign_out, user_id};
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::run_ok;
use crate::support::redis::{redis_cli, RedisSentinel, RedisServer, SentinelSet, SENTINEL_SERVICE};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SESSION: &str = "latch.session-token";
const FEED: &str = "latch-session-cache";

/// `GET` commands Redis has run so far.
fn gets(redis: &RedisServer) -> u64 {
    gets_at(redis.port(), None)
}

fn gets_at(port: u16, password: Option<&str>) -> u64 {
    calls_at(port, password, "get")
}

/// How many times Redis has run `command` (`get`, `client|tracking`).
fn calls_at(port: u16, password: Option<&str>, command: &str) -> u64 {
    let stats = redis_cli(port, password, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The ids of the instances' invalidation connections (`CLIENT LIST name=…`).
fn feeds(redis: &RedisServer) -> Vec<String> {
    feeds_at(redis.port(), None)
}

fn feeds_at(port: u16, password: Option<&str>) -> Vec<String> {
    redis_cli(port, password, &["CLIENT", "LIST"])
        .lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name={FEED}")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

/// Waits (polling, bounded) until `n` instances have their feed connected.
async fn wait_for_feeds(redis: &RedisServer, n: usize) {
    wait_for_feeds_at(redis.port(), None, n).await
}

async fn wait_for_feeds_at(port: u16, password: Option<&str>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while feeds_at(port, password).len() != n {
        assert!(
            Instant::now() < deadline,
            "{} invalidation connections on {port}, expected {n}",
            feeds_at(port, password).len()
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
            run_ok(&["sessions", "revoke", "--user", &id], &cli_config).await;
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

/// A path to Redis on `127.0.0.1:<returned port>` on which everything Redis sends arrives
/// `delay` late: slow but live (nothing is lost, every ping is answered).
async fn slow_path(to: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    relay(to, move |client, server| {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        let (late, mut due) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        tokio::spawn(async move {
            while let Some((at, bytes)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                if client_write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                let at = tokio::time::Instant::now() + delay;
                if late.send((at, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        });
    })
    .await
}

/// A relay on `127.0.0.1:<returned port>` to `127.0.0.1:<to>`: for each connection accepted,
/// a connection to `to`, and `each` (client, server) to carry the bytes between them.
async fn relay(
    to: u16,
    mut each: impl FnMut(tokio::net::TcpStream, tokio::net::TcpStream) + Send + 'static,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                return;
            };
            each(client, server);
        }
    });
    port
}

/// An instance whose path to Redis is slow (100 ms each way back) still never answers from
/// memory a record deleted, on a fast path, before its read began: a hit waits for the
/// answer to a probe sent after it, and Redis sends that after the invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_path_to_redis_never_serves_what_was_deleted_before_the_read() {
    let redis = RedisServer::new();
    let port = slow_path(redis.port(), Duration::from_millis(100)).await;
    let store = latch::store::open_for_server(&format!("redis://127.0.0.1:{port}"), None, 100)
        .await
        .unwrap();
    wait_for_feeds(&redis, 1).await;
    for round in 0..4 {
        let key = format!("session:slow-{round}");
        store.put(&key, b"record", None).await.unwrap();
        // Read until it is answered from memory (this instance's own write's invalidation
        // may still be on the slow path and stop the first read from being kept).
        let mut cached = false;
        for _ in 0..20 {
            let before = gets(&redis);
            assert_eq!(store.get(&key).await.unwrap().unwrap(), b"record");
            if gets(&redis) == before {
                cached = true;
                break;
            }
        }
        assert!(cached, "round {round}: never answered from memory");
        redis_cli(redis.port(), None, &["DEL", &key]);
        assert_eq!(
            store.get(&key).await.unwrap(),
            None,
            "round {round}: deleted, still answered"
        );
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

const PW: &str = "cache-sentinel-pw";

/// `GET`s run by both data nodes of the set (a read from the old master counts too).
fn set_gets(set: &SentinelSet) -> u64 {
    set.nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| gets_at(n.port(), Some(PW)))
        .sum()
}

/// On a Sentinel URL: `b` answers `held` and a session signed in now on `a` from memory
/// (no data node runs a `GET`), and refuses the new one at once once its sign-out on `a`
/// answered (retried while `a` answers 503, as during a failover).
async fn answered_from_memory_and_revoked_at_once(
    set: &SentinelSet,
    a: &Arc<TestApp>,
    b: &TestApp,
    held: &str,
    email: &str,
) {
    let client = raw();
    // A sign-in may meet a 503 while the store follows a failover: tried again (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let browser = loop {
        let (a, who) = (a.clone(), email.to_string());
        match tokio::spawn(async move { signed_in(&*a, &who).await }).await {
            Ok(browser) => break browser,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{email}: sign-in kept failing: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let t = token(&browser);
    // Read once (kept), then from memory; B's store may still be following the failover,
    // and reads Redis until it reaches the feed's node (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(live(b, &client, &t).await, (true, true));
        assert_eq!(
            live(b, &client, held).await,
            (true, true),
            "a held session was lost"
        );
        let before = set_gets(set);
        for _ in 0..3 {
            assert_eq!(live(b, &client, &t).await, (true, true));
            assert_eq!(live(b, &client, held).await, (true, true));
        }
        if set_gets(set) == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{email}: B never answered from memory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = sign_out(&**a, &browser, &[("callbackUrl", "/")]).await;
        if r.status() == StatusCode::FOUND {
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "{email}: sign-out kept failing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        live(b, &raw(), &t).await,
        (false, false),
        "{email}: still live on B after its sign-out on A answered"
    );
}

/// Two instances on a Sentinel URL (three Sentinels, a password): the second answers from
/// memory, and refuses at once what was signed out on the first; the same after a
/// `SENTINEL FAILOVER` and after a SIGKILL of the master, once each instance's feed is on
/// the new master (`CLIENT LIST` there); a session held from the start stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sentinel_the_feed_follows_the_master_and_revocation_wins() {
    let mut set = SentinelSet::new(PW);
    let a = Arc::new(Setup::default().store(set.url()).spawn().await);
    let b = Setup::default().store(set.url()).spawn().await;
    wait_for_feeds_at(set.master_port(), Some(PW), 2).await;
    let held = token(&signed_in(&*a, "held@example.com").await);
    answered_from_memory_and_revoked_at_once(&set, &a, &b, &held, "before@example.com").await;

    for fault in ["SENTINEL FAILOVER", "SIGKILL of the master"] {
        let old = set.master_port();
        let old_feeds = feeds_at(old, Some(PW));
        assert_eq!(old_feeds.len(), 2, "{fault}: feeds on the master {old}");
        set.cause(fault);
        let new = tokio::task::block_in_place(|| set.wait_new_master(old, Duration::from_secs(30)));
        wait_for_feeds_at(new, Some(PW), 2).await;
        let email = format!("after-{}@example.com", fault.split(' ').next().unwrap());
        answered_from_memory_and_revoked_at_once(&set, &a, &b, &held, &email.to_lowercase()).await;
        if fault == "SENTINEL FAILOVER" {
            // The old master rejoins as a replica before the next fault; no feed stays on it.
            tokio::task::block_in_place(|| set.wait_healthy(Duration::from_secs(30)));
            assert!(
                feeds_at(old, Some(PW)).is_empty(),
                "a feed stayed on the old master"
            );
        }
    }
}

/// A node demoted (`REPLICAOF`) under the feed: its `ROLE` now says `slave`, so a record in
/// memory is not answered from memory (the fence it answers proves nothing) but read from
/// the node, as long as it is not a master, and once it has synced from its new master
/// the record that master does not hold is refused.
#[tokio::test]
async fn a_node_demoted_under_the_feed_answers_no_fence() {
    let node = RedisServer::new();
    let mut master = RedisServer::new();
    let store = latch::store::open_for_server(&node.url(), None, 100)
        .await
        .unwrap();
    wait_for_feeds(&node, 1).await;
    let key = "session:demoted";
    store.put(key, b"record", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = gets(&node);
        assert_eq!(store.get(key).await.unwrap().unwrap(), b"record");
        if gets(&node) == before {
            break;
        }
        assert!(Instant::now() < deadline, "never answered from memory");
    }
    // Its new master is frozen: the node stays a replica that has not synced, with its
    // data as it was and no flush (which would send an invalidation).
    master.pause();
    let port = master.port().to_string();
    let out = redis_cli(node.port(), None, &["REPLICAOF", "127.0.0.1", &port]);
    assert_eq!(out.trim(), "OK", "{out}");
    for n in 0..5 {
        let before = gets(&node);
        assert_eq!(store.get(key).await.unwrap().unwrap(), b"record");
        assert_eq!(
            gets(&node),
            before + 1,
            "read {n}: answered from memory after the node was demoted"
        );
    }
    master.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !redis_cli(node.port(), None, &["INFO", "replication"]).contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "the replica never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.get(key).await.unwrap(), None, "refused once synced");
    assert!(feeds(&node).is_empty(), "a feed on a replica");
    master.stop();
}

/// A path to the Sentinel on `to` (`127.0.0.1:<returned port>`) and the count of the
/// `get-master-addr-by-name` asks sent through it, to be awaited: only feeds ask that (the
/// store asks `SENTINEL MASTER`, `REPLICAS` and `MASTERS`).
async fn counted_path(to: u16) -> (u16, tokio::sync::watch::Receiver<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ASK: &[u8] = b"get-master-addr-by-name";
    let (counted, asks) = tokio::sync::watch::channel(0);
    let port = relay(to, move |client, server| {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let counted = counted.clone();
        tokio::spawn(async move {
            // The end of the last read is kept, for an ask split across two reads.
            let (mut seen, mut buf) = (Vec::new(), [0u8; 8192]);
            while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                seen.extend_from_slice(&buf[..n]);
                let found = seen.windows(ASK.len()).filter(|w| *w == ASK).count();
                if found > 0 {
                    counted.send_modify(|asks| *asks += found);
                }
                seen.drain(..seen.len().saturating_sub(ASK.len() - 1));
                if server_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    })
    .await;
    (port, asks)
}

/// Sentinels that disagree on the master (two groups under one name, a Sentinel each; the
/// store follows the one at the later config-epoch): no feed attaches to either master, so
/// the second instance reads every `/session` and `/verify` from the store, and refuses a
/// session at once once its sign-out on the first answered.
#[tokio::test]
async fn while_the_sentinels_disagree_no_feed_attaches_and_revocation_wins() {
    let older = RedisSentinel::new();
    let newer = RedisSentinel::with_config_epoch(1);
    let (path, mut asks) = counted_path(older.sentinel.port()).await;
    let url = format!(
        "redis+sentinel://127.0.0.1:{path},{}/{SENTINEL_SERVICE}",
        newer.sentinel.addr()
    );
    let a = Setup::default().store(&url).spawn().await;
    let b = Setup::default().store(&url).spawn().await;
    // Three asks from two feeds: one feed asked twice. A feed that took the first answer
    // would have connected (and run `CLIENT TRACKING`) before asking again.
    tokio::time::timeout(Duration::from_secs(10), asks.wait_for(|&n| n >= 3))
        .await
        .expect("the feeds never asked the Sentinels three times")
        .expect("the path to the Sentinel closed");

    let browser = signed_in(&a, "disagree@example.com").await;
    let t = token(&browser);
    let client = raw();
    for n in 0..3 {
        let before = gets(&newer.master);
        assert_eq!(live(&b, &client, &t).await, (true, true));
        assert!(
            gets(&newer.master) > before,
            "read {n} answered from memory"
        );
    }
    let r = sign_out(&a, &browser, &[("callbackUrl", "/")]).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        live(&b, &raw(), &t).await,
        (false, false),
        "still live on B after its sign-out on A answered"
    );
    for master in [&older.master, &newer.master] {
        let tracking = calls_at(master.port(), None, "client|tracking");
        assert_eq!(tracking, 0, "a feed connected to {}", master.port());
    }
    a.stop().await;
    b.stop().await;
}
