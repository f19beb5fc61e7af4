//! Per-client request rates (`[limits]`): an in-process token bucket per route class and
//! client address. The client is the TCP peer, or — only when the peer is one of
//! `server.trusted_proxies` — the right-most address in `X-Forwarded-For` that is not a
//! trusted proxy. IPv6 clients are counted per /64 (one host usually owns a whole /64).
//! On Redis the counts live in the store (one GCRA key per class and client, checked and
//! counted in one round trip on Redis's clock), so N instances together allow the rate once,
//! not N times; should the store fail, the instance falls back to its own bucket for that
//! request. On SQLite and memory (one process) the buckets live in this process.
use super::{AppState, WebError};
use crate::config::{Config, IpNet, Rate};
use crate::error::{AuthError, ErrorCode};
use crate::store::Store;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often idle buckets are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Request headers larger than this (all of them together, with the URL) get a 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// More header fields than this get a 431 (below hyper's own cap of 100, see `server.rs`).
pub const MAX_HEADERS: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Signin,
    Callback,
    Token,
    Refresh,
}

impl RouteClass {
    fn name(self) -> &'static str {
        match self {
            RouteClass::Signin => "signin",
            RouteClass::Callback => "callback",
            RouteClass::Token => "token",
            RouteClass::Refresh => "refresh",
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Buckets {
    map: HashMap<(RouteClass, IpAddr), Bucket>,
    pruned: Instant,
}

pub struct Limiter {
    trusted: Vec<IpNet>,
    signin: Option<Rate>,
    callback: Option<Rate>,
    token: Option<Rate>,
    refresh: Option<Rate>,
    buckets: Mutex<Buckets>,
    /// The shared store that counts for every instance (Redis backends only).
    shared: Option<Arc<dyn Store>>,
    /// When the store last failed to count (ms since `started`), so an outage logs one
    /// warning a minute, not one per request.
    shared_failed_at: std::sync::atomic::AtomicU64,
    started: Instant,
    /// Set once `X-Forwarded-For` from an untrusted peer was logged (one warning, not one
    /// per request).
    warned_forwarded: AtomicBool,
}

/// Refill per second and capacity of a rate.
fn params(rate: Rate) -> (f64, f64) {
    let cap = f64::from(rate.count);
    (cap / rate.per.as_secs_f64(), cap)
}

impl Limiter {
    /// `shared`: a store every instance uses, to count in (see the module documentation).
    pub fn new(config: &Config, shared: Option<Arc<dyn Store>>) -> Limiter {
        let l = &config.limits;
        Limiter {
            trusted: config.server.trusted_proxies.clone(),
            signin: l.signin,
            callback: l.callback,
            token: l.token,
            refresh: l.refresh,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                pruned: Instant::now(),
            }),
            shared,
            shared_failed_at: std::sync::atomic::AtomicU64::new(u64::MAX),
            started: Instant::now(),
            warned_forwarded: AtomicBool::new(false),
        }
    }

    /// A proxy that is not in `trusted_proxies` makes every client it forwards share its
    /// address (one bucket for all): say once which key fixes that.
    pub(super) fn notice_forwarded(&self, peer: IpAddr, headers: &HeaderMap) {
        if self.warned_forwarded.load(Ordering::Relaxed)
            || !headers.contains_key("x-forwarded-for")
            || self.is_trusted(peer.to_canonical())
            || self.warned_forwarded.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::warn!(
            %peer,
            "requests carry X-Forwarded-For from {peer}, which is not in server.trusted_proxies: the header is ignored and rate limits count this peer as one client; if it is your reverse proxy, add its address to `[server] trusted_proxies` (logged once)"
        );
    }

    fn rate(&self, class: RouteClass) -> Option<Rate> {
        match class {
            RouteClass::Signin => self.signin,
            RouteClass::Callback => self.callback,
            RouteClass::Token => self.token,
            RouteClass::Refresh => self.refresh,
        }
    }

    /// Counts one request of `client`, or says how long until one is allowed: in the shared
    /// store when there is one, else (or when it fails) in this process.
    pub async fn admit(&self, class: RouteClass, client: IpAddr) -> Result<(), Duration> {
        let (Some(store), Some(rate)) = (&self.shared, self.rate(class)) else {
            return self.check(class, client, Instant::now());
        };
        let interval = rate.per / rate.count.max(1);
        let tolerance = rate.per.saturating_sub(interval);
        let key = crate::store::keys::rate_limit(class.name(), client_key(client));
        match store.rate_limit(&key, interval, tolerance).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                let now = self.started.elapsed().as_millis() as u64;
                let last = self.shared_failed_at.load(Ordering::Relaxed);
                if last == u64::MAX || now.saturating_sub(last) >= 60_000 {
                    self.shared_failed_at.store(now, Ordering::Relaxed);
                    tracing::warn!(error = %e, "shared rate count unavailable; counting in this instance (logged once a minute)");
                }
                self.check(class, client, Instant::now())
            }
        }
    }

    /// Takes one token from the client's bucket in this process, or says how long until one
    /// is there.
    pub fn check(&self, class: RouteClass, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate(class) else {
            return Ok(());
        };
        let (per_sec, cap) = params(rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(buckets.pruned) >= PRUNE_EVERY {
            self.prune(&mut buckets.map, now);
            buckets.pruned = now;
        }
        let bucket = buckets
            .map
            .entry((class, client_key(client)))
            .or_insert(Bucket {
                tokens: cap,
                updated: now,
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(cap);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }

    /// Drops buckets that have refilled completely: they are as good as new.
    fn prune(&self, map: &mut HashMap<(RouteClass, IpAddr), Bucket>, now: Instant) {
        map.retain(|(class, _), b| match self.rate(*class) {
            None => false,
            Some(rate) => {
                let (per_sec, cap) = params(rate);
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens + elapsed * per_sec < cap
            }
        });
    }

    /// The client's address: see the module documentation.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                // Garbage from (or before) the last trusted hop: stop at that hop.
                None => break,
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }
}

/// An `X-Forwarded-For` element: `203.0.113.7`, `2001:db8::1`, `203.0.113.7:4711`,
/// `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// IPv6 addresses count per /64 (also the key of the per-address connection cap).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// The layer of a rate-limited route (its class set when the router is built): answers 429
/// `TooManyRequests` with `Retry-After` (whole seconds).
pub async fn enforce(
    State((app, class)): State<(AppState, RouteClass)>,
    req: Request,
    next: Next,
) -> Response {
    let limiter = &app.limiter;
    // Served without connect info (never by `server::run`): nothing to key on.
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = limiter.client_ip(peer.ip(), req.headers());
    match limiter.admit(class, client).await {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let error = AuthError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "rate limit {} exceeded by client {client} (peer {}); retry in {secs}s",
                    class.name(),
                    peer.ip()
                ),
            );
            let mut response = WebError::page(error).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

/// 431 `RequestHeaderFieldsTooLarge`, rendered like every refusal, for heads over
/// [`MAX_HEADER_BYTES`] or [`MAX_HEADERS`] (hyper's own, larger caps in `server.rs` answer a
/// bare 431 before latch sees the request).
pub(super) fn head_too_large(req: &Request) -> Option<WebError> {
    let headers = req.headers();
    let uri = req.uri();
    // The URI's length as sent, without formatting it (this runs on every request).
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let bytes: usize = uri_len
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        let reason = format!(
            "request head of {bytes} bytes in {} fields; the limit is {MAX_HEADER_BYTES} bytes and {MAX_HEADERS} fields",
            headers.len()
        );
        return Some(WebError::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            reason,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(extra: &str) -> Limiter {
        let text = format!(
            "[server]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{extra}\n[limits]\nsignin = \"2/10s\"\ncallback = \"off\"\n"
        );
        let config =
            crate::config::load_str(std::path::Path::new("t.toml"), &text, &|_| None).unwrap();
        Limiter::new(&config, None)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The class of a path, as the router puts it on its route: the bucket one request to it
    /// is counted in.
    async fn class_of(path: &str) -> Option<RouteClass> {
        use tower::ServiceExt;
        let text = "[server]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[limits]\nsignin = \"5/1h\"\ncallback = \"5/1h\"\ntoken = \"5/1h\"\nrefresh = \"5/1h\"\n";
        let config =
            crate::config::load_str(std::path::Path::new("t.toml"), text, &|_| None).unwrap();
        let store = crate::store::open("memory://", None).await.unwrap();
        let peer: SocketAddr = "192.0.2.1:4711".parse().unwrap();
        let app = crate::server::build_on(config, peer, store).unwrap();
        let method = if matches!(path, "/token" | "/refresh") {
            "POST"
        } else {
            "GET"
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        super::super::router(app.clone())
            .oneshot(req)
            .await
            .unwrap();
        let buckets = app.limiter.buckets.lock().unwrap();
        let classes: Vec<RouteClass> = buckets.map.keys().map(|(class, _)| *class).collect();
        assert!(classes.len() <= 1, "{classes:?}");
        classes.first().copied()
    }

    #[tokio::test]
    async fn classes() {
        assert_eq!(class_of("/signin/dev").await, Some(RouteClass::Signin));
        assert_eq!(class_of("/signin").await, None);
        assert_eq!(class_of("/signin/").await, None);
        assert_eq!(class_of("/callback/x").await, Some(RouteClass::Callback));
        assert_eq!(class_of("/token").await, Some(RouteClass::Token));
        assert_eq!(class_of("/refresh").await, Some(RouteClass::Refresh));
        assert_eq!(class_of("/session").await, None);
    }

    #[test]
    fn bucket_refills_and_is_per_client_and_class() {
        let l = limiter("");
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert!(l.check(RouteClass::Signin, a, t0).is_ok());
        assert!(l.check(RouteClass::Signin, a, t0).is_ok());
        let wait = l.check(RouteClass::Signin, a, t0).unwrap_err();
        assert_eq!(wait.as_secs_f64().ceil() as u64, 5);
        assert!(l.check(RouteClass::Signin, ip("192.0.2.2"), t0).is_ok());
        assert!(l.check(RouteClass::Token, a, t0).is_ok());
        assert!(l
            .check(RouteClass::Signin, a, t0 + Duration::from_secs(5))
            .is_ok());
        // "off"
        for _ in 0..100 {
            assert!(l.check(RouteClass::Callback, a, t0).is_ok());
        }
        // IPv6 counts per /64.
        let v6a = ip("2001:db8::1");
        let v6b = ip("2001:db8::ffff:2");
        assert!(l.check(RouteClass::Signin, v6a, t0).is_ok());
        assert!(l.check(RouteClass::Signin, v6b, t0).is_ok());
        assert!(l.check(RouteClass::Signin, v6a, t0).is_err());
        // Full buckets are pruned.
        l.check(RouteClass::Signin, ip("192.0.2.9"), t0 + PRUNE_EVERY * 2)
            .unwrap();
        assert_eq!(l.buckets.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2:4711".parse().unwrap());
        let untrusted = limiter("");
        assert_eq!(untrusted.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let trusted = limiter("trusted_proxies = [\"10.0.0.0/8\"]");
        // Right-most untrusted: 1.1.1.1 may be spoofed by the client.
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(trusted.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.0.0.1"), &h),
            ip("203.0.113.9")
        );
        let mut g = HeaderMap::new();
        g.append(
            "x-forwarded-for",
            "1.1.1.1, junk, 10.0.0.3".parse().unwrap(),
        );
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &g), ip("10.0.0.3"));
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }
}
