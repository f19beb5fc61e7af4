//! The [`Store`] operations as Redis commands, on whichever backend the URL chose.

use super::*;

/// `prefix` with Redis glob characters escaped, followed by `*`.
pub(super) fn glob_prefix(prefix: &str) -> String {
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
pub(super) async fn scan_node(
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
pub(super) async fn cluster_masters(conn: &mut Conn) -> RedisResult<Vec<(String, u16)>> {
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

/// `SET key value [NX|XX] [PX ttl]`: `condition` is `NX` (only if absent) or `XX` (only if
/// present); a set that answers Nil did not write.
fn set(key: &str, value: &[u8], ttl: Option<Duration>, condition: Option<&str>) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if let Some(condition) = condition {
        cmd.arg(condition);
    }
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_millis(ttl));
    }
    cmd
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
        self.write::<Value>(set(key, value, ttl, None))
            .await
            .map(drop)
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let v: Value = self.write(set(key, value, ttl, Some("NX"))).await?;
        Ok(!matches!(v, Value::Nil))
    }

    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let v: Value = self.write(set(key, value, ttl, Some("XX"))).await?;
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
