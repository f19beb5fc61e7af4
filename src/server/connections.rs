//! Bounded connections (`[server]` `header_read_timeout`, `keep_alive_timeout`,
//! `max_connections`, `max_connections_per_ip`).
//!
//! hyper's own `header_read_timeout` starts whenever it waits for a request head, so it
//! would also end every idle keep-alive connection after the (short) header timeout. latch
//! keeps both clocks itself: [`Activity`] sees every read (through [`Watched`]) and every
//! request (through [`Activity::request_started`]'s guard, dropped with the response body),
//! and [`Activity::cutoff`] resolves when the connection has to go.
use crate::config::{ConnectionLimits, IpNet};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Refused connections are logged at most this often (with the count), never one line each.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Why a new connection was closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` reached.
    Global,
    /// `max_connections_per_ip` reached for this client.
    PerIp,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Global => "max_connections",
            Refused::PerIp => "max_connections_per_ip",
        }
    }
}

/// Counts open connections, in all and per client address.
pub struct Tracker {
    /// The metrics label: `main` or `metrics` (`server.metrics_listen`).
    listener: &'static str,
    limits: ConnectionLimits,
    trusted: Vec<IpNet>,
    counts: Mutex<Counts>,
}

struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    refused_unlogged: usize,
    warned: Option<Instant>,
}

/// One admitted connection; dropping it frees its place.
pub struct Permit {
    tracker: Arc<Tracker>,
    key: Option<IpAddr>,
}

impl Tracker {
    pub fn new(
        listener: &'static str,
        limits: ConnectionLimits,
        trusted: Vec<IpNet>,
    ) -> Arc<Tracker> {
        Arc::new(Tracker {
            listener,
            limits,
            trusted,
            counts: Mutex::new(Counts {
                total: 0,
                per_ip: HashMap::new(),
                refused_unlogged: 0,
                warned: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `peer`. A reverse proxy in `trusted_proxies` carries
    /// many clients, so it counts only towards the global cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refused> {
        let peer = peer.to_canonical();
        let key = (!self.trusted.iter().any(|n| n.contains(peer)))
            .then(|| crate::web::limits::client_key(peer));
        let mut counts = self.lock();
        let refused = if counts.total >= self.limits.max_connections {
            Some(Refused::Global)
        } else if key.is_some_and(|k| {
            counts.per_ip.get(&k).copied().unwrap_or(0) >= self.limits.max_connections_per_ip
        }) {
            Some(Refused::PerIp)
        } else {
            None
        };
        if let Some(why) = refused {
            counts.refused_unlogged += 1;
            let now = Instant::now();
            if counts.warned.is_none_or(|t| now - t >= WARN_EVERY) {
                tracing::warn!(
                    %peer,
                    listener = self.listener,
                    limit = why.as_str(),
                    refused = counts.refused_unlogged,
                    "connection limit reached: new connections closed at once (at most one such line a minute; `refused` counts them)"
                );
                counts.warned = Some(now);
                counts.refused_unlogged = 0;
            } else {
                tracing::debug!(%peer, limit = why.as_str(), "connection refused");
            }
            metrics::counter!(
                "latch_connections_refused_total",
                "listener" => self.listener,
                "limit" => why.as_str()
            )
            .increment(1);
            return Err(why);
        }
        counts.total += 1;
        if let Some(k) = key {
            *counts.per_ip.entry(k).or_insert(0) += 1;
        }
        metrics::gauge!("latch_connections_open", "listener" => self.listener)
            .set(counts.total as f64);
        Ok(Permit {
            tracker: self.clone(),
            key,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.tracker.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(k) = self.key {
            if let Some(n) = counts.per_ip.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&k);
                }
            }
        }
        metrics::gauge!("latch_connections_open", "listener" => self.tracker.listener)
            .set(counts.total as f64);
    }
}

/// Why an open connection was closed by latch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutoff {
    /// A request head did not arrive in full within `header_read_timeout`.
    HeaderRead,
    /// No request for `keep_alive_timeout`.
    KeepAlive,
    /// The latest request was still in flight after `request_timeout`.
    Request,
}

impl Cutoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Cutoff::HeaderRead => "header_read_timeout",
            Cutoff::KeepAlive => "keep_alive_timeout",
            Cutoff::Request => "request_timeout",
        }
    }
}

/// The clock task's longest sleep on a connection in use is at least this (ms), so that
/// tiny timeouts do not make it spin; changes then wake it when they must.
const MIN_STEP_MS: u64 = 1000;

/// Milliseconds since the connection's accept; `NONE`: not set.
const NONE: u64 = u64::MAX;

/// What one connection is doing, as far as its clocks care.
///
/// The clock task ([`Activity::cutoff`]) is woken by a change of state only when the change
/// brings the deadline nearer than the time it sleeps until (`armed`). Waking it runs the
/// connection's task again, which polls hyper's connection for nothing: three times a
/// request on a keep-alive connection, when a head begins, its request starts and ends
/// (bench/README.md). So while the connection is in use the task sleeps at most `step`, the
/// shortest of the three timeouts (at least 1 s): a change at time t sets a deadline no
/// earlier than t + the shortest timeout, which (when every timeout is 1 s or more) is no
/// earlier than `armed`, so it wakes nothing and is seen in time (a timeout under 1 s makes
/// changes wake it: correct, only dearer). On a connection idle for a `step` or more the
/// task sleeps to the keep-alive deadline, and the head that begins wakes it (once).
pub struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (ms since accept).
    idle_since: AtomicU64,
    /// When the latest request began (ms since accept).
    busy_since: AtomicU64,
    /// When the head now being read began (ms since accept): the accept for the first
    /// request, the first byte after an idle spell for later ones.
    head_since: AtomicU64,
    /// HTTP/2: bytes between requests are frames (PING, SETTINGS), not a request head.
    h2: AtomicBool,
    header_ms: u64,
    request_ms: u64,
    keep_alive_ms: u64,
    /// The shortest of the three (at least 1 s): how long the clock task sleeps at most
    /// while the connection is in use.
    step_ms: u64,
    /// The time the clock task sleeps until (ms since accept). 0 before its first look,
    /// which reads the state anyway: no change needs to wake it.
    armed: AtomicU64,
    wake: Notify,
    /// How often the clock task read the state (tests count its wake-ups).
    #[cfg(test)]
    rearms: AtomicU64,
}

impl Activity {
    pub fn new(limits: &ConnectionLimits) -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            header_ms: ms(limits.header_read_timeout),
            request_ms: ms(limits.request_timeout),
            keep_alive_ms: ms(limits.keep_alive_timeout),
            step_ms: ms(limits
                .header_read_timeout
                .min(limits.request_timeout)
                .min(limits.keep_alive_timeout))
            .max(MIN_STEP_MS),
            armed: AtomicU64::new(0),
            wake: Notify::new(),
            #[cfg(test)]
            rearms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The state's deadline (ms since accept) and the limit it enforces. Each change writes
    /// the field this reads second before the one it reads first (`in_flight`), so a read
    /// that sees the change sees all of it.
    fn deadline(&self) -> (u64, Cutoff) {
        if self.in_flight.load(SeqCst) > 0 {
            // Busy: until the latest request has taken too long.
            let busy = self.busy_since.load(SeqCst);
            (busy.saturating_add(self.request_ms), Cutoff::Request)
        } else {
            let head = self.head_since.load(SeqCst);
            if head != NONE {
                (head.saturating_add(self.header_ms), Cutoff::HeaderRead)
            } else {
                let idle = self.idle_since.load(SeqCst);
                (idle.saturating_add(self.keep_alive_ms), Cutoff::KeepAlive)
            }
        }
    }

    /// Bytes arrived: with no request in flight they begin a request head.
    fn on_read(&self) {
        if self.in_flight.load(SeqCst) == 0 && !self.h2.load(SeqCst) {
            // Only the first read of a head starts its clock.
            if self
                .head_since
                .compare_exchange(NONE, self.now_ms(), SeqCst, SeqCst)
                .is_ok()
            {
                self.changed();
            }
        }
    }

    /// A request head was read in full; the request lasts as long as the guard.
    pub fn request_started(self: &Arc<Self>, h2: bool) -> RequestGuard {
        self.busy_since.store(self.now_ms(), SeqCst);
        self.in_flight.fetch_add(1, SeqCst);
        self.head_since.store(NONE, SeqCst);
        if h2 {
            self.h2.store(true, SeqCst);
        }
        self.changed();
        RequestGuard(self.clone())
    }

    /// Resolves when the connection must be closed.
    pub async fn cutoff(&self) -> Cutoff {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between still wakes us.
            notified.as_mut().enable();
            #[cfg(test)]
            self.rearms.fetch_add(1, SeqCst);
            let (deadline, reason) = self.deadline();
            let now = self.now_ms();
            if now >= deadline {
                return reason;
            }
            let idle_for = now.saturating_sub(self.idle_since.load(SeqCst));
            let armed = if reason == Cutoff::KeepAlive && idle_for >= self.step_ms {
                // Idle a while: sleep to the keep-alive deadline; a head that begins wakes us.
                deadline
            } else {
                deadline.min(now.saturating_add(self.step_ms))
            };
            self.armed.store(armed, SeqCst);
            // A change made before that store compared its deadline with the old one: read
            // again after it, so either this read sees the change or the change sees `armed`
            // (all SeqCst).
            if self.deadline().0 != deadline {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.origin + Duration::from_millis(armed)) => {}
                _ = &mut notified => {}
            }
        }
    }

    /// After a change of state: wakes the clock task only if the new deadline is nearer
    /// than the time it sleeps until, which on a busy connection it never is.
    fn changed(&self) {
        if self.deadline().0 < self.armed.load(SeqCst) {
            self.wake.notify_one();
        }
    }
}

/// A duration in whole milliseconds, as the clocks count.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Held while a request is in flight (inside the response body until it is sent).
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now_ms(), SeqCst);
        a.in_flight.fetch_sub(1, SeqCst);
        a.changed();
    }
}

/// A response body that ends the request (drops its guard) when hyper is done with it.
pub struct GuardedBody {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl GuardedBody {
    pub fn new(inner: axum::body::Body, guard: RequestGuard) -> Self {
        GuardedBody {
            inner,
            _guard: guard,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling [`Activity`] about every read.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..ConnectionLimits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_ip_and_in_all_and_permits_free_places() {
        let t = Tracker::new(
            "main",
            limits(3, 2),
            vec![IpNet::parse("10.0.0.0/8").unwrap()],
        );
        let a1 = t.admit(ip("192.0.2.1")).unwrap();
        let _a2 = t.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(t.admit(ip("192.0.2.1")).err(), Some(Refused::PerIp));
        drop(a1);
        let _a3 = t.admit(ip("192.0.2.1")).unwrap();
        // A trusted proxy is not capped per address, only in all.
        let _p = t.admit(ip("10.0.0.5")).unwrap();
        assert_eq!(t.admit(ip("10.0.0.5")).err(), Some(Refused::Global));
        assert_eq!(t.admit(ip("192.0.2.2")).err(), Some(Refused::Global));
        // IPv6 counts per /64.
        let t = Tracker::new("main", limits(10, 1), vec![]);
        let _v = t.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(t.admit(ip("2001:db8::2")).err(), Some(Refused::PerIp));
        assert!(t.admit(ip("2001:db8:0:1::1")).is_ok());
        assert_eq!(t.lock().total, 1);
    }

    #[test]
    fn labels_name_the_key_that_was_reached() {
        // An operator reads the `limit` label of the refused and closed counters to know
        // which `[server]` key to raise.
        assert_eq!(Refused::Global.as_str(), "max_connections");
        assert_eq!(Refused::PerIp.as_str(), "max_connections_per_ip");
        assert_eq!(Cutoff::HeaderRead.as_str(), "header_read_timeout");
        assert_eq!(Cutoff::KeepAlive.as_str(), "keep_alive_timeout");
        assert_eq!(Cutoff::Request.as_str(), "request_timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_logged_at_most_once_a_minute_with_their_count() {
        let t = Tracker::new("main", limits(1, 1), vec![]);
        let _held = t.admit(ip("192.0.2.1")).unwrap();
        // The first refusal is logged at once (and the count starts again) ...
        assert_eq!(t.admit(ip("192.0.2.2")).err(), Some(Refused::Global));
        let first = t.lock().warned;
        assert_eq!(first, Some(Instant::now()));
        assert_eq!(t.lock().refused_unlogged, 0);
        // ... the ones within the next minute are only counted ...
        tokio::time::advance(WARN_EVERY - Duration::from_millis(1)).await;
        assert_eq!(t.admit(ip("192.0.2.2")).err(), Some(Refused::Global));
        assert_eq!(t.admit(ip("192.0.2.3")).err(), Some(Refused::Global));
        assert_eq!(t.lock().refused_unlogged, 2);
        assert_eq!(t.lock().warned, first);
        // ... and a minute after the last line the next refusal logs them.
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(t.admit(ip("192.0.2.2")).err(), Some(Refused::Global));
        assert_eq!(t.lock().refused_unlogged, 0);
        assert_eq!(t.lock().warned, Some(Instant::now()));
    }

    #[test]
    fn a_guarded_body_is_its_body_and_ends_the_request_when_dropped() {
        // hyper sizes and ends responses by these (a stream axum did not size, an empty
        // body it need not poll).
        let a = Activity::new(&ConnectionLimits::default());
        let body = GuardedBody::new(axum::body::Body::from("abc"), a.request_started(false));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        assert_eq!(a.in_flight.load(SeqCst), 1);
        drop(body);
        assert_eq!(a.in_flight.load(SeqCst), 0);
        let empty = GuardedBody::new(axum::body::Body::empty(), a.request_started(false));
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }

    /// A stream without vectored writes that records what reaches it.
    #[derive(Default)]
    struct Recorder {
        written: Vec<u8>,
        flushed: bool,
        shut: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.flushed = true;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_watched_stream_passes_everything_through_and_an_eof_begins_no_head() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 8];
        // Read bytes begin a request head ...
        let a = Activity::new(&ConnectionLimits::default());
        drop(a.request_started(false));
        let (near, mut far) = tokio::io::duplex(64);
        let mut w = Watched::new(near, a.clone());
        far.write_all(b"GET").await.unwrap();
        assert_eq!(w.read(&mut buf).await.unwrap(), 3);
        assert_ne!(a.head_since.load(SeqCst), NONE);
        // ... the client's EOF on an idle connection does not.
        let a = Activity::new(&ConnectionLimits::default());
        drop(a.request_started(false));
        let (near, mut far) = tokio::io::duplex(64);
        let mut w = Watched::new(near, a.clone());
        far.shutdown().await.unwrap();
        assert_eq!(w.read(&mut buf).await.unwrap(), 0);
        assert_eq!(
            a.head_since.load(SeqCst),
            NONE,
            "an EOF began a request head"
        );

        // Writes, a flush and a shutdown reach the inner stream.
        let mut w = Watched::new(
            Recorder::default(),
            Activity::new(&ConnectionLimits::default()),
        );
        w.write_all(b"hello").await.unwrap();
        w.flush().await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(w.inner.written, b"hello");
        assert!(w.inner.flushed && w.inner.shut);
        // Whether the inner stream has vectored writes: this one has not; a socket has, and
        // hyper then writes through poll_write_vectored alone.
        assert!(!w.is_write_vectored());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert!(
            Watched::new(socket, Activity::new(&ConnectionLimits::default())).is_write_vectored()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clocks_follow_reads_and_requests() {
        let l = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            keep_alive_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let secs = Duration::from_secs;
        // Nothing sent after the accept: the header clock.
        let a = Activity::new(&l);
        assert_eq!(cut(&a).await, (Cutoff::HeaderRead, secs(10)));

        // After a request: idle until keep_alive_timeout; a byte starts the header clock.
        let a = Activity::new(&l);
        drop(a.request_started(false));
        assert_eq!(cut(&a).await, (Cutoff::KeepAlive, secs(60)));

        let a = Activity::new(&l);
        drop(a.request_started(false));
        let b = a.clone();
        after(5, move || b.on_read());
        assert_eq!(cut(&a).await, (Cutoff::HeaderRead, secs(15)));

        // A request in flight is cut only after request_timeout ...
        let a = Activity::new(&l);
        let _guard = a.request_started(false);
        assert_eq!(cut(&a).await, (Cutoff::Request, secs(120)));

        // ... and one that ends before it starts the idle clock.
        let a = Activity::new(&l);
        let guard = a.request_started(false);
        after(100, move || drop(guard));
        assert_eq!(cut(&a).await, (Cutoff::KeepAlive, secs(160)));

        // A request that ends well before request_timeout: the idle clock's nearer
        // deadline wakes the clock task at once.
        let a = Activity::new(&l);
        let guard = a.request_started(false);
        after(10, move || drop(guard));
        assert_eq!(cut(&a).await, (Cutoff::KeepAlive, secs(70)));

        // HTTP/2: frames between requests do not start the header clock.
        let a = Activity::new(&l);
        drop(a.request_started(true));
        a.on_read();
        assert_eq!(cut(&a).await, (Cutoff::KeepAlive, secs(60)));
    }

    /// Why and how long after now `a` cuts its connection.
    async fn cut(a: &Activity) -> (Cutoff, Duration) {
        let t0 = Instant::now();
        let why = a.cutoff().await;
        (why, t0.elapsed())
    }

    /// Runs `then` `secs` seconds from now, in a task of its own.
    fn after(secs: u64, then: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            then();
        });
    }

    /// A connection whose first request has ended (timeouts in seconds: header, request,
    /// keep-alive), and its clock task.
    fn clock_after_a_request(
        header: u64,
        request: u64,
        keep_alive: u64,
    ) -> (Arc<Activity>, tokio::task::JoinHandle<Cutoff>) {
        let a = Activity::new(&ConnectionLimits {
            header_read_timeout: Duration::from_secs(header),
            request_timeout: Duration::from_secs(request),
            keep_alive_timeout: Duration::from_secs(keep_alive),
            ..ConnectionLimits::default()
        });
        drop(a.request_started(false));
        let clock = tokio::spawn({
            let a = a.clone();
            async move { a.cutoff().await }
        });
        (a, clock)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_on_a_busy_connection_do_not_wake_its_clock() {
        let (a, clock) = clock_after_a_request(10, 60, 60);
        tokio::task::yield_now().await;
        // 1,000 keep-alive requests of a millisecond each, over one second.
        for _ in 0..1000 {
            a.on_read();
            let guard = a.request_started(false);
            tokio::time::advance(Duration::from_millis(1)).await;
            drop(guard);
            tokio::task::yield_now().await;
        }
        // Once at the start and not again: nothing wakes it, and its step is 10 s.
        let rearms = a.rearms.load(SeqCst);
        assert_eq!(rearms, 1, "the clock task read the state {rearms} times");
        // And it still cuts the connection when it goes idle.
        let t0 = Instant::now();
        assert_eq!(clock.await.unwrap(), Cutoff::KeepAlive);
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connections_clock_sleeps_until_a_head_begins() {
        let (a, clock) = clock_after_a_request(1, 60, 3600);
        // Half an hour idle: a look after the first second, then asleep (not one a second).
        tokio::time::sleep(Duration::from_secs(1800)).await;
        let rearms = a.rearms.load(SeqCst);
        assert!(
            rearms <= 2,
            "an idle connection's clock looked {rearms} times"
        );
        // A head that begins then wakes it, and its header clock is kept to the millisecond.
        let t0 = Instant::now();
        a.on_read();
        assert_eq!(clock.await.unwrap(), Cutoff::HeaderRead);
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
    }
}
