//! The store contract, written once and run against every backend, one test per case and
//! backend; then what happens when Redis goes away, freezes or is down at start.

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

/// The contract's cases, in the order [`contract`] runs them; each also runs alone against
/// every backend as `store_contract::<backend>::<case>` (see [`backends`]), the way Dex's
/// storage conformance suite names its cases. Every case gets keys of its own (`p`).
macro_rules! contract_suite {
    (cases $cases:tt; backends [$($backend:ident),* $(,)?]) => {
        contract_suite!(@all $cases);
        $(contract_suite!(@backend $backend $cases);)*
    };
    (@all [$($case:ident),* $(,)?]) => {
        /// Every case of the contract in turn, against one store (a topology set up
        /// elsewhere, e.g. `redis_topologies`).
        pub async fn contract(store: Arc<dyn Store>) {
            $($case(&store, &unique(concat!(stringify!($case), "-"))).await;)*
        }
    };
    (@backend $backend:ident [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backend = super::backends::$backend().await;
                    let p = super::unique(concat!(stringify!($case), "-"));
                    super::$case(&backend.store, &p).await;
                }
            )*
        }
    };
}

contract_suite! {
    cases [
        ping,
        get_put_and_overwrite_bytes,
        put_new,
        delete,
        take_is_single_use,
        take_has_one_winner_under_concurrency,
        expire,
        sets,
        keys_with_prefix,
        conditional_writes,
        rate_limits,
        ttl_expiry,
    ];
    backends [memory, sqlite_file, redis_single, redis_cluster, redis_sentinel]
}

async fn ping(store: &Arc<dyn Store>, _p: &str) {
    store.ping().await.expect("ping");
}

/// get / put / overwrite; values are bytes.
async fn get_put_and_overwrite_bytes(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
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
}

async fn put_new(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    assert!(store.put_new(&k("n"), b"first", Some(LONG)).await.unwrap());
    assert!(!store.put_new(&k("n"), b"second", Some(LONG)).await.unwrap());
    assert_eq!(
        store.get(&k("n")).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // A key written by put.
    store.put(&k("a"), b"two", None).await.unwrap();
    assert!(!store.put_new(&k("a"), b"x", None).await.unwrap());
}

async fn delete(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    assert!(store.put_new(&k("n"), b"first", Some(LONG)).await.unwrap());
    assert!(store.delete(&k("n")).await.unwrap());
    assert!(!store.delete(&k("n")).await.unwrap());
    assert_eq!(store.get(&k("n")).await.unwrap(), None);
    assert!(store.put_new(&k("n"), b"again", None).await.unwrap());
}

async fn take_is_single_use(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    store.put(&k("t"), b"code", Some(LONG)).await.unwrap();
    assert_eq!(
        store.take(&k("t")).await.unwrap().as_deref(),
        Some(&b"code"[..])
    );
    assert_eq!(store.take(&k("t")).await.unwrap(), None);
    assert_eq!(store.get(&k("t")).await.unwrap(), None);
    assert_eq!(store.take(&k("never")).await.unwrap(), None);
}

/// Exactly one winner, several rounds.
async fn take_has_one_winner_under_concurrency(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
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
}

async fn expire(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    store.put(&k("a"), b"two", None).await.unwrap();
    assert!(!store.expire(&k("missing"), LONG).await.unwrap());
    assert!(store.expire(&k("a"), LONG).await.unwrap());
    assert_eq!(
        store.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

async fn sets(store: &Arc<dyn Store>, p: &str) {
    let s = format!("{p}set");
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
}

/// Including glob characters in the prefix.
async fn keys_with_prefix(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
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
}

/// GCRA: `tolerance / interval + 1` requests at once, then one per `interval`; a refused
/// request is not counted; keys are independent.
async fn rate_limits(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    // Wide enough that a loaded machine still makes the burst within one interval.
    let (interval, tolerance) = (Duration::from_millis(1500), Duration::from_millis(3000));
    for i in 0..3 {
        assert_eq!(
            store
                .rate_limit(&k("a"), interval, tolerance)
                .await
                .unwrap(),
            None,
            "request {i} of the burst"
        );
    }
    let wait = store
        .rate_limit(&k("a"), interval, tolerance)
        .await
        .unwrap()
        .expect("the fourth is refused");
    assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
    // Another key (another client or route) has its own count.
    assert_eq!(
        store
            .rate_limit(&k("b"), interval, tolerance)
            .await
            .unwrap(),
        None
    );
    // After the wait, exactly one more.
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(
        store
            .rate_limit(&k("a"), interval, tolerance)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .rate_limit(&k("a"), interval, tolerance)
        .await
        .unwrap()
        .is_some());
}

/// `put_existing` never creates (a delete wins over a racing extension) and `delete_if`
/// deletes only the expected value (lock release).
async fn conditional_writes(store: &Arc<dyn Store>, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    assert!(!store
        .put_existing(&k("absent"), b"x", Some(LONG))
        .await
        .unwrap());
    assert_eq!(store.get(&k("absent")).await.unwrap(), None, "not created");
    store.put(&k("e"), b"one", Some(LONG)).await.unwrap();
    assert!(store
        .put_existing(&k("e"), b"two", Some(LONG))
        .await
        .unwrap());
    assert_eq!(
        store.get(&k("e")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(
        store.take(&k("e")).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(!store
        .put_existing(&k("e"), b"three", Some(LONG))
        .await
        .unwrap());
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
    assert!(!store
        .put_existing(&k("short"), b"w", Some(LONG))
        .await
        .unwrap());
    assert_eq!(store.get(&k("short")).await.unwrap(), None);
    // It sets the new TTL.
    store.put(&k("t"), b"v", Some(LONG)).await.unwrap();
    assert!(store
        .put_existing(&k("t"), b"w", Some(Duration::from_millis(30)))
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
async fn ttl_expiry(store: &Arc<dyn Store>, p: &str) {
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

/// A fresh store of each kind for one test, with what keeps it alive (a temp dir, the
/// `redis-server` processes, killed when it drops).
mod backends {
    use super::*;

    pub struct Backend {
        pub store: Arc<dyn Store>,
        _keep: Box<dyn std::any::Any + Send>,
    }

    /// Opens `url`, asserting the backend's name; `keep` lives as long as the store.
    async fn open(
        url: &str,
        path: Option<&std::path::Path>,
        backend: &str,
        keep: impl std::any::Any + Send,
    ) -> Backend {
        let store = store::open(url, path).await.unwrap();
        assert_eq!(store.backend(), backend);
        Backend {
            store,
            _keep: Box::new(keep),
        }
    }

    pub async fn memory() -> Backend {
        open("memory://", None, "memory", ()).await
    }

    pub async fn sqlite_file() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latch.db");
        open("sqlite://ignored.db", Some(&path), "sqlite", dir).await
    }

    pub async fn redis_single() -> Backend {
        let server = RedisServer::new();
        open(&server.url(), None, "redis", server).await
    }

    pub async fn redis_cluster() -> Backend {
        let cluster = RedisCluster::new();
        open(&cluster.url(), None, "redis-cluster", cluster).await
    }

    pub async fn redis_sentinel() -> Backend {
        let sentinel = RedisSentinel::new();
        open(&sentinel.url(), None, "redis-sentinel", sentinel).await
    }
}

/// The file outlives the store: data survives a reopen, and the path may come from the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.db");
    let store = store::open("sqlite://ignored.db", Some(&path))
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    store.put("persisted", b"yes", None).await.unwrap();
    drop(store);
    assert!(path.exists());

    let url = format!("sqlite://{}", path.display());
    let store = store::open(&url, None).await.unwrap();
    assert_eq!(
        store.get("persisted").await.unwrap().as_deref(),
        Some(&b"yes"[..])
    );
}

/// Keys land on every master, and the listing finds them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_spreads_keys_over_every_master() {
    let cluster = RedisCluster::new();
    let store = store::open(&cluster.url(), None).await.unwrap();
    assert_eq!(store.backend(), "redis-cluster");
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

/// The store on `url` has written a key; `switch(false)` takes Redis away: `fast` calls
/// fail fast with Unavailable and then every call does, twice over; `switch(true)` brings
/// it back, and the same store recovers within `limit`.
async fn outage_and_recovery(
    url: &str,
    fast: usize,
    mut switch: impl FnMut(bool),
    limit: Duration,
    label: &str,
) {
    let store = store::open(url, None).await.unwrap();
    store.put("before", b"1", None).await.unwrap();

    switch(false);
    for _ in 0..fast {
        assert_fails_fast(&*store).await;
    }
    assert_down(&*store, 2).await;

    switch(true);
    assert_recovers(&*store, limit, label).await;
}

/// Redis goes away: calls fail fast with Unavailable; it comes back: the same store recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_and_recovery() {
    let mut server = RedisServer::new();
    let url = server.url();
    let switch = |up| if up { server.start() } else { server.stop() };
    outage_and_recovery(&url, 3, switch, Duration::from_secs(5), "redis").await;
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
    let url = s.url();
    let switch = |up| {
        if up {
            s.master.start()
        } else {
            s.master.stop()
        }
    };
    outage_and_recovery(&url, 1, switch, Duration::from_secs(5), "sentinel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_outage_and_recovery() {
    let mut cluster = RedisCluster::new();
    let url = cluster.url();
    let switch = |up| {
        for n in &mut cluster.nodes {
            if up {
                n.start()
            } else {
                n.stop()
            }
        }
    };
    outage_and_recovery(&url, 1, switch, Duration::from_secs(10), "cluster").await;
}

/// `open()` of `url` while nothing listens succeeds; the store reports Unavailable, within
/// 3 s.
async fn open_while_down(url: &str) -> Arc<dyn Store> {
    let t = Instant::now();
    let store = store::open(url, None).await.expect("open with Redis down");
    assert_unavailable("ping", store.ping().await);
    assert_unavailable("get", store.get("k").await);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{url}: took {:?}",
        t.elapsed()
    );
    store
}

/// `open()` succeeds with Redis down; the store reports Unavailable, then works once it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_at_open() {
    let port = free_port(false);
    let store = open_while_down(&format!("redis://127.0.0.1:{port}")).await;

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
        open_while_down(&url).await;
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
