//! Redis backends: one node, Sentinel, Cluster.
//!
//! * `redis://[user:pass@]host:port[/db]` and `rediss://...` (TLS, rustls): one node through
//!   [`ConnectionManager`], which reconnects by itself after an outage.
//! * `redis+sentinel://[user:pass@]host:port[,host:port...]/<service_name>[/db]`: the hosts are
//!   the Sentinels (default port 26379); the credentials and `db` are for the master that the
//!   Sentinels name for `<service_name>`. The master is looked up again after any connection
//!   error or a `READONLY` reply (a failover), and when the Sentinels, asked at most once a
//!   second, name another node. While they list a live replica, writes `WAIT` for one.
//! * `redis+cluster://[user:pass@]host:port[,host:port...]` and `rediss+cluster://...`: seed
//!   nodes of a Redis Cluster. Every operation touches one key, so no hash tags are needed;
//!   [`Store::keys_with_prefix`] scans every master.
//!
//! No connection is made when the store is opened. Each operation is bounded by
//! [`OP_TIMEOUT`] and reports [`StoreError::Unavailable`] while Redis cannot be reached; a lost
//! connection is re-established on a later call (attempts at most every [`RETRY_PAUSE`]).

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};
use tokio::sync::Mutex;

use super::{redact_url, ttl_millis, Store, StoreError};

/// Time allowed to open a TCP connection to a Redis node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one reply.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound for a whole store operation, connection included.
pub const OP_TIMEOUT: Duration = Duration::from_millis(2500);
/// Minimum pause between two failed connection attempts (Sentinel, Cluster).
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

const SCAN_COUNT: usize = 1000;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// SADD then (re)set the whole set's expiry, atomically and on one key (cluster-safe).
const SET_ADD_TTL_SCRIPT: &str =
    "redis.call('SADD', KEYS[1], ARGV[1]) return redis.call('PEXPIRE', KEYS[1], ARGV[2])";

/// Compare-and-delete on one key: only the holder of the expected value deletes it.
const DELETE_IF_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// GCRA on one key, on Redis's clock (`TIME`), so instances with skewed clocks agree. The
/// key holds the theoretical arrival time (ms); the answer is 0 (allowed) or the ms to wait.
const RATE_LIMIT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then return tat - now - tolerance end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', new - now)
return 0
"#;

/// Longest wait for a replica to acknowledge a write (`WAIT 1 <ms>`).
pub const WAIT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the Sentinels' view (master, live replicas) is trusted before they are asked again.
const REPLICAS_TTL: Duration = Duration::from_secs(1);

/// [`Store`] on Redis (single node, Sentinel or Cluster).
pub struct RedisStore {
    backend: Backend,
}

enum Backend {
    Single(ConnectionManager),
    Sentinel(Sentinel),
    Cluster(Cluster),
}

struct Sentinel {
    state: Mutex<SentinelState>,
    /// The Sentinels' addresses and the group name, to ask them for their view.
    sentinels: Vec<(String, u16)>,
    service: String,
    /// One caller at a time asks the Sentinels for their view; the others use the last one,
    /// or wait for this answer when there is none to use.
    asking: Mutex<()>,
    view: std::sync::Mutex<SentinelView>,
}

/// What the Sentinels said when last asked.
#[derive(Default)]
struct SentinelView {
    /// The master they named and how many live replicas it has: a connection to any other
    /// node is dropped, and writes must reach that many replicas. `None` until one answers.
    named: Option<((String, u16), u64)>,
    /// When they were last asked; `None` after a write no replica confirmed, so the next
    /// write waits for a fresh answer instead of trusting the old one.
    asked: Option<Instant>,
}

impl Sentinel {
    fn view(&self) -> std::sync::MutexGuard<'_, SentinelView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn named_master(&self) -> Option<(String, u16)> {
        self.view().named.as_ref().map(|(m, _)| m.clone())
    }

    /// Does `master` match what the Sentinels last named (or have they not answered yet)?
    fn agrees(&self, master: &Option<(String, u16)>) -> bool {
        match &self.view().named {
            Some((named, _)) => master.as_ref() == Some(named),
            None => true,
        }
    }
}

struct SentinelState {
    client: SentinelClient,
    conn: Option<MultiplexedConnection>,
    failed: Option<(Instant, StoreError)>,
    /// The node `conn` is connected to.
    master: Option<(String, u16)>,
}

struct Cluster {
    client: ClusterClient,
    state: Mutex<ClusterState>,
}

struct ClusterState {
    conn: Option<ClusterConnection>,
    failed: Option<(Instant, StoreError)>,
}

/// Any of the connection kinds, so commands are written once.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Mux(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Mux(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Mux(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Mux(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Is this error "cannot reach Redis now" rather than a refusal of the request?
fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ReadOnly
                )
        )
}

/// An error while establishing a connection: Unavailable unless Redis refused the credentials
/// (a configuration mistake).
fn map_connect_err(what: &str, e: RedisError) -> StoreError {
    if e.kind() == ErrorKind::AuthenticationFailed {
        StoreError::Backend(format!("{what}: {e}"))
    } else {
        StoreError::Unavailable(format!("{what}: {e}"))
    }
}

fn map_err(e: RedisError) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Backend(format!("redis: {e}"))
    }
}

fn conn_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}

fn invalid(msg: String) -> StoreError {
    StoreError::Backend(msg)
}

/// A minimal percent-decoder for URL user info and names.
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `user:pass@h1:p1,h2:p2/rest` -> (username, password, [(host, port)], rest).
type Parsed = (Option<String>, Option<String>, Vec<(String, u16)>, String);

fn parse_multi_host(rest: &str, default_port: u16, url: &str) -> Result<Parsed, StoreError> {
    // The user info ends at the last '@' (a password may hold '/', '?' or '#'; a host list
    // or service name never holds '@'), the same rule as `redact_url`.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (hosts, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (mut user, mut pass) = (None, None);
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((n, p)) => {
                if !n.is_empty() {
                    user = Some(percent_decode(n));
                }
                pass = Some(percent_decode(p));
            }
            None if !u.is_empty() => pass = Some(percent_decode(u)),
            None => {}
        }
    }
    let mut nodes = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        let (host, port) = if let Some(r) = h.strip_prefix('[') {
            let (host, after) = r.split_once(']').ok_or_else(|| {
                invalid(format!(
                    "bad IPv6 host {h:?} in store URL {}",
                    redact_url(url)
                ))
            })?;
            (host, after.strip_prefix(':'))
        } else {
            match h.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (h, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| invalid(format!("bad port {p:?} in store URL {}", redact_url(url))))?,
            None => default_port,
        };
        if host.is_empty() {
            return Err(invalid(format!(
                "empty host in store URL {}",
                redact_url(url)
            )));
        }
        nodes.push((host.to_string(), port));
    }
    if nodes.is_empty() {
        return Err(invalid(format!("no host in store URL {}", redact_url(url))));
    }
    Ok((user, pass, nodes, path.to_string()))
}

/// What a Redis store URL names. [`parse_url`] is the one parser: configuration validation
/// ([`check_url`]) and [`RedisStore::open`] both use it.
enum RedisUrl {
    Single(redis::ConnectionInfo),
    Sentinel(SentinelUrl),
    Cluster(ClusterUrl),
}

struct SentinelUrl {
    user: Option<String>,
    pass: Option<String>,
    sentinels: Vec<(String, u16)>,
    service: String,
    db: Option<i64>,
}

struct ClusterUrl {
    user: Option<String>,
    pass: Option<String>,
    seeds: Vec<(String, u16)>,
    node_scheme: &'static str,
}

/// Parses a `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` or
/// `rediss+cluster://` URL. Messages name the URL only through `redact_url`.
fn parse_url(url: &str) -> Result<RedisUrl, StoreError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid(format!("not a URL: {}", redact_url(url))))?;
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" => redis::IntoConnectionInfo::into_connection_info(url)
            .map(RedisUrl::Single)
            .map_err(|e| invalid(format!("bad Redis URL {}: {e}", redact_url(url)))),
        "redis+sentinel" => parse_sentinel(rest, url).map(RedisUrl::Sentinel),
        "redis+cluster" => parse_cluster(rest, url, "redis").map(RedisUrl::Cluster),
        "rediss+cluster" => parse_cluster(rest, url, "rediss").map(RedisUrl::Cluster),
        other => Err(invalid(format!("not a Redis URL scheme: {other}://"))),
    }
}

fn parse_sentinel(rest: &str, url: &str) -> Result<SentinelUrl, StoreError> {
    let (user, pass, sentinels, path) = parse_multi_host(rest, DEFAULT_SENTINEL_PORT, url)?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let service = parts.next().ok_or_else(|| {
        invalid(format!(
            "Sentinel URL needs a service name: redis+sentinel://host:port[,host:port]/<service_name>[/db], got {}",
            redact_url(url)
        ))
    })?;
    let db = match parts.next() {
        Some(d) => Some(
            d.parse::<i64>()
                .map_err(|_| invalid(format!("bad db {d:?} in store URL {}", redact_url(url))))?,
        ),
        None => None,
    };
    if parts.next().is_some() {
        return Err(invalid(format!(
            "too many path segments in store URL {} (expected /<service_name>[/db])",
            redact_url(url)
        )));
    }
    Ok(SentinelUrl {
        user,
        pass,
        sentinels,
        service: percent_decode(service),
        db,
    })
}

fn parse_cluster(
    rest: &str,
    url: &str,
    node_scheme: &'static str,
) -> Result<ClusterUrl, StoreError> {
    let (user, pass, seeds, path) = parse_multi_host(rest, 6379, url)?;
    // Redis Cluster has only database 0.
    if !path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .is_empty()
    {
        return Err(invalid(format!(
            "a Redis Cluster URL has no path (Cluster has only db 0): {}",
            redact_url(url)
        )));
    }
    Ok(ClusterUrl {
        user,
        pass,
        seeds,
        node_scheme,
    })
}

/// Validates a Redis store URL without connecting (for configuration checks).
pub(crate) fn check_url(url: &str) -> Result<(), StoreError> {
    parse_url(url).map(drop)
}

impl RedisStore {
    /// Parses `url` and prepares the client; connects lazily (see the module docs).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let backend = match parse_url(url)? {
            RedisUrl::Single(info) => Backend::Single(Self::single(info)?),
            RedisUrl::Sentinel(s) => Backend::Sentinel(Self::sentinel(s)?),
            RedisUrl::Cluster(c) => Backend::Cluster(Self::cluster(c)?),
        };
        let store = Self { backend };
        tracing::debug!(backend = store.backend(), url = %redact_url(url), "store opened");
        Ok(store)
    }

    fn single(info: redis::ConnectionInfo) -> Result<ConnectionManager, StoreError> {
        let client =
            redis::Client::open(info).map_err(|e| invalid(format!("Redis client: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // Few, short retries: a call must fail fast while Redis is down; the manager
            // starts a new attempt after each failure anyway.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| invalid(format!("Redis client: {e}")))
    }

    fn sentinel(u: SentinelUrl) -> Result<Sentinel, StoreError> {
        let (sentinels, service) = (u.sentinels.clone(), u.service.clone());
        let addrs = u
            .sentinels
            .into_iter()
            .map(|(h, p)| ConnectionAddr::Tcp(h, p));
        let mut b = SentinelClientBuilder::new(addrs, u.service, SentinelServerType::Master)
            .map_err(|e| invalid(format!("Sentinel client: {e}")))?;
        if let Some(db) = u.db {
            b = b.set_client_to_redis_db(db);
        }
        if let Some(user) = u.user {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(p) = u.pass {
            b = b.set_client_to_redis_password(p);
        }
        let client = b
            .build()
            .map_err(|e| invalid(format!("Sentinel client: {e}")))?;
        Ok(Sentinel {
            state: Mutex::new(SentinelState {
                client,
                conn: None,
                failed: None,
                master: None,
            }),
            sentinels,
            service,
            asking: Mutex::new(()),
            view: std::sync::Mutex::new(SentinelView::default()),
        })
    }

    fn cluster(u: ClusterUrl) -> Result<Cluster, StoreError> {
        let node_scheme = u.node_scheme;
        let seeds: Vec<String> = u
            .seeds
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("{node_scheme}://[{h}]:{p}")
                } else {
                    format!("{node_scheme}://{h}:{p}")
                }
            })
            .collect();
        let mut b = ClusterClient::builder(seeds)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .overall_response_timeout(Some(OP_TIMEOUT))
            .retries(3);
        if let Some(user) = u.user {
            b = b.username(user);
        }
        if let Some(p) = u.pass {
            b = b.password(p);
        }
        let client = b
            .build()
            .map_err(|e| invalid(format!("Cluster client: {e}")))?;
        Ok(Cluster {
            client,
            state: Mutex::new(ClusterState {
                conn: None,
                failed: None,
            }),
        })
    }

    /// A connection to use for one operation (connecting now if needed).
    async fn conn(&self) -> Result<Conn, StoreError> {
        match &self.backend {
            Backend::Single(m) => Ok(Conn::Manager(m.clone())),
            Backend::Sentinel(s) => {
                let mut st = s.state.lock().await;
                if st.conn.is_some() && !s.agrees(&st.master) {
                    // After a failover the old master answers, with stale data, until the
                    // Sentinels reconfigure it (10 s or more).
                    tracing::info!("redis sentinel: the master moved; reconnecting");
                    st.conn = None;
                }
                if let Some(c) = &st.conn {
                    return Ok(Conn::Mux(c.clone()));
                }
                check_pause(&st.failed)?;
                let named = s.named_master();
                let res = async {
                    let mut client = st.client.async_get_client().await?;
                    // A Sentinel that has not heard of the latest failover still names the
                    // old master: go to the one the latest view names, same credentials.
                    if let Some((host, port)) = named {
                        if !matches!(client.get_connection_info().addr(),
                            ConnectionAddr::Tcp(h, p) if *h == host && *p == port)
                        {
                            let info = client
                                .get_connection_info()
                                .clone()
                                .set_addr(ConnectionAddr::Tcp(host, port));
                            client = redis::Client::open(info)?;
                        }
                    }
                    let master = match client.get_connection_info().addr() {
                        ConnectionAddr::Tcp(h, p)
                        | ConnectionAddr::TcpTls {
                            host: h, port: p, ..
                        } => Some((h.clone(), *p)),
                        _ => None,
                    };
                    client
                        .get_multiplexed_async_connection_with_config(&conn_config())
                        .await
                        .map(|c| (c, master))
                }
                .await;
                match res {
                    Ok((_, master)) if !s.agrees(&master) => {
                        // A Sentinel that has not yet learned of a failover named the old
                        // master: wait for them to agree.
                        let err = StoreError::Unavailable(
                            "redis sentinel: the Sentinels do not agree on the master yet".into(),
                        );
                        st.failed = Some((Instant::now(), clone_err(&err)));
                        Err(err)
                    }
                    Ok((c, master)) => {
                        st.failed = None;
                        st.master = master;
                        st.conn = Some(c.clone());
                        Ok(Conn::Mux(c))
                    }
                    Err(e) => {
                        let err = map_connect_err("redis sentinel", e);
                        st.failed = Some((Instant::now(), clone_err(&err)));
                        Err(err)
                    }
                }
            }
            Backend::Cluster(cl) => {
                let mut st = cl.state.lock().await;
                if let Some(c) = &st.conn {
                    return Ok(Conn::Cluster(c.clone()));
                }
                check_pause(&st.failed)?;
                match cl.client.get_async_connection().await {
                    Ok(c) => {
                        st.failed = None;
                        st.conn = Some(c.clone());
                        Ok(Conn::Cluster(c))
                    }
                    Err(e) => {
                        let err = map_connect_err("redis cluster", e);
                        st.failed = Some((Instant::now(), clone_err(&err)));
                        Err(err)
                    }
                }
            }
        }
    }

    /// Forgets a Sentinel connection that failed, so the master is looked up again.
    async fn note_error(&self, e: &RedisError) {
        if let Backend::Sentinel(s) = &self.backend {
            if is_unavailable(e) || e.is_unrecoverable_error() {
                s.state.lock().await.conn = None;
            }
        }
    }

    /// Runs one operation with a connection, bounded by [`OP_TIMEOUT`].
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let op = async {
            if let Backend::Sentinel(s) = &self.backend {
                self.refresh_sentinel_view(s).await;
            }
            let conn = self.conn().await?;
            match f(conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.note_error(&e).await;
                    Err(map_err(e))
                }
            }
        };
        match tokio::time::timeout(OP_TIMEOUT, op).await {
            Ok(r) => r,
            Err(_) => {
                if let Backend::Sentinel(s) = &self.backend {
                    if let Ok(mut st) = s.state.try_lock() {
                        st.conn = None;
                    }
                }
                Err(StoreError::Unavailable(format!(
                    "redis: no answer within {} ms",
                    OP_TIMEOUT.as_millis()
                )))
            }
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// Runs a write. On a Sentinel master that has replicas, the write is followed on the
    /// same connection by `WAIT 1`, so what latch acknowledges (a new session, a spent code,
    /// a sign-out) is on a replica too and survives a failover; if no replica confirms within
    /// [`WAIT_TIMEOUT`] the write reports Unavailable. Without live replicas nothing is
    /// waited for; single nodes (where failover is not automatic) and Cluster writes never
    /// are.
    async fn write<T: redis::FromRedisValue>(&self, cmd: Cmd) -> Result<T, StoreError> {
        let Backend::Sentinel(s) = &self.backend else {
            return self.query(cmd).await;
        };
        if self.replica_count(s).await? == 0 {
            return self.query(cmd).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd)
            .cmd("WAIT")
            .arg(1)
            .arg(u64::try_from(WAIT_TIMEOUT.as_millis()).unwrap_or(500));
        let (value, acked): (T, u64) = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        if acked == 0 {
            // Not confirmed by a replica: the write may be lost in a failover (or was made on
            // a master that is being demoted), so it is not acknowledged. The next write
            // waits for the Sentinels' answer (a replica that went away stops the waiting; a
            // new master is connected to) and this connection is not used again.
            s.view().asked = None;
            s.state.lock().await.conn = None;
            tracing::warn!(
                timeout_ms = WAIT_TIMEOUT.as_millis() as u64,
                "redis: no replica acknowledged a write in time"
            );
            return Err(StoreError::Unavailable(format!(
                "redis: no replica acknowledged the write within {} ms",
                WAIT_TIMEOUT.as_millis()
            )));
        }
        Ok(value)
    }

    /// How many replicas a write must reach: the live replicas the Sentinels list for the
    /// master they name (see [`RedisStore::refresh_sentinel_view`]), never the master's own
    /// count: a master whose replica was just promoted has no replica left and still answers
    /// as a master, yet what it accepts now is lost when it is demoted. Only while no
    /// Sentinel has ever answered, the master's `connected_slaves`.
    async fn replica_count(&self, s: &Sentinel) -> Result<u64, StoreError> {
        self.refresh_sentinel_view(s).await;
        if let Some((_, n)) = s.view().named {
            return Ok(n);
        }
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        let info: String = self.query(cmd).await?;
        Ok(connected_replicas(&info))
    }

    /// At most once per [`REPLICAS_TTL`] (and by one caller at a time), asks the Sentinels
    /// which node is the master and how many live replicas it has. `conn`
    /// keeps no connection to another node: after a failover the old master keeps
    /// answering, with stale data, until the Sentinels reconfigure it (10 s or more), so a
    /// session signed out on the new master could still read as valid there, and a write
    /// made there is lost. While an answer is due and none is usable (none yet, or a write
    /// went unconfirmed), callers wait for the one asking rather than guess.
    async fn refresh_sentinel_view(&self, s: &Sentinel) {
        let fresh = |v: &SentinelView| matches!(v.asked, Some(at) if at.elapsed() < REPLICAS_TTL);
        let usable = {
            let v = s.view();
            if fresh(&v) {
                return;
            }
            v.asked.is_some() && v.named.is_some()
        };
        let _asking = if usable {
            match s.asking.try_lock() {
                Ok(guard) => guard,
                // Someone is asking; the last answer serves meanwhile.
                Err(_) => return,
            }
        } else {
            let guard = s.asking.lock().await;
            if fresh(&s.view()) {
                return;
            }
            guard
        };
        let answer = ask_sentinels(s).await;
        let mut v = s.view();
        // Not asked again for a while even when none answered (each try costs a timeout).
        v.asked = Some(Instant::now());
        if answer.is_some() {
            v.named = answer;
        }
    }
}

/// The master of the group as named by the answering Sentinel with the highest
/// `config-epoch` (the latest failover wins over a Sentinel that has not heard of it), and
/// the number of its replicas that Sentinel does not see as down or disconnected; `None` if
/// no Sentinel answers within [`RESPONSE_TIMEOUT`].
async fn ask_sentinels(s: &Sentinel) -> Option<((String, u16), u64)> {
    type Map = std::collections::HashMap<String, String>;
    let mut best: Option<(u64, (String, u16), u64)> = None;
    for (host, port) in &s.sentinels {
        let ask = async {
            let client = redis::Client::open((host.clone(), *port))?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&conn_config())
                .await?;
            redis::pipe()
                .cmd("SENTINEL")
                .arg("MASTER")
                .arg(&s.service)
                .cmd("SENTINEL")
                .arg("REPLICAS")
                .arg(&s.service)
                .query_async::<(Map, Vec<Map>)>(&mut conn)
                .await
        };
        let Ok(Ok((master, replicas))) = tokio::time::timeout(RESPONSE_TIMEOUT, ask).await else {
            continue;
        };
        let (Some(ip), Some(Ok(mport))) = (
            master.get("ip").cloned(),
            master.get("port").map(|p| p.parse::<u16>()),
        ) else {
            continue;
        };
        let epoch = master
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let live = replicas
            .iter()
            .filter(|r| {
                let flags = r.get("flags").map(String::as_str).unwrap_or("");
                !flags
                    .split(',')
                    .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
            })
            .count() as u64;
        if best.as_ref().is_none_or(|(e, _, _)| epoch > *e) {
            best = Some((epoch, (ip, mport), live));
        }
    }
    best.map(|(_, master, live)| (master, live))
}

/// `connected_slaves:<n>` of an `INFO replication` reply (0 if absent, e.g. on a replica).
fn connected_replicas(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
    }
}

/// Within [`RETRY_PAUSE`] of a failed connection attempt, repeat its error without retrying.
fn check_pause(failed: &Option<(Instant, StoreError)>) -> Result<(), StoreError> {
    match failed {
        Some((at, e)) if at.elapsed() < RETRY_PAUSE => Err(clone_err(e)),
        _ => Ok(()),
    }
}

/// `prefix` with Redis glob characters escaped, followed by `*`.
fn glob_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    for ch in prefix.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('*');
    p
}

/// SCAN one node (or, for a cluster, the node at `addr`) to the end.
async fn scan_node(
    conn: &mut Conn,
    pattern: &str,
    addr: Option<&(String, u16)>,
    out: &mut HashSet<String>,
) -> RedisResult<()> {
    let mut cursor = String::from("0");
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(&cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let value = match (&mut *conn, addr) {
            (Conn::Cluster(c), Some((host, port))) => {
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    }),
                )
                .await?
            }
            (c, _) => cmd.query_async::<Value>(c).await?,
        };
        let (next, keys): (String, Vec<String>) = redis::from_redis_value(value)?;
        out.extend(keys);
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// The reachable masters of a cluster, from `CLUSTER NODES`.
async fn cluster_masters(conn: &mut Conn) -> RedisResult<Vec<(String, u16)>> {
    let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
    let mut masters = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let flags: Vec<&str> = f[2].split(',').collect();
        if !flags.contains(&"master") || flags.contains(&"noaddr") {
            continue;
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split('@').next().unwrap_or("");
        if let Some((host, port)) = addr.rsplit_once(':') {
            if let Ok(port) = port.parse::<u16>() {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if !host.is_empty() {
                    masters.push((host.to_string(), port));
                }
            }
        }
    }
    Ok(masters)
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Single(_) => "redis",
            Backend::Sentinel(_) => "redis-sentinel",
            Backend::Cluster(_) => "redis-cluster",
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.query(cmd).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        self.write::<Value>(cmd).await.map(drop)
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        let v: Value = self.write(cmd).await?;
        Ok(!matches!(v, Value::Nil))
    }

    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("XX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        let v: Value = self.write(cmd).await?;
        Ok(!matches!(v, Value::Nil))
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DELETE_IF_SCRIPT).arg(1).arg(key).arg(expected);
        Ok(self.write::<i64>(cmd).await? > 0)
    }

    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RATE_LIMIT_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(ttl_millis(interval))
            .arg(u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX));
        // Not `write`: a counter lost in a failover only forgives a few requests.
        let wait: u64 = self.query(cmd).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(key);
        self.write(cmd).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        Ok(self.write::<i64>(cmd).await? > 0)
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(key).arg(ttl_millis(ttl));
        Ok(self.write::<i64>(cmd).await? > 0)
    }

    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let cmd = match ttl {
            Some(ttl) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(SET_ADD_TTL_SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(member)
                    .arg(ttl_millis(ttl));
                cmd
            }
            None => {
                let mut cmd = redis::cmd("SADD");
                cmd.arg(key).arg(member);
                cmd
            }
        };
        self.write::<Value>(cmd).await.map(drop)
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(key).arg(member);
        self.write::<Value>(cmd).await.map(drop)
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(key);
        self.query(cmd).await
    }

    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = glob_prefix(prefix);
        let is_cluster = matches!(self.backend, Backend::Cluster(_));
        let keys = self
            .run(|mut c| async move {
                let mut out = HashSet::new();
                if is_cluster {
                    for addr in cluster_masters(&mut c).await? {
                        scan_node(&mut c, &pattern, Some(&addr), &mut out).await?;
                    }
                } else {
                    scan_node(&mut c, &pattern, None, &mut out).await?;
                }
                Ok(out)
            })
            .await?;
        Ok(keys.into_iter().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query::<Value>(redis::cmd("PING")).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escaping() {
        assert_eq!(glob_prefix("session:"), "session:*");
        assert_eq!(glob_prefix("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }

    #[test]
    fn multi_host_urls() {
        let (u, p, nodes, path) =
            parse_multi_host("us%40r:p%3Ass@h1:1,h2,[::1]:3/mymaster/2", 26379, "x").unwrap();
        assert_eq!(u.as_deref(), Some("us@r"));
        assert_eq!(p.as_deref(), Some("p:ss"));
        assert_eq!(
            nodes,
            vec![
                ("h1".to_string(), 1),
                ("h2".to_string(), 26379),
                ("::1".to_string(), 3)
            ]
        );
        assert_eq!(path, "/mymaster/2");
        assert!(parse_multi_host("h:notaport", 1, "x").is_err());
        assert!(parse_multi_host("/svc", 1, "x").is_err());
    }

    #[test]
    fn sentinel_url_needs_service() {
        assert!(parse_url("redis+sentinel://h:26379").is_err());
    }

    #[test]
    fn replica_count_from_info() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=x\r\n";
        assert_eq!(connected_replicas(info), 2);
        assert_eq!(connected_replicas("role:slave\r\n"), 0);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
