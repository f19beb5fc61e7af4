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

mod commands;
mod sentinel;
pub(super) mod tracking;
mod url;

#[cfg(test)]
use self::commands::*;
use self::sentinel::*;
pub(crate) use self::url::check_url;
use self::url::*;

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

    /// Where a Sentinel store's reads go, for the session cache's feed (`None` on other
    /// backends, whose node does not change under them).
    pub(in crate::store) fn route(&self) -> Option<std::sync::Arc<Route>> {
        match &self.backend {
            Backend::Sentinel(s) => Some(s.route.clone()),
            _ => None,
        }
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
            route: std::sync::Arc::default(),
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
                        s.route.moved(master.clone());
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
        let required = tokio::time::timeout(OP_TIMEOUT, self.replica_count(s))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "redis sentinel: no view of the replicas within {} ms",
                    OP_TIMEOUT.as_millis()
                ))
            })??;
        if required == 0 {
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
    /// as a master, yet what it accepts now is lost when it is demoted. While no Sentinel
    /// has answered, one: a write is acknowledged only once a replica has it (with no
    /// replica at all, writes wait for the Sentinels to answer).
    async fn replica_count(&self, s: &Sentinel) -> Result<u64, StoreError> {
        self.refresh_sentinel_view(s).await;
        Ok(s.view().named.as_ref().map_or(1, |(_, n)| *n))
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
            // Bounded: a caller asking for a dead Sentinel set must not hold up every other
            // request for longer than one ask.
            let Ok(guard) = tokio::time::timeout(ASK_TIMEOUT * 2, s.asking.lock()).await else {
                return;
            };
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
    fn decoding() {
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
