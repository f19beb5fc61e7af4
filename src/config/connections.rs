//! `[server]` keys that bound connections (`header_read_timeout`, `request_timeout`, `keep_alive_timeout`,
//! `max_connections`, `max_connections_per_ip`) and `metrics_listen`.

use std::net::SocketAddr;
use std::time::Duration;

use super::ctx::Ctx;
use super::raw::RawServer;
use super::source::KeyPath;

/// How long and how many connections latch keeps; enforced by `server::serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head (request line and headers) must arrive within this, counted from
    /// its first byte (from the accept for a connection's first request).
    pub header_read_timeout: Duration,
    /// A request still in flight this long after it began (a body that trickles in, a
    /// response the client does not read) has its connection closed.
    pub request_timeout: Duration,
    /// A connection with no request in flight and no byte of a new one is closed after this.
    pub keep_alive_timeout: Duration,
    /// Open connections in all; one more is closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); peers in
    /// `server.trusted_proxies` count only towards `max_connections`.
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            // Above a sign-in callback's worst case (discovery, token, JWKS and userinfo
            // calls at the default 10 s provider timeout each).
            request_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_ip: 256,
        }
    }
}

/// Far above what one process can hold open: a larger value is surely a typo.
const MAX_COUNT: i64 = 1_000_000;

pub(crate) fn connections(ctx: &mut Ctx, p: &KeyPath, raw: &RawServer) -> Option<ConnectionLimits> {
    let d = ConnectionLimits::default();
    let header_read_timeout = ctx.duration(
        &p.key("header_read_timeout"),
        raw.header_read_timeout.as_ref(),
        d.header_read_timeout,
    );
    let request_timeout = ctx.duration(
        &p.key("request_timeout"),
        raw.request_timeout.as_ref(),
        d.request_timeout,
    );
    let keep_alive_timeout = ctx.duration(
        &p.key("keep_alive_timeout"),
        raw.keep_alive_timeout.as_ref(),
        d.keep_alive_timeout,
    );
    let mut count = |key: &str, raw: Option<i64>, default: usize| -> Option<usize> {
        let Some(n) = raw else { return Some(default) };
        if (1..=MAX_COUNT).contains(&n) {
            Some(n as usize)
        } else {
            ctx.err(
                &p.key(key),
                format!("must be a whole number from 1 to {MAX_COUNT} (got {n})"),
            );
            None
        }
    };
    let max_connections = count("max_connections", raw.max_connections, d.max_connections);
    let max_connections_per_ip = count(
        "max_connections_per_ip",
        raw.max_connections_per_ip,
        d.max_connections_per_ip,
    );
    let (max_connections, max_connections_per_ip) = (max_connections?, max_connections_per_ip?);
    if max_connections_per_ip > max_connections {
        ctx.err(
            &p.key("max_connections_per_ip"),
            format!("must not be larger than server.max_connections ({max_connections})"),
        );
        return None;
    }
    Some(ConnectionLimits {
        header_read_timeout: header_read_timeout?,
        request_timeout: request_timeout?,
        keep_alive_timeout: keep_alive_timeout?,
        max_connections,
        max_connections_per_ip,
    })
}

/// `server.metrics_listen`: a socket address other than `listen`; `""` or absent: none.
pub(crate) fn metrics_listen(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: Option<&str>,
    listen: Option<&str>,
) -> Option<Option<SocketAddr>> {
    let Some(v) = ctx.opt_string(path, raw)? else {
        return Some(None);
    };
    if v.is_empty() {
        return Some(None);
    }
    let Ok(addr) = v.parse::<SocketAddr>() else {
        ctx.err(
            path,
            format!("\"{v}\" is not a socket address: expected IP:port, e.g. \"127.0.0.1:9090\""),
        );
        return None;
    };
    let same = listen
        .and_then(|l| l.parse::<SocketAddr>().ok())
        .is_some_and(|l| l == addr && addr.port() != 0);
    if same {
        ctx.err(
            path,
            format!("\"{v}\" is server.listen itself: give /metrics its own address"),
        );
        return None;
    }
    Some(Some(addr))
}
