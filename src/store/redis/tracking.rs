//! The session cache's [`Feed`] on Redis: one more connection per instance, in RESP3, with
//! `CLIENT TRACKING ON BCAST PREFIX session:`, so Redis pushes the name of every session key
//! that anyone changes, deletes or lets expire, whichever connection or instance read it.
//!
//! The same connection carries the cache's probes (`store::cache`): `ROLE`, both for the
//! fences that hits wait on and every [`HEARTBEAT_EVERY`] as the heartbeat. Its answer comes back
//! in order after every invalidation Redis queued before it ran it, and must say `master`:
//! a node demoted behind a DNS name or virtual IP no longer sees the writes as they happen,
//! so a fence it answers would prove nothing. The socket is read, without waiting and under the cache's lock, by the
//! task below when tokio says it is readable; probes are written from the cache's lookups
//! (a fence) and from the task (the heartbeat).
//!
//! Plain `redis://` single nodes and Sentinel groups have a feed; on `rediss://` and Cluster
//! the cache stays off (see [`target`]).
//!
//! On Sentinel the feed follows the master the Sentinels name: it asks them all
//! (`SENTINEL get-master-addr-by-name`, as the store asks them: without credentials; the
//! URL's are the data nodes') and connects only to a node every answering Sentinel names;
//! then, every [`HEARTBEAT_EVERY`], asks again and drops the feed as soon as any of them
//! names another node (or none has answered for [`LIVENESS`]), and reconnects to the new
//! master. Every change of master is a new epoch, with the cache empty, because of what a
//! failover does to invalidations:
//! * Tracking is per node and not replicated: the new master never heard of the feed's
//!   connection, so the writes it takes (a sign-out on another instance) are announced only
//!   to connections on it. A feed left on the old master hears none of them.
//! * The new master's data is the old one's as far as replication had got: writes the old
//!   master took and did not pass on (an extension, even a delete latch did not wait for)
//!   are gone, and no node ever sends an invalidation for a record that changed by being
//!   lost. What the cache read from the old master may not be what the new one holds.
//! * Invalidations the old master sends after the promotion are for writes that its
//!   demotion throws away (it resyncs from the new master), and say nothing about the new
//!   master's data.
//!
//! So nothing read or heard before the change is kept; hits waiting on a fence of the old
//! feed read the store. The `ROLE` fence stays: the node the Sentinels name must also say it
//! is a master. Between a Sentinel's switch and the next ask (at most
//! [`HEARTBEAT_EVERY`] and one round trip) the old master may still answer a fence as
//! master; the store itself follows the Sentinels once a second. And the cache keeps or
//! answers nothing while the store's own connection reaches another node than the feed's
//! ([`Feed::route`]), so a record read from the old master after the feed moved is never
//! kept.
use super::sentinel::{ask_each, Route};
use super::url::{parse_url, RedisUrl};
use crate::store::cache::{Event, Feed, SessionCache, HEARTBEAT_EVERY, LATE_PROBE_CHECK, LIVENESS};
use crate::store::keys::SESSION_PREFIX;
use redis::aio::MultiplexedConnection;
use redis::ConnectionAddr;
use std::io::{ErrorKind, Read, Write};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The connection's name in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "latch-session-cache";
/// Longest wait for the connection and the answers to `HELLO` and `CLIENT TRACKING`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after a failed connection, doubled up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// A reply or push larger than this means something is wrong with the stream.
const MAX_BUFFERED: usize = 16 << 20;
/// Deepest nesting of RESP3 aggregates accepted (an invalidation is two levels deep).
const MAX_DEPTH: usize = 8;
const ROLE: &[u8] = b"*1\r\n$4\r\nROLE\r\n";

/// Where the feed connects, and as whom. The password is never printed.
pub struct Target {
    place: Place,
    username: Option<String>,
    password: Option<String>,
}

enum Place {
    Node(String, u16),
    /// The master the Sentinels name, and where the store's reads go.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        route: Arc<Route>,
    },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Node(host, port) => write!(f, "{host}:{port}"),
            Place::Sentinel { service, .. } => write!(f, "the master of Sentinel group {service}"),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("place", &self.place.to_string())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The feed's target for a store URL, or why that store gets no session cache. `route`:
/// where a Sentinel store's reads go ([`super::RedisStore::route`]).
pub fn target(url: &str, route: Option<Arc<Route>>) -> Result<Target, &'static str> {
    let info = match parse_url(url) {
        Ok(RedisUrl::Single(info)) => info,
        Ok(RedisUrl::Sentinel(s)) => {
            let route = route.ok_or("no route from the store")?;
            return Ok(Target {
                place: Place::Sentinel {
                    sentinels: s.sentinels,
                    service: s.service,
                    route,
                },
                username: s.user,
                password: s.pass,
            });
        }
        Ok(RedisUrl::Cluster(_)) => return Err("not yet on Cluster"),
        Err(_) => return Err("not a Redis URL"),
    };
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        return Err("not yet on TLS or Unix-socket connections");
    };
    let settings = info.redis_settings();
    Ok(Target {
        place: Place::Node(host.clone(), *port),
        username: settings.username().map(str::to_string),
        password: settings.password().map(str::to_string),
    })
}

/// Why the Sentinels name no master for the feed to follow.
#[derive(Debug, PartialEq)]
enum NoMaster {
    /// None of them answered with a master.
    NoneNamed,
    /// Those that answered named these, not all the same (a failover some have not heard
    /// of yet): no node is safe to follow until they agree.
    Disagree(Vec<(String, u16)>),
}

impl std::fmt::Display for NoMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoMaster::NoneNamed => write!(f, "no Sentinel named a master"),
            NoMaster::Disagree(named) => {
                write!(f, "the Sentinels do not agree on the master yet: {named:?}")
            }
        }
    }
}

/// The node every answering Sentinel names as the group's master, asked all at once, each
/// within [`ASK_TIMEOUT`](super::sentinel::ASK_TIMEOUT), on the connections in `conns`
/// (made again when lost: [`ask_each`]).
async fn ask_master(
    sentinels: &[(String, u16)],
    service: &str,
    conns: &mut [Option<MultiplexedConnection>],
) -> Result<(String, u16), NoMaster> {
    let mut query = redis::pipe();
    query
        .cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(service);
    let answers: Vec<(Option<(String, u16)>,)> = ask_each(sentinels, conns, &query).await;
    // A Sentinel that does not know the group answers nil: it names no master.
    let named: Vec<(String, u16)> = answers.into_iter().filter_map(|(m,)| m).collect();
    match named.split_first() {
        None => Err(NoMaster::NoneNamed),
        Some((first, rest)) if rest.iter().all(|m| m == first) => Ok(first.clone()),
        Some(_) => Err(NoMaster::Disagree(named)),
    }
}

/// Returns (why) once the Sentinels name another master than `node`, or none has confirmed
/// it for [`LIVENESS`]; asks every [`HEARTBEAT_EVERY`], over `conns`. Never returns for a
/// fixed node.
async fn master_moved(
    target: &Target,
    node: &(String, u16),
    conns: &mut [Option<MultiplexedConnection>],
) -> String {
    let Place::Sentinel {
        sentinels, service, ..
    } = &target.place
    else {
        return std::future::pending().await;
    };
    let mut confirmed = Instant::now();
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match ask_master(sentinels, service, conns).await {
            Ok(named) if &named == node => confirmed = Instant::now(),
            Ok(named) => {
                return format!("the Sentinels name another master, {}:{}", named.0, named.1)
            }
            // Not waited out like silence: one of them already names another node.
            Err(e @ NoMaster::Disagree(_)) => return e.to_string(),
            Err(e) if confirmed.elapsed() >= LIVENESS => return e.to_string(),
            Err(NoMaster::NoneNamed) => {}
        }
    }
}

/// Keeps a feed attached to `cache` for as long as the cache exists: connects, reconnects
/// after any loss, and detaches the cache whenever the connection is not live.
pub fn start(target: Target, cache: &Arc<SessionCache>) {
    let cache = Arc::downgrade(cache);
    tokio::spawn(async move { run(target, cache).await });
}

async fn run(target: Target, cache: Weak<SessionCache>) {
    let mut pause = MIN_PAUSE;
    let mut failing = false;
    // One connection per Sentinel for the feed's life, asked over by `locate` and
    // `master_moved` alike. One that was mid-ask when the watch ended was dropped with it
    // and is made again at the next ask.
    let mut conns: Vec<Option<MultiplexedConnection>> = match &target.place {
        Place::Sentinel { sentinels, .. } => vec![None; sentinels.len()],
        Place::Node(..) => Vec::new(),
    };
    while cache.strong_count() > 0 {
        match locate(&target, &mut conns).await {
            Ok(node) => match connect(&target, &node).await {
                Ok((socket, leftover)) => {
                    let Some(c) = cache.upgrade() else { return };
                    let socket = Arc::new(socket);
                    let route = match &target.place {
                        Place::Sentinel { route, .. } => Some((route.clone(), node.clone())),
                        Place::Node(..) => None,
                    };
                    c.attach(Box::new(Tracking::new(socket.clone(), leftover, route)));
                    drop(c);
                    // Hits waiting on a fence rely on this task (`SessionCache::fenced`): if
                    // it ends in a panic, the feed goes with it and they read the store.
                    let detach = DetachOnDrop(&cache);
                    if failing {
                        tracing::info!("session cache: invalidation feed is back");
                    }
                    pause = MIN_PAUSE;
                    let moved = master_moved(&target, &node, &mut conns);
                    let reason = watch(&socket, &cache, moved).await;
                    drop(detach);
                    if cache.strong_count() == 0 {
                        return;
                    }
                    if let Some(reason) = reason {
                        tracing::warn!(%reason, "session cache: invalidation feed lost; reading the store until it is back");
                    }
                    // Reported above; the attempts that follow are not, until one succeeds.
                    failing = true;
                }
                Err(reason) => {
                    if !failing {
                        tracing::warn!(%reason, target = %target.place,
                        "session cache: cannot start the invalidation feed; sessions are read from Redis until it starts");
                    }
                    failing = true;
                }
            },
            Err(reason) => {
                if !failing {
                    tracing::warn!(%reason, target = %target.place,
                        "session cache: cannot find the master; sessions are read from Redis until the Sentinels name one");
                }
                failing = true;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Detaches the cache's feed when dropped: when the watch ends, and if this task unwinds.
struct DetachOnDrop<'a>(&'a Weak<SessionCache>);

impl Drop for DetachOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.0.upgrade() {
            cache.detach();
        }
    }
}

/// The node to connect to: the fixed one, or the master every answering Sentinel names
/// (asked over `conns`).
async fn locate(
    target: &Target,
    conns: &mut [Option<MultiplexedConnection>],
) -> Result<(String, u16), NoMaster> {
    match &target.place {
        Place::Node(host, port) => Ok((host.clone(), *port)),
        Place::Sentinel {
            sentinels, service, ..
        } => ask_master(sentinels, service, conns).await,
    }
}

/// Applies invalidations as they arrive and pings; returns why the connection is no longer
/// usable (or, from `moved`, no longer the master's), or `None` when that was already
/// reported (the cache found it broken) or the cache is gone.
async fn watch(
    socket: &Socket,
    cache: &Weak<SessionCache>,
    moved: impl std::future::Future<Output = String>,
) -> Option<String> {
    let mut ping = tokio::time::interval(HEARTBEAT_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut late = tokio::time::interval(LATE_PROBE_CHECK);
    late.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(moved);
    loop {
        tokio::select! {
            reason = &mut moved => return Some(reason),
            ready = socket.readiness.readable() => {
                if let Err(e) = ready {
                    return Some(format!("socket: {e}"));
                }
                let c = cache.upgrade()?;
                // Read inside `try_io`, so tokio forgets only the readiness seen before the
                // read (WouldBlock below), never data that arrived during it.
                let mut live = true;
                let _ = socket.readiness.try_io(tokio::io::Interest::READABLE, || {
                    live = c.poll();
                    Err::<(), _>(ErrorKind::WouldBlock.into())
                });
                if !live {
                    return c.is_attached().then(|| format!("no answer from Redis for {LIVENESS:?}"));
                }
            }
            _ = late.tick() => cache.upgrade()?.give_up_late_probes(),
            _ = ping.tick() => {
                let c = cache.upgrade()?;
                if !c.heartbeat() {
                    return c.is_attached().then(|| format!("no answer from Redis for {LIVENESS:?}"));
                }
            }
        }
    }
}

/// The tracking connection: two handles on one socket. `readiness` is registered with tokio
/// and only waited on; `reader` is read (and pinged) directly, also from the cache's hits.
struct Socket {
    readiness: tokio::net::TcpStream,
    reader: std::net::TcpStream,
}

/// Connects, switches to RESP3 (with credentials), turns tracking on and checks the node is
/// a master; also returns what arrived after those answers.
async fn connect(t: &Target, node: &(String, u16)) -> Result<(Socket, Vec<u8>), String> {
    let handshake = async {
        let mut stream = tokio::net::TcpStream::connect((node.0.as_str(), node.1))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut hello: Vec<&str> = vec!["HELLO", "3"];
        if let Some(password) = &t.password {
            hello.extend(["AUTH", t.username.as_deref().unwrap_or("default"), password]);
        }
        hello.extend(["SETNAME", CLIENT_NAME]);
        let mut request = command(&hello);
        request.extend(command(&[
            "CLIENT",
            "TRACKING",
            "ON",
            "BCAST",
            "PREFIX",
            SESSION_PREFIX,
        ]));
        request.extend_from_slice(ROLE);
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut replies = Vec::new();
        while replies.len() < 3 {
            let mut chunk = [0u8; 4096];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("Redis closed the connection".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            // Invalidations may follow `CLIENT TRACKING`'s answer at once: they are left in
            // `buf` for the feed (the cache is empty at attach anyway), never taken for the
            // answer to `ROLE`.
            let mut at = 0;
            while replies.len() < 3 {
                let Some((frame, used)) = parse(&buf[at..])? else {
                    break;
                };
                if !matches!(frame, Frame::Push(_)) {
                    buf.drain(at..at + used);
                    replies.push(frame);
                } else {
                    at += used;
                }
            }
        }
        if let Frame::Error(e) = &replies[0] {
            return Err(format!(
                "HELLO 3 refused (RESP3 needs Redis 6 or later): {}",
                lossy(e)
            ));
        }
        match &replies[1] {
            Frame::Simple(ok) if ok == b"OK" => {}
            other => return Err(format!("CLIENT TRACKING refused: {}", describe(other))),
        }
        role_is_master(&replies[2])?;
        let reader = stream.into_std().map_err(|e| e.to_string())?;
        let readiness = reader.try_clone().map_err(|e| e.to_string())?;
        let readiness = tokio::net::TcpStream::from_std(readiness).map_err(|e| e.to_string())?;
        Ok((Socket { readiness, reader }, buf))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {HANDSHAKE_TIMEOUT:?}")))
}

/// The feed: the socket and what has been read of it but not yet parsed.
struct Tracking {
    socket: Arc<Socket>,
    buf: Vec<u8>,
    heard_at: Instant,
    /// Where each `recv` lands (zeroed once: a fresh array per read was most of the feed's
    /// cost per request). 64 KiB, so a large push needs few reads (an incomplete frame is
    /// parsed again from its start at each).
    chunk: Box<[u8]>,
    /// On Sentinel: where the store's reads go, and the node this feed is on.
    route: Option<(Arc<Route>, (String, u16))>,
}

impl Tracking {
    fn new(
        socket: Arc<Socket>,
        leftover: Vec<u8>,
        route: Option<(Arc<Route>, (String, u16))>,
    ) -> Self {
        Self {
            route,
            socket,
            buf: leftover,
            heard_at: Instant::now(),
            chunk: vec![0; 64 << 10].into_boxed_slice(),
        }
    }
}

impl Feed for Tracking {
    fn drain(&mut self, event: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
        loop {
            match (&self.socket.reader).read(&mut self.chunk) {
                Ok(0) => return Err("Redis closed the connection".into()),
                Ok(n) => {
                    self.heard_at = Instant::now();
                    self.buf.extend_from_slice(&self.chunk[..n]);
                    if self.buf.len() > MAX_BUFFERED {
                        return Err("a message larger than 16 MiB".into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let mut used = 0;
        let result = loop {
            match parse(&self.buf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    if let Err(e) = apply(frame, event) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..used);
        result
    }

    fn send_probe(&mut self) -> Result<(), String> {
        // Fences and heartbeats alike: every answer must show a master (see the module docs).
        // 14 bytes on a connection that sends nothing else: a full socket buffer means
        // Redis stopped reading.
        match (&self.socket.reader).write(ROLE) {
            Ok(n) if n == ROLE.len() => Ok(()),
            Ok(_) => Err("probe only partly sent".into()),
            Err(e) => Err(format!("probe: {e}")),
        }
    }

    fn heard_at(&self) -> Instant {
        self.heard_at
    }

    fn route(&self) -> Option<u64> {
        match &self.route {
            Some((route, node)) => route.reaches(node),
            None => Some(0),
        }
    }
}

/// Acts on one frame from the tracking connection: an invalidation, or the answer to a
/// probe. Whether a probe was sent for that answer is the cache's to check, against its own
/// record of the probes sent (`SessionCache::poll`), so one count decides.
fn apply(frame: Frame, event: &mut dyn FnMut(Event<'_>)) -> Result<(), String> {
    if let Frame::Push(items) = frame {
        let mut items = items.into_iter();
        if !matches!(items.next(), Some(Frame::Bulk(kind)) if kind == b"invalidate") {
            return Ok(());
        }
        match items.next() {
            Some(Frame::Array(keys)) => {
                for key in keys {
                    match key {
                        Frame::Bulk(key) | Frame::Simple(key) => {
                            event(Event::Invalidated(Some(&key)))
                        }
                        // Not a key name: treat as "anything may have changed".
                        _ => event(Event::Invalidated(None)),
                    }
                }
            }
            // A null after FLUSHDB / FLUSHALL; anything else is read the same, safely.
            _ => event(Event::Invalidated(None)),
        }
        return Ok(());
    }
    role_is_master(&frame)?;
    event(Event::Answered);
    Ok(())
}

/// `ROLE`'s answer must start with `master`: a replica does not see writes as they happen.
fn role_is_master(frame: &Frame) -> Result<(), String> {
    match frame {
        Frame::Array(items) if matches!(items.first(), Some(Frame::Bulk(r)) if r == b"master") => {
            Ok(())
        }
        Frame::Array(items) => match items.first() {
            Some(Frame::Bulk(role)) => Err(format!("the node is a {}, not a master", lossy(role))),
            _ => Err("ROLE answered something else".into()),
        },
        other => Err(format!("ROLE answered {}", describe(other))),
    }
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The RESP3 values this connection can receive, reduced to what it needs.
#[derive(Debug, PartialEq)]
enum Frame {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Bulk(Vec<u8>),
    Array(Vec<Frame>),
    Push(Vec<Frame>),
    Null,
    /// Numbers, booleans, maps and the like: read past, never acted on.
    Other,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(200).collect()
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Simple(s) | Frame::Error(s) => lossy(s),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

/// One complete frame at the start of `buf` and its length; `None` if `buf` holds only
/// part of one.
fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Frame, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP3 nested too deeply".into());
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err("empty RESP3 line".into());
    };
    let after_line = end + 2;
    let number = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad RESP3 length {:?}", lossy(line)))
    };
    match kind {
        b'+' => Ok(Some((Frame::Simple(line.to_vec()), after_line))),
        b'-' => Ok(Some((Frame::Error(line.to_vec()), after_line))),
        b':' | b'#' | b',' | b'(' => Ok(Some((Frame::Other, after_line))),
        b'_' => Ok(Some((Frame::Null, after_line))),
        b'$' | b'=' | b'!' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Frame::Null, after_line)));
            }
            let len = usize::try_from(len).map_err(|e| e.to_string())?;
            if len > MAX_BUFFERED {
                return Err("RESP3 string larger than 16 MiB".into());
            }
            let total = after_line + len + 2;
            if buf.len() < total {
                return Ok(None);
            }
            if &buf[after_line + len..total] != b"\r\n" {
                return Err("RESP3 string not followed by CRLF".into());
            }
            let data = buf[after_line..after_line + len].to_vec();
            let frame = match kind {
                b'!' => Frame::Error(data),
                _ => Frame::Bulk(data),
            };
            Ok(Some((frame, total)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Frame::Null, after_line)));
            }
            let count = usize::try_from(count).map_err(|e| e.to_string())?;
            let elements = if matches!(kind, b'%' | b'|') {
                count.checked_mul(2).ok_or("RESP3 map too large")?
            } else {
                count
            };
            // Each element takes at least 3 bytes: a count beyond that cannot be complete
            // within the buffer limit.
            if elements > MAX_BUFFERED / 3 {
                return Err("RESP3 aggregate too large".into());
            }
            let mut items = Vec::with_capacity(elements.min(1024));
            let mut at = after_line;
            for _ in 0..elements {
                match parse_at(&buf[at..], depth + 1)? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            let frame = match kind {
                b'*' | b'~' => Frame::Array(items),
                b'>' => Frame::Push(items),
                _ => Frame::Other,
            };
            Ok(Some((frame, at)))
        }
        other => Err(format!("unknown RESP3 type byte {other:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What `bytes` report: `Some(key)`, `None` for a flush, `"answered"` for a probe's
    /// answer.
    fn events(bytes: &[u8]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = parse(&bytes[at..])? {
            at += used;
            apply(frame, &mut |e| {
                out.push(match e {
                    Event::Invalidated(Some(k)) => String::from_utf8(k.to_vec()).unwrap(),
                    Event::Invalidated(None) => "(all)".into(),
                    Event::Answered => "answered".into(),
                })
            })?;
        }
        assert_eq!(at, bytes.len(), "everything was read");
        Ok(out)
    }

    #[test]
    fn invalidations_answers_and_flushes_are_read_in_order() {
        let bytes = b">2\r\n$10\r\ninvalidate\r\n*2\r\n$9\r\nsession:a\r\n$9\r\nsession:b\r\n\
*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
        assert_eq!(
            events(bytes).unwrap(),
            ["session:a", "session:b", "answered", "(all)", "answered"]
        );
    }

    #[test]
    fn answers_must_come_from_a_master() {
        let master = b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
        assert_eq!(events(master).unwrap(), ["answered"]);
        assert!(events(b"+PONG\r\n").is_err(), "not ROLE's answer");
        // A fence answered by a node demoted to a replica proves nothing.
        let replica = b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n";
        let e = events(replica).unwrap_err();
        assert!(e.contains("slave, not a master"), "{e}");
    }

    #[test]
    fn a_frame_split_anywhere_waits_for_the_rest() {
        let bytes = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$9\r\nsession:a\r\n";
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(bytes).unwrap().is_some());
    }

    #[test]
    fn the_hello_reply_is_read_past() {
        // What Redis 7 answers to HELLO 3 (a map with strings, numbers and an empty array).
        let bytes = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:5\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n\
$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n+OK\r\n";
        let (first, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(first, Frame::Other);
        assert_eq!(
            parse(&bytes[used..]).unwrap(),
            Some((Frame::Simple(b"OK".to_vec()), 5))
        );
    }

    #[test]
    fn malformed_or_hostile_input_breaks_the_feed() {
        for bad in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nabcde\r\n",
            b"*99999999999\r\n",
            b"$99999999999\r\n",
            b"\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(parse(deep.as_bytes()).is_err());
        // An error reply or an unexpected value on the tracking connection ends it.
        for frame in [Frame::Error(b"ERR x".to_vec()), Frame::Bulk(b"x".to_vec())] {
            assert!(apply(frame, &mut |_| {}).is_err());
        }
        // Another push kind is ignored.
        let other = Frame::Push(vec![Frame::Bulk(b"message".to_vec())]);
        let ignored = apply(other, &mut |_| panic!("not an invalidation"));
        assert!(ignored.is_ok());
    }

    #[test]
    fn plain_single_nodes_and_sentinel_groups_have_a_feed() {
        let t = target("redis://user:hunter2@127.0.0.1:6380/2", None).unwrap();
        assert_eq!(t.place.to_string(), "127.0.0.1:6380");
        assert_eq!(t.username.as_deref(), Some("user"));
        assert!(!format!("{t:?}").contains("hunter2"));
        let url = "redis+sentinel://app:hunter2@127.0.0.1:26379,127.0.0.1:26380/mymaster/2";
        let t = target(url, Some(Arc::default())).unwrap();
        let Place::Sentinel {
            sentinels, service, ..
        } = &t.place
        else {
            panic!("not a Sentinel target");
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(service, "mymaster");
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("app"), Some("hunter2"))
        );
        assert!(!format!("{t:?}").contains("hunter2"));
        for url in [
            "rediss://127.0.0.1:6380",
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        ] {
            assert!(target(url, None).is_err(), "{url}");
        }
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(command(&["ROLE"]), ROLE);
    }

    /// A scripted Sentinel's connections: how many were made, and those still open.
    #[derive(Default)]
    struct Scripted {
        connections: AtomicUsize,
        open: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    }

    impl Scripted {
        /// Closes every open connection, as a restart does; new ones are still accepted.
        /// Returns once all of them are closed.
        async fn restart(&self) {
            let mut open = self.open.lock().await;
            open.abort_all();
            while open.join_next().await.is_some() {}
        }
    }

    /// A stand-in Sentinel on a free loopback port that names `master` for any `SENTINEL`
    /// command (and answers `+OK` to anything else: the client's `CLIENT SETINFO`), and its
    /// connections.
    async fn scripted_sentinel(master: u16) -> ((String, u16), Arc<Scripted>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let master = master.to_string();
        let named = format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{master}\r\n", master.len());
        let scripted = Arc::new(Scripted::default());
        let counted = scripted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counted.connections.fetch_add(1, Ordering::SeqCst);
                let named = named.clone();
                counted.open.lock().await.spawn(async move {
                    let (mut buf, mut chunk) = (Vec::new(), [0u8; 1024]);
                    while let Ok(n @ 1..) = conn.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Ok(Some((request, used))) = parse(&buf) {
                            buf.drain(..used);
                            let asked = matches!(&request, Frame::Array(args)
                                if matches!(args.first(), Some(Frame::Bulk(c)) if c.eq_ignore_ascii_case(b"SENTINEL")));
                            let answer = if asked { named.as_bytes() } else { b"+OK\r\n" };
                            if conn.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (("127.0.0.1".into(), port), scripted)
    }

    /// A loopback port that refuses connections (a Sentinel that is down) for as long as
    /// the returned socket lives. It is bound but never listens: a connection to it is
    /// refused, and no one else can bind the port meanwhile (no `SO_REUSEADDR`) nor get it
    /// for port 0 or an outgoing connection. A port bound and freed again could be taken by
    /// another process before the test connects.
    fn dead_sentinel() -> ((String, u16), tokio::net::TcpSocket) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        (("127.0.0.1".into(), port), socket)
    }

    fn sentinel_target(sentinels: Vec<(String, u16)>) -> Target {
        Target {
            place: Place::Sentinel {
                sentinels,
                service: "mymaster".into(),
                route: Arc::default(),
            },
            username: None,
            password: None,
        }
    }

    #[tokio::test]
    async fn the_feed_follows_only_a_master_every_answering_sentinel_names() {
        let ((s1, c1), (s2, c2)) = (scripted_sentinel(7001).await, scripted_sentinel(7001).await);
        let (other, _) = scripted_sentinel(7002).await;
        let (dead, _held) = dead_sentinel();
        let refused = tokio::net::TcpStream::connect(&dead).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        let x = ("127.0.0.1".to_string(), 7001);
        let ask = |sentinels: Vec<(String, u16)>| async move {
            let mut conns = vec![None; sentinels.len()];
            ask_master(&sentinels, "mymaster", &mut conns).await
        };
        assert_eq!(ask(vec![s1.clone(), s2.clone()]).await, Ok(x.clone()));
        assert_eq!(ask(vec![s1.clone(), dead.clone()]).await, Ok(x.clone()));
        assert_eq!(ask(vec![dead.clone()]).await, Err(NoMaster::NoneNamed));
        let Err(NoMaster::Disagree(named)) = ask(vec![s1.clone(), other.clone()]).await else {
            panic!("a master two Sentinels disagree on was followed");
        };
        assert_eq!(named.len(), 2);

        // Asked again over the connections kept from the last ask.
        let sentinels = [s1, s2];
        let mut conns = vec![None; 2];
        let count = || {
            let (c1, c2) = (&c1.connections, &c2.connections);
            (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst))
        };
        let before = count();
        for _ in 0..3 {
            let named = ask_master(&sentinels, "mymaster", &mut conns).await;
            assert_eq!(named, Ok(x.clone()));
        }
        let after = count();
        assert_eq!(after, (before.0 + 1, before.1 + 1), "one connection each");
    }

    /// A Sentinel whose kept connection died (it restarted) while it is up is asked again
    /// on a fresh connection in the same round: here the one that names another master,
    /// so the feed must not follow the other's answer alone.
    #[tokio::test]
    async fn a_sentinel_whose_kept_connection_died_is_still_counted() {
        let ((x, _), (y, restarted)) =
            (scripted_sentinel(7001).await, scripted_sentinel(7002).await);
        let sentinels = [x, y];
        let mut conns = vec![None; 2];
        let first = ask_master(&sentinels, "mymaster", &mut conns).await;
        assert!(matches!(first, Err(NoMaster::Disagree(_))), "{first:?}");
        assert!(conns.iter().all(Option::is_some), "both connections kept");

        restarted.restart().await;
        let Err(NoMaster::Disagree(named)) = ask_master(&sentinels, "mymaster", &mut conns).await
        else {
            panic!("the restarted Sentinel was left out of the round");
        };
        assert_eq!(named.len(), 2);
        assert_eq!(
            restarted.connections.load(Ordering::SeqCst),
            2,
            "one fresh connection"
        );
        assert!(conns[1].is_some(), "the fresh connection is kept");
    }

    /// A feed on `X` while one Sentinel names `Y`: dropped at the first ask, not after
    /// [`LIVENESS`] as when no Sentinel answers.
    #[tokio::test]
    async fn the_feed_is_dropped_at_once_when_the_sentinels_disagree() {
        let ((x, _), (y, _)) = (scripted_sentinel(7001).await, scripted_sentinel(7002).await);
        let target = sentinel_target(vec![x, y]);
        let mut conns = vec![None; 2];
        let node = ("127.0.0.1".to_string(), 7001);
        let asked = Instant::now();
        let moved = master_moved(&target, &node, &mut conns);
        let reason = tokio::time::timeout(LIVENESS * 3, moved)
            .await
            .expect("the feed stayed on a master the Sentinels disagree on");
        assert!(reason.contains("do not agree"), "{reason}");
        assert!(
            asked.elapsed() < LIVENESS,
            "dropped only after {:?}",
            asked.elapsed()
        );
    }
}
