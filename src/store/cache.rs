//! Session records kept in this process, in front of a shared store, so `/session` and
//! `/verify` can answer without a store round trip while revocation stays immediate on every
//! instance. The cache is kept exact by the store's own change notifications, a [`Feed`]
//! (Redis's client-side-caching invalidations, `redis/tracking.rs`).
//!
//! Why it cannot serve a session that was ended:
//! * It answers only while its feed is attached and has heard from the store within
//!   [`LIVENESS`]; otherwise every read goes to the store, and the entries are dropped
//!   whenever the feed is lost or replaced.
//! * Every hit first applies whatever the feed has already received (a non-blocking read of
//!   its socket). Redis sends an invalidation in the same pass of its event loop as the
//!   answer to the write that caused it, so one that reached this machine before the
//!   request did is applied before the request is answered.
//! * A store answer is kept only if no invalidation arrived (and the feed did not change)
//!   between sending the read and keeping the answer (the `generation`). A reply that was
//!   already stale when it arrived, because the key changed after Redis read it and the
//!   invalidation overtook the reply, is therefore never kept.
//! * This instance's own writes to a cached key drop it when they complete, so a revocation
//!   on this instance never relies on the round trip of its own invalidation.
//!
//! Only keys under one prefix (`session:`) are cached; everything else passes through.
use super::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How recently the feed must have heard from the store for the cache to answer. The feed
/// pings every [`PING_EVERY`]; a feed that goes quiet (a silent network partition) stops the
/// cache after this long at most.
pub const LIVENESS: Duration = Duration::from_millis(1000);
/// How often the feed's owner asks the store for a sign of life.
pub const PING_EVERY: Duration = Duration::from_millis(250);

/// A source of invalidations for the cached keys.
pub trait Feed: Send {
    /// Applies everything received so far, without waiting: `invalidated(Some(key))` for
    /// each key that changed, `invalidated(None)` for "everything may have changed" (a
    /// flush). `Err`: the feed is broken and must be replaced (its reason, for the log).
    fn drain(&mut self, invalidated: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), String>;
    /// When the feed last received anything from the store.
    fn heard_at(&self) -> Instant;
}

/// The cache shared by the [`CachedStore`] and the task that keeps its feed attached.
pub struct SessionCache {
    prefix: &'static str,
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    entries: HashMap<String, Vec<u8>>,
    /// Moves on at every invalidation and feed change: a read whose answer arrives in a
    /// later generation than it was sent in is not kept.
    generation: u64,
    feed: Option<Box<dyn Feed>>,
}

/// What a read finds in the cache.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    Hit(Vec<u8>),
    /// Not cached: read the store, then offer the answer with [`SessionCache::keep`].
    Miss(u64),
    /// The cache is not answering (no live feed).
    Off,
}

impl SessionCache {
    /// A cache of at most `capacity` records of keys under `prefix`, off until a feed is
    /// attached.
    pub fn new(prefix: &'static str, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            prefix,
            capacity,
            state: Mutex::new(State {
                entries: HashMap::new(),
                generation: 0,
                feed: None,
            }),
        })
    }

    pub fn caches(&self, key: &str) -> bool {
        key.starts_with(self.prefix)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than dropping it: start again from empty and unattached.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.forget_all();
            state.feed = None;
            state
        })
    }

    /// Starts answering from `feed` (after a connection or reconnection): nothing read
    /// before it is kept.
    pub fn attach(&self, feed: Box<dyn Feed>) {
        let mut state = self.lock();
        state.forget_all();
        state.feed = Some(feed);
    }

    /// Stops answering (the feed is lost) until a new feed is attached.
    pub fn detach(&self) {
        let mut state = self.lock();
        state.forget_all();
        state.feed = None;
    }

    /// Is a feed attached (live or not)?
    pub fn is_attached(&self) -> bool {
        self.lock().feed.is_some()
    }

    /// Applies what the feed has received; false if there is no live feed any more.
    pub fn poll(&self) -> bool {
        self.lock().sync(Instant::now())
    }

    pub fn lookup(&self, key: &str) -> Lookup {
        let mut state = self.lock();
        if !state.sync(Instant::now()) {
            return Lookup::Off;
        }
        match state.entries.get(key) {
            Some(value) => Lookup::Hit(value.clone()),
            None => Lookup::Miss(state.generation),
        }
    }

    /// Keeps the store's answer for `key`, read in `generation`, unless anything was
    /// invalidated since. When full, the cache starts again from empty: simple, and the
    /// working set fills it again at the cost of one store read per record.
    pub fn keep(&self, key: &str, value: &[u8], generation: u64) {
        let mut state = self.lock();
        if !state.sync(Instant::now()) || state.generation != generation {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(key) {
            state.entries.clear();
        }
        state.entries.insert(key.to_string(), value.to_vec());
    }

    /// Drops `key` (this instance wrote it).
    pub fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.entries.remove(key);
        state.generation += 1;
    }

    /// How many records are cached now (tests, metrics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    fn forget_all(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }

    /// Applies the feed's invalidations; true if the cache may answer.
    fn sync(&mut self, now: Instant) -> bool {
        let Some(feed) = self.feed.as_mut() else {
            return false;
        };
        let (entries, generation) = (&mut self.entries, &mut self.generation);
        let drained = feed.drain(&mut |key| {
            *generation += 1;
            match key.and_then(|k| std::str::from_utf8(k).ok()) {
                Some(key) => drop(entries.remove(key)),
                // A flush, or a key that is not UTF-8 (no key latch writes): drop everything.
                None => entries.clear(),
            }
        });
        if let Err(reason) = drained {
            tracing::warn!(%reason, "session cache: invalidation feed lost; reading the store until it is back");
            self.forget_all();
            self.feed = None;
            return false;
        }
        now.saturating_duration_since(feed.heard_at()) < LIVENESS
    }
}

/// A [`Store`] that answers `get` of cached keys from a [`SessionCache`].
pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: Arc<SessionCache>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, cache: Arc<SessionCache>) -> Self {
        Self { inner, cache }
    }

    /// Runs a write, then drops the key from the cache whatever the write answered (a write
    /// that timed out may still have been applied).
    async fn wrote<T>(&self, key: &str, write: impl std::future::Future<Output = T>) -> T {
        let result = write.await;
        if self.cache.caches(key) {
            self.cache.forget(key);
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for CachedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.cache.caches(key) {
            return self.inner.get(key).await;
        }
        let generation = match self.cache.lookup(key) {
            Lookup::Hit(value) => return Ok(Some(value)),
            Lookup::Miss(generation) => generation,
            Lookup::Off => return self.inner.get(key).await,
        };
        let value = self.inner.get(key).await?;
        if let Some(value) = &value {
            self.cache.keep(key, value, generation);
        }
        Ok(value)
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.wrote(key, self.inner.put(key, value, ttl)).await
    }
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.wrote(key, self.inner.put_new(key, value, ttl)).await
    }
    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.wrote(key, self.inner.put_existing(key, value, ttl))
            .await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.wrote(key, self.inner.delete_if(key, expected)).await
    }
    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        self.inner.rate_limit(key, interval, tolerance).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.wrote(key, self.inner.take(key)).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.wrote(key, self.inner.delete(key)).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.wrote(key, self.inner.expire(key, ttl)).await
    }
    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.wrote(key, self.inner.set_add(key, member, ttl)).await
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.wrote(key, self.inner.set_remove(key, member)).await
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.inner.set_members(key).await
    }
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.keys_with_prefix(prefix).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A feed the test controls: invalidations to hand out, a time heard, a failure.
    #[derive(Clone, Default)]
    struct Script(Arc<Mutex<ScriptState>>);

    #[derive(Default)]
    struct ScriptState {
        pending: VecDeque<Option<Vec<u8>>>,
        heard_at: Option<Instant>,
        broken: bool,
    }

    impl Script {
        fn invalidate(&self, key: Option<&str>) {
            let mut s = self.0.lock().unwrap();
            s.pending.push_back(key.map(|k| k.as_bytes().to_vec()));
        }
        fn heard(&self, at: Instant) {
            self.0.lock().unwrap().heard_at = Some(at);
        }
        fn feed(&self) -> Box<dyn Feed> {
            self.heard(Instant::now());
            Box::new(self.clone())
        }
    }

    impl Feed for Script {
        fn drain(&mut self, invalidated: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), String> {
            let mut s = self.0.lock().unwrap();
            if s.broken {
                return Err("broken".into());
            }
            while let Some(key) = s.pending.pop_front() {
                invalidated(key.as_deref());
            }
            Ok(())
        }
        fn heard_at(&self) -> Instant {
            self.0.lock().unwrap().heard_at.unwrap()
        }
    }

    async fn setup(capacity: usize) -> (CachedStore, Arc<SessionCache>, Script, Arc<dyn Store>) {
        let inner = crate::store::open("memory://", None).await.unwrap();
        let cache = SessionCache::new("session:", capacity);
        let script = Script::default();
        cache.attach(script.feed());
        (
            CachedStore::new(inner.clone(), cache.clone()),
            cache,
            script,
            inner,
        )
    }

    #[tokio::test]
    async fn a_second_read_is_answered_from_memory_until_invalidated() {
        let (store, cache, script, inner) = setup(10).await;
        store.put("session:a", b"one", None).await.unwrap();
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"one");
        // Changed behind the cache's back: still the cached value, until the feed says so.
        inner.put("session:a", b"two", None).await.unwrap();
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"one");
        script.invalidate(Some("session:a"));
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"two");
        inner.delete("session:a").await.unwrap();
        script.invalidate(Some("session:a"));
        assert_eq!(store.get("session:a").await.unwrap(), None);
        assert!(cache.is_empty(), "absence is not cached");
    }

    #[tokio::test]
    async fn only_the_prefix_is_cached() {
        let (store, cache, _script, inner) = setup(10).await;
        store.put("user:a", b"one", None).await.unwrap();
        store.get("user:a").await.unwrap();
        inner.put("user:a", b"two", None).await.unwrap();
        assert_eq!(store.get("user:a").await.unwrap().unwrap(), b"two");
        // `session_id_token:` shares the word, not the prefix.
        store.put("session_id_token:a", b"t", None).await.unwrap();
        store.get("session_id_token:a").await.unwrap();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn own_writes_drop_the_key_at_once() {
        let (store, _cache, _script, _inner) = setup(10).await;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        assert!(store.take("session:a").await.unwrap().is_some());
        assert_eq!(store.get("session:a").await.unwrap(), None);
        store.put("session:b", b"one", None).await.unwrap();
        store.get("session:b").await.unwrap();
        store.put_existing("session:b", b"two", None).await.unwrap();
        assert_eq!(store.get("session:b").await.unwrap().unwrap(), b"two");
        store.delete("session:b").await.unwrap();
        assert_eq!(store.get("session:b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_answer_overtaken_by_an_invalidation_is_not_kept() {
        let (_store, cache, script, _inner) = setup(10).await;
        let Lookup::Miss(generation) = cache.lookup("session:a") else {
            panic!("expected a miss");
        };
        // The read's answer is on its way; the key changes and the invalidation lands first.
        script.invalidate(Some("session:a"));
        cache.keep("session:a", b"stale", generation);
        assert_eq!(cache.lookup("session:a"), Lookup::Miss(generation + 1));
        // The same, with this instance's own write in between.
        cache.forget("session:a");
        cache.keep("session:a", b"stale", generation + 1);
        assert!(cache.is_empty());
        // Any invalidation in between counts, even of another key: simpler, and still exact.
        cache.keep("session:a", b"fresh", generation + 2);
        assert_eq!(cache.lookup("session:a"), Lookup::Hit(b"fresh".to_vec()));
    }

    #[tokio::test]
    async fn a_flush_drops_everything() {
        let (store, cache, script, _inner) = setup(10).await;
        for k in ["session:a", "session:b"] {
            store.put(k, b"v", None).await.unwrap();
            store.get(k).await.unwrap();
        }
        assert_eq!(cache.len(), 2);
        script.invalidate(None);
        cache.poll();
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn a_quiet_feed_stops_the_cache_and_a_broken_one_detaches() {
        let (store, cache, script, inner) = setup(10).await;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        inner.put("session:a", b"two", None).await.unwrap();
        // Not heard from for longer than LIVENESS: the store is read, nothing is kept.
        script.heard(Instant::now() - LIVENESS);
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"two");
        assert_eq!(cache.lookup("session:a"), Lookup::Off);
        assert!(!cache.poll());
        script.heard(Instant::now());
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"one");

        script.0.lock().unwrap().broken = true;
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"two");
        assert!(cache.is_empty());
        assert!(!cache.poll(), "detached");
        // A new feed starts from empty.
        let fresh = Script::default();
        cache.attach(fresh.feed());
        assert_eq!(
            cache.lookup("session:a"),
            Lookup::Miss(cache_generation(&cache))
        );
    }

    fn cache_generation(cache: &SessionCache) -> u64 {
        cache.lock().generation
    }

    #[tokio::test]
    async fn a_full_cache_starts_again() {
        let (store, cache, _script, _inner) = setup(2).await;
        for k in ["session:a", "session:b", "session:c"] {
            store.put(k, b"v", None).await.unwrap();
            store.get(k).await.unwrap();
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.lookup("session:c"), Lookup::Hit(b"v".to_vec()));
    }

    #[tokio::test]
    async fn without_a_feed_nothing_is_cached() {
        let inner = crate::store::open("memory://", None).await.unwrap();
        let cache = SessionCache::new("session:", 10);
        let store = CachedStore::new(inner.clone(), cache.clone());
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        assert!(cache.is_empty());
    }
}
