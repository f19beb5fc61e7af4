//! Session records kept in this process, in front of a shared store, so `/session` and
//! `/verify` can answer without reading the record again while revocation stays immediate
//! on every instance. The cache is kept exact by the store's own change notifications, a
//! [`Feed`] (Redis's client-side-caching invalidations on a connection of their own,
//! `redis/tracking.rs`).
//!
//! Why it cannot serve a session that was ended before the request arrived:
//! * **The fence.** A record found in memory is answered only after the feed has answered a
//!   probe (on Redis `ROLE`, which must say `master`) sent after the lookup. Redis answers a
//!   connection in order, and queues a write's invalidations on the feed's connection at the
//!   end of the event-loop pass that ran the write, before it writes out that pass's answers;
//!   a probe sent after the write's answer arrived is run in a later pass. So once the
//!   probe's answer is read, every invalidation for a write that had answered when the
//!   request arrived has been read and applied, whatever the network did to the two
//!   connections' packets. Hits waiting at the
//!   same time share one probe, so a probe costs one round trip per batch of hits, not per
//!   request. No answer within [`FENCE_TIMEOUT`]: the record is read from the store. That
//!   timeout is kept by the feed's task for each probe ([`SessionCache::give_up_late_probes`],
//!   every [`LATE_PROBE_CHECK`]), not by a timer per hit: a timer per request was a
//!   measurable share of one.
//! * A store answer is kept only if no invalidation arrived (and the feed did not change)
//!   between sending the read and keeping the answer (the `generation`), so a reply that an
//!   invalidation overtook is never kept.
//! * The cache answers only while its feed is attached and has heard from the store within
//!   [`LIVENESS`]; the entries are dropped whenever the feed is lost or replaced.
//! * This instance's own writes to a cached key drop it when they complete (or are
//!   cancelled), so its own reads see them without waiting for the invalidation.
//!
//! Only keys under one prefix (`session:`) are cached; everything else passes through.
use super::{Store, StoreError};
use crate::telemetry::{session_cache_read, CacheRead};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How recently the feed must have heard from the store for the cache to answer.
pub const LIVENESS: Duration = Duration::from_millis(1000);
/// How often the feed's owner checks that the store answers (and is still the master).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);
/// How long a probe may go unanswered before the hits waiting on it read the store instead.
/// Counted from the probe's sending, give or take [`LATE_PROBE_CHECK`]: a hit that arrives
/// while a probe is in flight waits for the next one, which goes out when that one is
/// answered, so a hit can wait up to about twice this.
pub const FENCE_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the feed's task gives up on probes older than [`FENCE_TIMEOUT`].
pub const LATE_PROBE_CHECK: Duration = Duration::from_millis(50);
/// Probes without an answer beyond which the feed counts as stuck.
const MAX_OUTSTANDING: u64 = 10_000;

/// What a feed reports, in the order the store sent it.
pub enum Event<'a> {
    /// `Some(key)` changed, or `None`: anything may have changed (a flush).
    Invalidated(Option<&'a [u8]>),
    /// The answer to a probe, in order: the oldest not yet answered. The feed reports every
    /// answer it reads; the cache checks that a probe was sent for it.
    Answered,
}

/// A source of invalidations for the cached keys, on one ordered connection.
pub trait Feed: Send {
    /// Reports everything received so far, without waiting. `Err`: the feed is broken and
    /// must be replaced (its reason, for the log).
    fn drain(&mut self, event: &mut dyn FnMut(Event<'_>)) -> Result<(), String>;
    /// Sends a probe, for a fence or as the heartbeat alike; its answer comes back as
    /// [`Event::Answered`], in order, and must also show that the store is still the one
    /// writes go to (the feed checks that).
    fn send_probe(&mut self) -> Result<(), String>;
    /// When the feed last received anything from the store.
    fn heard_at(&self) -> Instant;
    /// `Some(n)` while the store's reads go, over its connection number `n`, to the node
    /// this feed is on; `None` while they go elsewhere (a Sentinel store that has not yet
    /// followed a failover the feed followed, or the reverse): the cache then neither
    /// answers nor keeps. A store on one fixed node: always `Some(0)`.
    fn route(&self) -> Option<u64> {
        Some(0)
    }
}

/// The cache shared by the [`CachedStore`] and the task that keeps its feed attached.
pub struct SessionCache {
    prefix: &'static str,
    capacity: usize,
    state: Mutex<State>,
    /// How far the probes of the current feed have got, for hits waiting on a fence.
    progress: watch::Sender<Progress>,
}

/// Where the probes of feed `epoch` stand: probes `1..=answered` are answered, and those up
/// to `given_up` (when not answered) were not within [`FENCE_TIMEOUT`]; `given_up` may also
/// cover the next probe, not yet sent, that hits wait for behind a late one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Progress {
    epoch: u64,
    answered: u64,
    given_up: u64,
}

struct State {
    /// foldhash, not SipHash: the keys are store keys of live sessions (hashes of random
    /// ids), which a client cannot choose to collide, and SipHash was two lookups' worth
    /// of a cached request's instructions.
    entries: HashMap<String, Vec<u8>, foldhash::fast::RandomState>,
    /// Moves on at every invalidation and feed change: a read whose answer arrives in a
    /// later generation than it was sent in is not kept.
    generation: u64,
    feed: Option<Box<dyn Feed>>,
    /// Moves on at every attach and detach; probes are counted per epoch.
    epoch: u64,
    answered: u64,
    /// When each probe not yet answered was sent, oldest first (so `answered` plus its
    /// length is how many were sent, [`State::sent`]).
    sent_at: VecDeque<Instant>,
    /// Probes up to this one, when not answered, are late: their hits read the store.
    given_up: u64,
    /// The highest probe number a waiting hit needs.
    wanted: u64,
    /// The feed's [`Feed::route`] when last looked at.
    route: Option<u64>,
}

/// What a read finds in the cache.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// In memory: answer it once probe `need` of feed `epoch` is answered
    /// ([`SessionCache::fenced`], then [`SessionCache::confirm`]).
    Hit { epoch: u64, need: u64 },
    /// Not cached: read the store, then offer the answer with [`SessionCache::keep`].
    Miss(u64),
    /// The cache is not answering (no live feed).
    Off,
}

/// What a read finds once its fence is answered.
#[derive(Debug, PartialEq)]
pub enum Confirmed {
    Value(Vec<u8>),
    Miss(u64),
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
                entries: HashMap::default(),
                generation: 0,
                feed: None,
                epoch: 0,
                answered: 0,
                sent_at: VecDeque::new(),
                given_up: 0,
                wanted: 0,
                route: None,
            }),
            progress: watch::Sender::new(Progress::default()),
        })
    }

    pub fn caches(&self, key: &str) -> bool {
        key.starts_with(self.prefix)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                // A panic while the lock was held: start again from empty and unattached
                // (the feed's task reconnects), and carry on with an unpoisoned lock.
                tracing::error!(
                    "session cache: a panic while it was locked; starting again from empty"
                );
                let mut state = poisoned.into_inner();
                state.reset(None, &self.progress);
                self.state.clear_poison();
                state
            }
        }
    }

    /// Starts answering from `feed` (after a connection or reconnection): nothing read
    /// before it is kept.
    pub fn attach(&self, feed: Box<dyn Feed>) {
        self.lock().reset(Some(feed), &self.progress);
    }

    /// Stops answering (the feed is lost) until a new feed is attached.
    pub fn detach(&self) {
        self.lock().reset(None, &self.progress);
    }

    /// Is a feed attached (live or not)?
    pub fn is_attached(&self) -> bool {
        self.lock().feed.is_some()
    }

    /// Applies what the feed has received; false if there is no live feed any more.
    pub fn poll(&self) -> bool {
        self.lock().sync(Instant::now(), &self.progress)
    }

    /// The periodic check: applies what the feed received and sends a heartbeat probe;
    /// false if there is no live feed any more.
    pub fn heartbeat(&self) -> bool {
        let mut state = self.lock();
        state.sync(Instant::now(), &self.progress) && state.probe(&self.progress)
    }

    /// Gives up on the probes sent more than [`FENCE_TIMEOUT`] ago and not answered: the
    /// hits waiting on them read the store. The feed's task calls it every
    /// [`LATE_PROBE_CHECK`].
    pub fn give_up_late_probes(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let late = state
            .sent_at
            .iter()
            .take_while(|sent| now.saturating_duration_since(**sent) >= FENCE_TIMEOUT)
            .count() as u64;
        let mut given_up = state.answered + late;
        // Every probe sent is late: so is the next one hits wait for, which goes out only
        // once the late one is answered.
        if late > 0 && late == state.sent_at.len() as u64 {
            given_up = given_up.max(state.wanted);
        }
        if given_up > state.given_up {
            state.given_up = given_up;
            state.publish(&self.progress);
        }
    }

    pub fn lookup(&self, key: &str) -> Lookup {
        let mut state = self.lock();
        // No read of the feed here: the fence makes a hit exact, and the feed's task reads
        // what arrives (a `recv` per request was a measurable share of one).
        if !state.live(Instant::now()) {
            return Lookup::Off;
        }
        if !state.entries.contains_key(key) {
            return Lookup::Miss(state.generation);
        }
        // A probe sent from now on: the next one. Send it unless one is in flight, whose
        // answer then sends it (one probe in flight at a time serves every waiting hit).
        let need = state.sent() + 1;
        state.wanted = state.wanted.max(need);
        if state.sent_at.is_empty() && !state.probe(&self.progress) {
            return Lookup::Off;
        }
        Lookup::Hit {
            epoch: state.epoch,
            need,
        }
    }

    /// Waits until probe `need` of feed `epoch` is answered, or that feed is gone; false if
    /// it was given up on ([`FENCE_TIMEOUT`]). No timer of its own: every way a feed ends
    /// (lost, replaced, its task gone: `tracking::run`) starts a new epoch, which ends the
    /// wait, and a live feed's task gives late probes up.
    pub async fn fenced(&self, epoch: u64, need: u64) -> bool {
        let mut progress = self.progress.subscribe();
        let settled = progress
            .wait_for(|p| p.epoch != epoch || p.answered >= need || p.given_up >= need)
            .await
            .map(|p| *p);
        matches!(settled, Ok(p) if p.epoch != epoch || p.answered >= need)
    }

    /// The record for `key` once a fence of feed `epoch` is answered: whatever is in memory
    /// now is exact as of that answer.
    pub fn confirm(&self, key: &str, epoch: u64) -> Confirmed {
        let mut state = self.lock();
        if !state.live(Instant::now()) || state.epoch != epoch {
            return Confirmed::Off;
        }
        match state.entries.get(key) {
            Some(value) => Confirmed::Value(value.clone()),
            None => Confirmed::Miss(state.generation),
        }
    }

    /// Keeps the store's answer for `key`, read in `generation`, unless anything was
    /// invalidated since. When full, the cache starts again from empty: simple, and the
    /// working set fills it again at the cost of one store read per record.
    pub fn keep(&self, key: &str, value: &[u8], generation: u64) {
        let mut state = self.lock();
        // An invalidation already received but not yet read is safe to miss here: the
        // record is then dropped when it is read, which is before any fence answered later.
        if !state.live(Instant::now()) || state.generation != generation {
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

    /// How many records are cached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Empties the cache and starts a new epoch on `feed` (or none).
    fn reset(&mut self, feed: Option<Box<dyn Feed>>, progress: &watch::Sender<Progress>) {
        self.entries.clear();
        self.generation += 1;
        self.feed = feed;
        self.epoch += 1;
        (self.answered, self.given_up, self.wanted) = (0, 0, 0);
        self.sent_at.clear();
        // Hits waiting on the old feed stop waiting (and find the epoch changed).
        self.publish(progress);
        crate::telemetry::session_cache_feed_up(self.feed.is_some());
    }

    /// How many probes this feed has sent.
    fn sent(&self) -> u64 {
        self.answered + self.sent_at.len() as u64
    }

    fn publish(&self, progress: &watch::Sender<Progress>) {
        progress.send_replace(Progress {
            epoch: self.epoch,
            answered: self.answered,
            given_up: self.given_up,
        });
    }

    fn lost(&mut self, reason: &str, progress: &watch::Sender<Progress>) -> bool {
        tracing::warn!(%reason, "session cache: invalidation feed lost; reading the store until it is back");
        self.reset(None, progress);
        false
    }

    /// Sends a probe on the feed; false (and detached) if it could not be sent.
    fn probe(&mut self, progress: &watch::Sender<Progress>) -> bool {
        let Some(feed) = self.feed.as_mut() else {
            return false;
        };
        if self.sent_at.len() as u64 >= MAX_OUTSTANDING {
            return self.lost("probes are not answered", progress);
        }
        match feed.send_probe() {
            Ok(()) => {
                self.sent_at.push_back(Instant::now());
                true
            }
            Err(reason) => self.lost(&reason, progress),
        }
    }

    /// Is a feed attached, heard from recently, and on the node the store reads from?
    /// A change of the store's connection moves the generation on, so a read sent over
    /// another connection than the one current when it was looked up is never kept.
    fn live(&mut self, now: Instant) -> bool {
        let Some(feed) = self.feed.as_ref() else {
            return false;
        };
        let route = feed.route();
        if route != self.route {
            self.route = route;
            self.generation += 1;
        }
        self.heard(now) && route.is_some()
    }

    /// Is a feed attached and heard from recently (wherever the store reads)?
    fn heard(&self, now: Instant) -> bool {
        self.feed
            .as_ref()
            .is_some_and(|feed| now.saturating_duration_since(feed.heard_at()) < LIVENESS)
    }

    /// Applies the feed's events; true if the feed is live.
    fn sync(&mut self, now: Instant, progress: &watch::Sender<Progress>) -> bool {
        let Some(feed) = self.feed.as_mut() else {
            return false;
        };
        let (entries, generation, answered) =
            (&mut self.entries, &mut self.generation, &mut self.answered);
        let before = *answered;
        let drained = feed.drain(&mut |event| match event {
            Event::Invalidated(key) => {
                *generation += 1;
                match key.and_then(|k| std::str::from_utf8(k).ok()) {
                    Some(key) => drop(entries.remove(key)),
                    // A flush, or a key that is not UTF-8 (no key latch writes): drop all.
                    None => entries.clear(),
                }
            }
            Event::Answered => *answered += 1,
        });
        if let Err(reason) = drained {
            return self.lost(&reason, progress);
        }
        let newly = (self.answered - before) as usize;
        // The one place a stray answer is caught: the feed does not count probes itself.
        if newly > self.sent_at.len() {
            return self.lost("an answer to no probe", progress);
        }
        if newly > 0 {
            self.sent_at.drain(..newly);
            self.publish(progress);
            // Hits arrived while the last probe was in flight: their probe goes now.
            if self.wanted > self.sent() && self.sent_at.is_empty() && !self.probe(progress) {
                return false;
            }
        }
        // Not `live`: a store still reading another node turns answering off, not the feed.
        self.heard(now)
    }
}

/// A [`Store`] that answers `get` of cached keys from a [`SessionCache`].
pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: Arc<SessionCache>,
}

/// Drops a key from the cache when dropped: after a write completes, or if the request
/// doing it is cancelled midway (the write may still have reached the store).
struct ForgetOnDrop<'a> {
    cache: &'a SessionCache,
    key: &'a str,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if self.cache.caches(self.key) {
            self.cache.forget(self.key);
        }
    }
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, cache: Arc<SessionCache>) -> Self {
        Self { inner, cache }
    }

    /// Runs a write, then drops the key from the cache whatever the write answered (a write
    /// that timed out may still have been applied).
    async fn wrote<T>(&self, key: &str, write: impl std::future::Future<Output = T>) -> T {
        let _forget = ForgetOnDrop {
            cache: &self.cache,
            key,
        };
        write.await
    }

    /// Reads `key` from the store and keeps the answer if it is still current.
    async fn read_through(
        &self,
        key: &str,
        generation: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(key).await?;
        if let Some(value) = &value {
            self.cache.keep(key, value, generation);
        }
        Ok(value)
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
        // `Some(generation)`: read the store and keep the answer; `None`: just read it.
        let (read, generation) = match self.cache.lookup(key) {
            Lookup::Miss(generation) => (CacheRead::Miss, Some(generation)),
            Lookup::Off => (CacheRead::Off, None),
            Lookup::Hit { epoch, need } if !self.cache.fenced(epoch, need).await => {
                (CacheRead::FenceTimeout, None)
            }
            Lookup::Hit { epoch, .. } => match self.cache.confirm(key, epoch) {
                Confirmed::Value(value) => {
                    session_cache_read(CacheRead::Hit);
                    return Ok(Some(value));
                }
                Confirmed::Miss(generation) => (CacheRead::Miss, Some(generation)),
                Confirmed::Off => (CacheRead::Off, None),
            },
        };
        session_cache_read(read);
        match generation {
            Some(generation) => self.read_through(key, generation).await,
            None => self.inner.get(key).await,
        }
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
    use std::future::Future;
    use std::task::{Context, Poll};

    /// A feed the test controls: what it reports next, when it last heard, whether it
    /// answers probes by itself, and the probes sent.
    #[derive(Clone, Default)]
    struct Script(Arc<Mutex<ScriptState>>);

    #[derive(Default)]
    struct ScriptState {
        pending: VecDeque<Option<Option<Vec<u8>>>>,
        heard_at: Option<Instant>,
        broken: bool,
        manual: bool,
        probes: usize,
        /// What [`Feed::route`] answers (`None` here: the default, `Some(0)`).
        route: Option<Option<u64>>,
    }

    impl Script {
        fn invalidate(&self, key: Option<&str>) {
            let mut s = self.0.lock().unwrap();
            s.pending
                .push_back(Some(key.map(|k| k.as_bytes().to_vec())));
        }
        /// Queues the answer to the oldest unanswered probe.
        fn answer(&self) {
            self.0.lock().unwrap().pending.push_back(None);
        }
        fn heard(&self, at: Instant) {
            self.0.lock().unwrap().heard_at = Some(at);
        }
        fn probes(&self) -> usize {
            self.0.lock().unwrap().probes
        }
        fn feed(&self) -> Box<dyn Feed> {
            self.heard(Instant::now());
            Box::new(self.clone())
        }
    }

    impl Feed for Script {
        fn drain(&mut self, event: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
            let mut s = self.0.lock().unwrap();
            if s.broken {
                return Err("broken".into());
            }
            while let Some(next) = s.pending.pop_front() {
                match next {
                    Some(key) => event(Event::Invalidated(key.as_deref())),
                    None => event(Event::Answered),
                }
            }
            Ok(())
        }
        fn send_probe(&mut self) -> Result<(), String> {
            let mut s = self.0.lock().unwrap();
            s.probes += 1;
            if !s.manual {
                s.pending.push_back(None);
            }
            Ok(())
        }
        fn heard_at(&self) -> Instant {
            self.0.lock().unwrap().heard_at.unwrap()
        }
        fn route(&self) -> Option<u64> {
            self.0.lock().unwrap().route.unwrap_or(Some(0))
        }
    }

    /// What the feed's task does: reads the feed as its data arrives (here: every ms).
    fn pump(cache: &Arc<SessionCache>) {
        let cache = Arc::downgrade(cache);
        tokio::spawn(async move {
            while let Some(cache) = cache.upgrade() {
                cache.poll();
                cache.give_up_late_probes();
                drop(cache);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }

    async fn setup(capacity: usize) -> (CachedStore, Arc<SessionCache>, Script, Arc<dyn Store>) {
        let inner = crate::store::open("memory://", None).await.unwrap();
        let cache = SessionCache::new("session:", capacity);
        let script = Script::default();
        cache.attach(script.feed());
        pump(&cache);
        (
            CachedStore::new(inner.clone(), cache.clone()),
            cache,
            script,
            inner,
        )
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(std::task::Waker::noop()))
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
    async fn a_hit_waits_for_its_fence_and_what_arrived_before_the_answer_wins() {
        let (store, cache, script, inner) = setup(10).await;
        script.0.lock().unwrap().manual = true;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        let probes = script.probes();

        // In memory, but not answered before the fence: the revocation's invalidation may
        // still be on its way.
        let mut get = std::pin::pin!(store.get("session:a"));
        assert!(poll_once(get.as_mut()).is_pending());
        assert_eq!(script.probes(), probes + 1, "one probe sent");
        inner.delete("session:a").await.unwrap();
        script.invalidate(Some("session:a"));
        script.answer();
        // What the feed's task does when its socket becomes readable.
        cache.poll();
        let started = Instant::now();
        assert_eq!(
            get.await.unwrap(),
            None,
            "the invalidation before the answer counts"
        );
        assert!(
            started.elapsed() < FENCE_TIMEOUT,
            "answered by the fence, not its timeout"
        );
    }

    #[tokio::test]
    async fn hits_waiting_together_share_one_probe() {
        let (store, cache, script, _inner) = setup(10).await;
        script.0.lock().unwrap().manual = true;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        let probes = script.probes();

        let mut first = std::pin::pin!(store.get("session:a"));
        let mut second = std::pin::pin!(store.get("session:a"));
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(
            script.probes(),
            probes + 1,
            "the second hit joined the probe in flight"
        );
        // The second arrived after that probe was sent, so it needs the next one, which the
        // answer sends.
        script.answer();
        cache.poll();
        let started = Instant::now();
        assert_eq!(first.await.unwrap().unwrap(), b"one");
        assert!(started.elapsed() < FENCE_TIMEOUT);
        assert_eq!(script.probes(), probes + 2);
        assert!(poll_once(second.as_mut()).is_pending());
        script.answer();
        cache.poll();
        let started = Instant::now();
        assert_eq!(second.await.unwrap().unwrap(), b"one");
        assert!(
            started.elapsed() < FENCE_TIMEOUT,
            "answered by the fence, not its timeout"
        );
    }

    #[tokio::test]
    async fn an_unanswered_fence_reads_the_store() {
        let (store, _cache, script, inner) = setup(10).await;
        script.0.lock().unwrap().manual = true;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        inner.put("session:a", b"two", None).await.unwrap();
        let started = Instant::now();
        let read = tokio::time::timeout(2 * LIVENESS, store.get("session:a"))
            .await
            .expect("the late fence was given up");
        assert_eq!(read.unwrap().unwrap(), b"two");
        assert!(started.elapsed() >= FENCE_TIMEOUT);
    }

    /// Probes answered at once, for longer than a fence may wait: every hit is still
    /// answered from memory (answered probes are not counted as late later).
    #[tokio::test]
    async fn answered_probes_never_turn_late() {
        let (store, cache, _script, inner) = setup(10).await;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        inner.put("session:a", b"two", None).await.unwrap();
        let started = Instant::now();
        while started.elapsed() < 2 * FENCE_TIMEOUT {
            assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"one");
            cache.give_up_late_probes();
        }
    }

    /// A hit that waits for the probe after the one in flight is let go with the one in
    /// flight when that one is late (not only when the feed is declared dead, after
    /// `LIVENESS`).
    #[tokio::test]
    async fn hits_behind_a_late_probe_read_the_store_too() {
        let (store, _cache, script, inner) = setup(10).await;
        script.0.lock().unwrap().manual = true;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        inner.put("session:a", b"two", None).await.unwrap();
        let mut first = std::pin::pin!(store.get("session:a"));
        assert!(poll_once(first.as_mut()).is_pending());
        let started = Instant::now();
        let both = async { tokio::join!(first, store.get("session:a")) };
        let (first, second) = tokio::time::timeout(2 * LIVENESS, both)
            .await
            .expect("the hits behind the late probe were let go");
        assert_eq!(first.unwrap().unwrap(), b"two");
        assert_eq!(second.unwrap().unwrap(), b"two");
        assert!(started.elapsed() < LIVENESS, "{:?}", started.elapsed());
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
    async fn own_writes_drop_the_key_when_they_complete_or_are_cancelled() {
        let (store, cache, _script, _inner) = setup(10).await;
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

        // A write whose request is dropped midway: one that has not answered when the
        // request goes (a store write that never answers, so the test does not race one).
        store.put("session:c", b"one", None).await.unwrap();
        store.get("session:c").await.unwrap();
        assert_eq!(cache.len(), 1);
        {
            let never = std::future::pending::<Result<bool, StoreError>>();
            let mut delete = std::pin::pin!(store.wrote("session:c", never));
            assert!(poll_once(delete.as_mut()).is_pending());
            assert_eq!(cache.len(), 1);
        }
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn an_answer_overtaken_by_an_invalidation_is_not_kept() {
        let (_store, cache, script, _inner) = setup(10).await;
        let Lookup::Miss(generation) = cache.lookup("session:a") else {
            panic!("expected a miss");
        };
        // The read's answer is on its way; the key changes and the invalidation is read first.
        script.invalidate(Some("session:a"));
        cache.poll();
        cache.keep("session:a", b"stale", generation);
        assert_eq!(cache.lookup("session:a"), Lookup::Miss(generation + 1));
        // The same, with this instance's own write in between.
        cache.forget("session:a");
        cache.keep("session:a", b"stale", generation + 1);
        assert!(cache.is_empty());
        // Any invalidation in between counts, even of another key: simpler, and still exact.
        cache.keep("session:a", b"fresh", generation + 2);
        assert!(matches!(cache.lookup("session:a"), Lookup::Hit { .. }));
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
        assert!(matches!(cache.lookup("session:a"), Lookup::Miss(_)));
    }

    #[test]
    fn an_answer_to_no_probe_breaks_the_feed() {
        // No pump: this test alone reads the feed.
        let cache = SessionCache::new("session:", 10);
        let script = Script::default();
        cache.attach(script.feed());
        assert!(
            cache.heartbeat() && cache.poll(),
            "a probe sent and answered"
        );
        script.answer();
        assert!(!cache.poll(), "a second answer to one probe");
        assert!(!cache.is_attached());
    }

    #[tokio::test]
    async fn a_hit_waiting_on_a_feed_that_is_replaced_reads_the_store() {
        let (store, cache, script, inner) = setup(10).await;
        script.0.lock().unwrap().manual = true;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        let mut get = std::pin::pin!(store.get("session:a"));
        assert!(poll_once(get.as_mut()).is_pending());
        inner.put("session:a", b"two", None).await.unwrap();
        cache.attach(Script::default().feed());
        assert_eq!(get.await.unwrap().unwrap(), b"two");
    }

    #[tokio::test]
    async fn nothing_is_answered_or_kept_while_the_store_reads_another_node() {
        let (store, cache, script, inner) = setup(10).await;
        store.put("session:a", b"one", None).await.unwrap();
        store.get("session:a").await.unwrap();
        // The store's connection reaches another node than the feed's: no hit.
        script.0.lock().unwrap().route = Some(None);
        inner.put("session:a", b"two", None).await.unwrap();
        assert_eq!(cache.lookup("session:a"), Lookup::Off);
        assert_eq!(store.get("session:a").await.unwrap().unwrap(), b"two");
        assert!(cache.poll(), "the feed itself stays");
        // A read looked up over one connection and answered after the store made another
        // is not kept, even when both reach the feed's node.
        script.0.lock().unwrap().route = Some(Some(1));
        let Lookup::Miss(generation) = cache.lookup("session:b") else {
            panic!("expected a miss");
        };
        script.0.lock().unwrap().route = Some(Some(2));
        cache.keep("session:b", b"old", generation);
        assert!(matches!(cache.lookup("session:b"), Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn a_full_cache_starts_again() {
        let (store, cache, _script, _inner) = setup(2).await;
        for k in ["session:a", "session:b", "session:c"] {
            store.put(k, b"v", None).await.unwrap();
            store.get(k).await.unwrap();
        }
        assert_eq!(cache.len(), 1);
        assert!(matches!(cache.lookup("session:c"), Lookup::Hit { .. }));
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
