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
    /// record back (revocation wins).
    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Deletes the key only if it holds exactly `expected`, in one step (compare-and-delete,
    /// for lock release); true if deleted.
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;
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

/// The URL with any password replaced by `***`, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{scheme}://{shown}@{hosts}{tail}")
        }
        None => url.to_string(),
    }
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
