//! The store contract, written once and run against every backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch::store::{self, Store, StoreError};
use tokio::task::JoinSet;

use crate::support::redis::{free_port, RedisCluster, RedisSentinel, RedisServer};

/// A TTL short enough to keep the tests quick.
const SHORT: Duration = Duration::from_millis(700);
const LONG: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{t:x}-{}:", N.fetch_add(1, Ordering::Relaxed))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn poll_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every check of the contract, against one store. Keys are unique to this call.
pub async fn contract(store: Arc<dyn Store>) {
    let p = unique("contract-");
    let k = |s: &str| format!("{p}{s}");

    // ping
    store.ping().await.expect("ping");

    // get / put / overwrite; values are bytes.
    assert_eq!(store.get(&k("missing")).await.unwrap(), None);
    store.put(&k("a"), b"one", None).await.unwrap();
    assert_eq!(
        store.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    store.put(&k("a"), b"two", None).await.unwrap();
    assert_eq!(
        store.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    let binary = [0u8, 255, 254, b'\n', 0, 128];
    store.put(&k("bin"), &binary, Some(LONG)).await.unwrap();
    assert_eq!(
        store.get(&k("bin")).await.unwrap().as_deref(),
        Some(&binary[..])
    );
    store.put(&k("empty"), b"", None).await.unwrap();
    assert_eq!(
        store.get(&k("empty")).await.unwrap().as_deref(),
        Some(&b""[..])
    );
    let odd = k("ünï cödé \u{1F512} *?[]\\");
    store.put(&odd, b"x", None).await.unwrap();
    assert_eq!(store.get(&odd).await.unwrap().as_deref(), Some(&b"x"[..]));

    // put_new
    assert!(store.put_new(&k("n"), b"first", Some(LONG)).await.unwrap());
    assert!(!store.put_new(&k("n"), b"second", Some(LONG)).await.unwrap());
    assert_eq!(
        store.get(&k("n")).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    assert!(!store.put_new(&k("a"), b"x", None).await.unwrap());

    // delete
    assert!(store.delete(&k("n")).await.unwrap());
    assert!(!store.delete(&k("n")).await.unwrap());
    assert_eq!(store.get(&k("n")).await.unwrap(), None);
    assert!(store.put_new(&k("n"), b"again", None).await.unwrap());

    // take: single use
    store.put(&k("t"), b"code", Some(LONG)).await.unwrap();
    assert_eq!(
        store.take(&k("t")).await.unwrap().as_deref(),
        Some(&b"code"[..])
    );
    assert_eq!(store.take(&k("t")).await.unwrap(), None);
    assert_eq!(store.get(&k("t")).await.unwrap(), None);
    assert_eq!(store.take(&k("never")).await.unwrap(), None);

    // take under concurrency: exactly one winner, several rounds.
    for round in 0..5 {
        let key = k(&format!("race{round}"));
        store.put(&key, b"once", Some(LONG)).await.unwrap();
        let mut set = JoinSet::new();
        for _ in 0..20 {
            let (s, key) = (store.clone(), key.clone());
            set.spawn(async move { s.take(&key).await.unwrap() });
        }
        let winners = set
            .join_all()
            .await
            .into_iter()
            .filter(Option::is_some)
            .count();
        assert_eq!(
            winners, 1,
            "round {round}: {winners} concurrent takes got the value"
        );
    }

    // expire
    assert!(!store.expire(&k("missing"), LONG).await.unwrap());
    assert!(store.expire(&k("a"), LONG).await.unwrap());
    assert_eq!(
        store.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );

    // sets
    let s = k("set");
    assert!(store.set_members(&s).await.unwrap().is_empty());
    for m in ["a", "b", "c", "b"] {
        store.set_add(&s, m, None).await.unwrap();
    }
    assert_eq!(
        sorted(store.set_members(&s).await.unwrap()),
        ["a", "b", "c"]
    );
    store.set_remove(&s, "b").await.unwrap();
    store.set_remove(&s, "zz").await.unwrap();
    assert_eq!(sorted(store.set_members(&s).await.unwrap()), ["a", "c"]);
    store.set_remove(&s, "a").await.unwrap();
    store.set_remove(&s, "c").await.unwrap();
    assert!(store.set_members(&s).await.unwrap().is_empty());
    store.set_add(&s, "x", Some(LONG)).await.unwrap();
    assert!(store.delete(&s).await.unwrap());
    assert!(store.set_members(&s).await.unwrap().is_empty());

    // keys_with_prefix, including glob characters in the prefix.
    let lp = k("list:");
    store.put(&format!("{lp}1"), b"1", None).await.unwrap();
    store
        .put(&format!("{lp}2"), b"2", Some(LONG))
        .await
        .unwrap();
    store
        .set_add(&format!("{lp}s"), "m", Some(LONG))
        .await
        .unwrap();
    store.put(&k("listX3"), b"3", None).await.unwrap();
    let globby = k("g*[x]?:");
    store.put(&format!("{globby}1"), b"1", None).await.unwrap();
    store.put(&k("gZ[x]?:2"), b"2", None).await.unwrap();
    store.put(&k("g*x]?:3"), b"3", None).await.unwrap();
    assert_eq!(
        sorted(store.keys_with_prefix(&lp).await.unwrap()),
        [format!("{lp}1"), format!("{lp}2"), format!("{lp}s")]
    );
    assert_eq!(
        store.keys_with_prefix(&globby).await.unwrap(),
        [format!("{globby}1")]
    );
    assert!(store
        .keys_with_prefix(&k("nothing-here:"))
        .await
        .unwrap()
        .is_empty());

    conditional_writes(&*store, &k("cond:")).await;
    ttl_checks(&*store, &k("ttl:")).await;
}

/// `put_existing` never creates (a delete wins over a racing extension) and `delete_if`
/// deletes only the expected value (lock release).
async fn conditional_writes(store: &dyn Store, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    assert!(!store.put_existing(&k("absent"), b"x", LONG).await.unwrap());
    assert_eq!(store.get(&k("absent")).await.unwrap(), None, "not created");
    store.put(&k("e"), b"one", Some(LONG)).await.unwrap();
    assert!(store.put_existing(&k("e"), b"two", LONG).await.unwrap());
    assert_eq!(
        store.get(&k("e")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        store.take(&k("e")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(!store.put_existing(&k("e"), b"three", LONG).await.unwrap());
    assert_eq!(
        store.get(&k("e")).await.unwrap(),
        None,
        "a deleted key stays deleted"
    );
    // An expired value counts as absent.
    store
        .put(&k("short"), b"v", Some(Duration::from_millis(30)))
        .await
        .unwrap();
    poll_until("expiry", LONG, || async {
        store.get(&k("short")).await.unwrap().is_none()
    })
    .await;
    assert!(!store.put_existing(&k("short"), b"w", LONG).await.unwrap());
    assert_eq!(store.get(&k("short")).await.unwrap(), None);
    // It sets the new TTL.
    store.put(&k("t"), b"v", Some(LONG)).await.unwrap();
    assert!(store
        .put_existing(&k("t"), b"w", Duration::from_millis(30))
        .await
        .unwrap());
    poll_until("new ttl", LONG, || async {
        store.get(&k("t")).await.unwrap().is_none()
    })
    .await;

    store.put(&k("lock"), b"owner-1", Some(LONG)).await.unwrap();
    assert!(!store.delete_if(&k("lock"), b"owner-2").await.unwrap());
    assert_eq!(
        store.get(&k("lock")).await.unwrap().as_deref(),
        Some(&b"owner-1"[..])
    );
    assert!(store.delete_if(&k("lock"), b"owner-1").await.unwrap());
    assert_eq!(store.get(&k("lock")).await.unwrap(), None);
    assert!(!store.delete_if(&k("lock"), b"owner-1").await.unwrap());
}

/// Expiry: everything is set up at once and checked after one wait of about [`SHORT`].
async fn ttl_checks(store: &dyn Store, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    let started = Instant::now();
    store.put(&k("take"), b"v", Some(SHORT)).await.unwrap();
    store.put(&k("new"), b"v", Some(SHORT)).await.unwrap();
    store.put(&k("expire"), b"v", None).await.unwrap();
    assert!(store.expire(&k("expire"), SHORT).await.unwrap());
    store.put(&k("extended"), b"v", Some(SHORT)).await.unwrap();
    assert!(store.expire(&k("extended"), LONG).await.unwrap());
    store.put(&k("persist"), b"v", Some(LONG)).await.unwrap();
    store.set_add(&k("set"), "a", Some(SHORT)).await.unwrap();
    store.set_add(&k("set"), "b", None).await.unwrap(); // keeps the set's expiry
    store
        .set_add(&k("refresh"), "a", Some(SHORT))
        .await
        .unwrap();
    store.put(&k("value"), b"v", Some(SHORT)).await.unwrap(); // set last: expires last
    assert_eq!(
        store.get(&k("value")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        sorted(store.set_members(&k("set")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(store.keys_with_prefix(p).await.unwrap().len(), 8);

    // Refresh the "refresh" set's TTL half way.
    tokio::time::sleep(SHORT / 2).await;
    store.set_add(&k("refresh"), "b", Some(LONG)).await.unwrap();

    poll_until("a short TTL to expire", Duration::from_secs(5), || async {
        store.get(&k("value")).await.unwrap().is_none()
    })
    .await;
    assert!(
        started.elapsed() >= SHORT - Duration::from_millis(50),
        "expired early"
    );
    assert_eq!(store.take(&k("take")).await.unwrap(), None);
    assert_eq!(store.get(&k("expire")).await.unwrap(), None);
    assert!(!store.expire(&k("expire"), LONG).await.unwrap());
    assert!(!store.delete(&k("expire")).await.unwrap());
    assert!(store.set_members(&k("set")).await.unwrap().is_empty());
    assert_eq!(
        sorted(store.set_members(&k("refresh")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        store.get(&k("extended")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        store.get(&k("persist")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        sorted(store.keys_with_prefix(p).await.unwrap()),
        [k("extended"), k("persist"), k("refresh")]
    );
    // An expired key is absent for put_new.
    assert!(store.put_new(&k("new"), b"w", None).await.unwrap());
    assert_eq!(
        store.get(&k("new")).await.unwrap().as_deref(),
        Some(&b"w"[..])
    );
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

// ---- backends ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    let store = store::open("memory://", None).await.unwrap();
    assert_eq!(store.backend(), "memory");
    contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.db");
    let store = store::open("sqlite://ignored.db", Some(&path))
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    contract(store.clone()).await;
    store.put("persisted", b"yes", None).await.unwrap();
    drop(store);
    assert!(path.exists());

    // The path may also come from the URL; data survives a reopen.
    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url, None).await.unwrap();
    assert_eq!(
        store.get("persisted").await.unwrap().as_deref(),
        Some(&b"yes"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_single() {
    let server = RedisServer::new();
    let store = store::open(&server.url(), None).await.unwrap();
    assert_eq!(store.backend(), "redis");
    contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster() {
    let cluster = RedisCluster::new();
    let store = store::open(&cluster.url(), None).await.unwrap();
    assert_eq!(store.backend(), "redis-cluster");
    contract(store.clone()).await;

    // Keys land on every master, and the listing finds them all.
    let p = unique("spread-");
    for i in 0..30 {
        store
            .put(&format!("{p}{i}"), b"x", Some(LONG))
            .await
            .unwrap();
    }
    assert_eq!(store.keys_with_prefix(&p).await.unwrap().len(), 30);
    for n in &cluster.nodes {
        let count = crate::support::redis::raw_command(n.port(), "DBSIZE").unwrap_or_default();
        assert_ne!(count.trim(), ":0", "a master holds no keys: {count}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_sentinel() {
    let sentinel = RedisSentinel::new();
    let store = store::open(&sentinel.url(), None).await.unwrap();
    assert_eq!(store.backend(), "redis-sentinel");
    contract(store).await;
}

/// While Redis is down every call fails with Unavailable within 3 s, each time.
async fn assert_down(store: &dyn Store, rounds: usize) {
    for i in 0..rounds {
        for (what, r) in [
            ("get", store.get("before").await.map(drop)),
            ("put", store.put("k", b"v", None).await),
            ("take", store.take("k").await.map(drop)),
            ("keys", store.keys_with_prefix("b").await.map(drop)),
            ("ping", store.ping().await),
        ] {
            assert_unavailable(&format!("round {i}: {what}"), r);
        }
    }
}

/// Times one call with Redis down: Unavailable within 3 s.
async fn assert_fails_fast(store: &dyn Store) {
    let t = Instant::now();
    assert_unavailable("get", store.get("before").await);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

/// After Redis is back, the same store works again within `limit`.
async fn assert_recovers(store: &dyn Store, limit: Duration, label: &str) {
    let t = Instant::now();
    poll_until("the store to reconnect", limit, || async {
        store.ping().await.is_ok() && store.put("after", b"2", None).await.is_ok()
    })
    .await;
    eprintln!("{label}: usable {:?} after Redis came back", t.elapsed());
    assert_eq!(
        store.get("after").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

/// Redis goes away: calls fail fast with Unavailable; it comes back: the same store recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_and_recovery() {
    let mut server = RedisServer::new();
    let store = store::open(&server.url(), None).await.unwrap();
    store.put("before", b"1", None).await.unwrap();

    server.stop();
    for _ in 0..3 {
        assert_fails_fast(&*store).await;
    }
    assert_down(&*store, 2).await;

    server.start();
    assert_recovers(&*store, Duration::from_secs(5), "redis").await;
}

/// A frozen Redis (connections open, no answers) gives Unavailable after the response
/// timeout, not a hang; once it thaws, the store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_frozen_server_times_out() {
    let server = RedisServer::new();
    let store = store::open(&server.url(), None).await.unwrap();
    store.put("before", b"1", None).await.unwrap();

    server.pause();
    let t = Instant::now();
    assert_fails_fast(&*store).await;
    eprintln!("frozen redis: Unavailable after {:?}", t.elapsed());

    server.resume();
    assert_recovers(&*store, Duration::from_secs(5), "frozen redis").await;
    assert_eq!(
        store.get("before").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_outage_and_recovery() {
    let mut s = RedisSentinel::new();
    let store = store::open(&s.url(), None).await.unwrap();
    store.put("before", b"1", None).await.unwrap();

    s.master.stop();
    assert_fails_fast(&*store).await;
    assert_down(&*store, 2).await;

    s.master.start();
    assert_recovers(&*store, Duration::from_secs(5), "sentinel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_outage_and_recovery() {
    let mut cluster = RedisCluster::new();
    let store = store::open(&cluster.url(), None).await.unwrap();
    store.put("before", b"1", None).await.unwrap();

    for n in &mut cluster.nodes {
        n.stop();
    }
    assert_fails_fast(&*store).await;
    assert_down(&*store, 2).await;

    for n in &mut cluster.nodes {
        n.start();
    }
    assert_recovers(&*store, Duration::from_secs(10), "cluster").await;
}

/// `open()` succeeds with Redis down; the store reports Unavailable, then works once it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_at_open() {
    let port = free_port(false);
    let url = format!("redis://127.0.0.1:{port}");
    let t = Instant::now();
    let store = store::open(&url, None).await.expect("open with Redis down");
    assert_unavailable("ping", store.ping().await);
    assert_unavailable("get", store.get("k").await);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );

    let _server = RedisServer::on_port(port);
    poll_until("the store to connect", Duration::from_secs(5), || async {
        store.ping().await.is_ok()
    })
    .await;
    store.put("k", b"v", None).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// The same for Sentinel and Cluster URLs: nothing listens, yet open() succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_and_cluster_down_at_open() {
    let port = free_port(false);
    for url in [
        format!("redis+sentinel://127.0.0.1:{port}/mymaster"),
        format!("redis+cluster://127.0.0.1:{port}"),
    ] {
        let t = Instant::now();
        let store = store::open(&url, None).await.expect("open with Redis down");
        assert_unavailable("ping", store.ping().await);
        assert_unavailable("get", store.get("k").await);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{url}: took {:?}",
            t.elapsed()
        );
    }
}

/// Credentials in the URL are used; wrong ones are a Backend (configuration) error, not 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_password() {
    let server = RedisServer::with_args(&["--requirepass", "s3cr:t"]);
    let good = format!("redis://:s3cr%3At@127.0.0.1:{}", server.port());
    let store = store::open(&good, None).await.unwrap();
    store.put("k", b"v", None).await.unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    let bad = format!("redis://:nope@127.0.0.1:{}", server.port());
    let store = store::open(&bad, None).await.unwrap();
    match store.ping().await {
        Err(StoreError::Backend(m)) => assert!(!m.contains("nope"), "password in message: {m}"),
        other => panic!("expected Backend, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in [
        "mysql://x",
        "redis+sentinel://127.0.0.1:1",
        "redis+cluster://",
        "sqlite://",
    ] {
        assert!(store::open(url, None).await.is_err(), "{url} was accepted");
    }
}
