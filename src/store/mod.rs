//! Storage: one trait, Redis / embedded SQLite / memory backends.
//!
//! Every record is a key (an arbitrary UTF-8 string such as `session:<hash>`) mapped either to
//! a byte value or to an unordered set of strings, optionally with a time to live. Expired
//! records are never returned by any method, whether or not a background sweep has removed
//! them yet.
//!
//! [`open`] picks the backend from the URL scheme:
//!
//! | URL | backend |
//! |---|---|
//! | `redis://[user:pass@]host:port[/db]`, `rediss://...` | one Redis node ([`redis::aio::ConnectionManager`]) |
//! | `redis+sentinel://[user:pass@]host:port[,host:port...]/<service_name>[/db]` | the master of a Sentinel-managed group |
//! | `redis+cluster://[user:pass@]host:port[,host:port...]`, `rediss+cluster://...` | Redis Cluster |
//! | `sqlite://<path>` | embedded SQLite file |
//! | `memory://` | SQLite in memory (lost on exit; for tests and trials) |
//!
//! Redis backends never fail to open because Redis is down: they connect lazily and report
//! [`StoreError::Unavailable`] until Redis answers, so latch can start and say 503 on `/readyz`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod cache;
pub mod keys;
mod metered;
mod redis;
mod sqlite;

pub use self::metered::metered;
pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// An error from a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connection refused, timeout, I/O: the store cannot be reached now (callers answer 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else reported by the backend.
    #[error("store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True for [`StoreError::Unavailable`].
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A key-value store with expiry and string sets.
///
/// A key holds either a value or a set. Using a set key with value methods (or the reverse)
/// is a caller error: Redis answers [`StoreError::Backend`] (`WRONGTYPE`), while SQLite lets
/// `put`/`set_add` replace the other kind. `delete`, `expire` and `keys_with_prefix` cover both.
///
/// Durations are kept to the millisecond; a zero TTL counts as 1 ms.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"redis"`, `"redis-sentinel"`, `"redis-cluster"`, `"sqlite"` or `"memory"`.
    fn backend(&self) -> &'static str;
    /// The value of a live key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes (or overwrites) a value; `ttl` of `None` means no expiry.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Writes only if the key is absent (`SET NX`); true if written.
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Overwrites a value only if the key still holds a live value (`SET XX`); true if
    /// written. Extensions use this so a write that raced with a delete never brings the
    /// record back (revocation wins). `ttl` of `None` means no expiry, as for `put`.
    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Deletes the key only if it holds exactly `expected`, in one step (compare-and-delete,
    /// for lock release); true if deleted.
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;
    /// One request against a rate kept at `key` (GCRA: one request per `interval`, bursts of
    /// up to `tolerance / interval + 1`), atomically and on the store's clock, so every
    /// instance sharing the store counts against one limit. `None`: allowed (and counted);
    /// `Some(wait)`: refused until `wait` has passed (not counted).
    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, StoreError>;
    /// Atomic read-and-delete: of two concurrent takes, at most one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes a key (value or set); true if a live key was deleted.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Sets the time to live of an existing key (value or set); true if the key exists.
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Adds a member to the set at `key`; `ttl` (if `Some`) applies to the whole set and is
    /// refreshed on each add; `None` leaves the set's current expiry as it is.
    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// Removes a member from the set at `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// The members of the set at `key` (empty if none), in no particular order.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// The live keys that start with `prefix`, in no particular order (admin listing).
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url` (see the module documentation for the schemes).
///
/// `sqlite_path`, if given, is the already resolved database path for `sqlite://` URLs;
/// otherwise the path is what follows `sqlite://`. It is ignored for other schemes.
///
/// Redis URLs are only parsed here: no connection is made, so this succeeds while Redis is
/// down and the store reports [`StoreError::Unavailable`] until it comes up.
pub async fn open(url: &str, sqlite_path: Option<&Path>) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "rediss" | "redis+sentinel" | "redis+cluster" | "rediss+cluster") => {
            Ok(Arc::new(RedisStore::open(url)?))
        }
        Some("sqlite") => {
            let path = match sqlite_path {
                Some(p) => p.to_path_buf(),
                None => sqlite_path_from_url(url)?,
            };
            Ok(Arc::new(SqliteStore::open_file(&path).await?))
        }
        Some("memory") => Ok(Arc::new(SqliteStore::open_memory().await?)),
        _ => Err(StoreError::Backend(format!(
            "unsupported store URL scheme in {:?}; expected redis://, rediss://, \
             redis+sentinel://, redis+cluster://, sqlite:// or memory://",
            redact_url(url)
        ))),
    }
}

/// Opens the store as [`open`] does, with the session cache ([`cache`]) of at most
/// `session_cache` records in front of it where the store can keep it exact: a plain
/// `redis://` node or a Sentinel group's master, whose invalidations reach every instance. SQLite has no such feed (the
/// admin CLI writes the file from another process), and is read in-process anyway.
pub async fn open_for_server(
    url: &str,
    sqlite_path: Option<&Path>,
    session_cache: usize,
) -> Result<Arc<dyn Store>, StoreError> {
    if session_cache == 0 || !url.trim().to_ascii_lowercase().starts_with("redis") {
        return open(url, sqlite_path).await;
    }
    let redis = RedisStore::open(url.trim())?;
    let route = redis.route();
    let store: Arc<dyn Store> = Arc::new(redis);
    match self::redis::tracking::target(url.trim(), route) {
        Ok(target) => {
            let cache = cache::SessionCache::new(keys::SESSION_PREFIX, session_cache);
            self::redis::tracking::start(target, &cache);
            tracing::info!(
                records = session_cache,
                "session cache on: sessions are answered from memory while Redis's invalidations arrive"
            );
            Ok(Arc::new(cache::CachedStore::new(store, cache)))
        }
        Err(why) => {
            tracing::info!(why, "session cache off");
            Ok(store)
        }
    }
}

/// The file path of a `sqlite://<path>` URL (`sqlite://latch.db`, `sqlite:///var/lib/latch.db`).
fn sqlite_path_from_url(url: &str) -> Result<PathBuf, StoreError> {
    let rest = &url["sqlite://".len()..];
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    if rest.is_empty() {
        return Err(StoreError::Backend(
            "sqlite:// URL has no path (e.g. sqlite://latch.db)".into(),
        ));
    }
    Ok(PathBuf::from(rest))
}

/// Checks a `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` or
/// `rediss+cluster://` URL with the parser [`open`] uses, without connecting. The message
/// shows the URL only with its password hidden.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    self::redis::check_url(url.trim()).map_err(|e| match e {
        StoreError::Backend(m) | StoreError::Unavailable(m) => m,
    })
}

/// The URL with any password replaced by `***`, for messages and logs. Works on any text,
/// valid URL or not: everything before the last `@` is user info, and all of it after the
/// first `:` is hidden (all of it when there is no `:`, since `redis://secret@host` is a
/// password to Redis); `pass`/`password` query values are hidden too. When in doubt it hides
/// more, never less.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_string(),
            };
            format!("{shown}@{}", redact_query(after))
        }
        None => redact_query(rest),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

/// `...?pass=x&password=y` -> `...?pass=***&password=***`.
fn redact_query(s: &str) -> String {
    let Some((head, query)) = s.split_once('?') else {
        return s.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
            {
                format!("{k}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// Milliseconds of a TTL, at least 1 (a zero TTL would otherwise be "no expiry" or an error).
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:1/0"),
            "redis://u:***@h:1/0".to_string()
        );
        assert_eq!(redact_url("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        // Multi-host forms, with and without a user name.
        assert_eq!(
            redact_url("redis+sentinel://u:pw@h1:1,h2:2/mymaster/3"),
            "redis+sentinel://u:***@h1:1,h2:2/mymaster/3"
        );
        assert_eq!(
            redact_url("rediss+cluster://:pw@h1:1,h2:2"),
            "rediss+cluster://:***@h1:1,h2:2"
        );
    }

    #[test]
    fn redacts_passwords_of_unparseable_urls() {
        // A password holding '/', '@', '#' or '?', a bad port, no scheme: never shown.
        for (url, secret) in [
            ("redis://u:pa/ss@h:1", "pa/ss"),
            ("redis://u:p@ss@h:1/0", "p@ss"),
            ("redis+cluster://:p#w?x@h:notaport", "p#w"),
            ("redis+sentinel://u:hunter2@h:x,,/", "hunter2"),
            ("u:hunter2@h:6379", "hunter2"),
            ("redis://hunter2@h", "hunter2"),
            ("redis://h:1/?password=hunter2&x=1", "hunter2"),
            ("redis://:hunter2@", "hunter2"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
            assert!(shown.contains("***"), "{url} -> {shown}");
        }
        assert_eq!(redact_url("u:hunter2@h:6379"), "u:***@h:6379");
    }

    #[test]
    fn redis_urls_are_checked_by_the_store_parser() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://:pw@redis.example.com:6380",
            "redis+sentinel://u:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster",
            "redis+sentinel://127.0.0.1:26379,[::1]:26380/mymaster/2",
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
            "rediss+cluster://u:pw@127.0.0.1:7000,127.0.0.1:7001",
        ] {
            assert_eq!(check_redis_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("redis+sentinel://u:hunter2@127.0.0.1:26379", "service name"),
            ("redis+sentinel://127.0.0.1:x/mymaster", "bad port"),
            ("redis+sentinel://h:1/mymaster/zero", "bad db"),
            ("redis+cluster://:hunter2@h:1,h:notaport", "bad port"),
            ("redis+cluster://h:1/3", "no path"),
            ("redis+cluster://", "no host"),
            ("redis://:hunter2@0.0.0.0:6379", "wildcard"),
        ] {
            let e = check_redis_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path_from_url("sqlite://latch.db").unwrap(),
            PathBuf::from("latch.db")
        );
        assert_eq!(
            sqlite_path_from_url("sqlite:///var/lib/x.db").unwrap(),
            PathBuf::from("/var/lib/x.db")
        );
        assert!(sqlite_path_from_url("sqlite://").is_err());
    }
}
