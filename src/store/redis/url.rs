//! Parsing the Redis URL forms (see the parent module) into connection settings; a
//! password never reaches an error message.

use super::*;

pub(super) fn invalid(msg: String) -> StoreError {
    StoreError::Backend(msg)
}

/// A minimal percent-decoder for URL user info and names.
pub(super) fn percent_decode(s: &str) -> String {
    pub(super) fn hex(b: u8) -> Option<u8> {
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
pub(super) type Parsed = (Option<String>, Option<String>, Vec<(String, u16)>, String);

pub(super) fn parse_multi_host(
    rest: &str,
    default_port: u16,
    url: &str,
) -> Result<Parsed, StoreError> {
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
pub(super) enum RedisUrl {
    Single(redis::ConnectionInfo),
    Sentinel(SentinelUrl),
    Cluster(ClusterUrl),
}

pub(super) struct SentinelUrl {
    pub(super) user: Option<String>,
    pub(super) pass: Option<String>,
    pub(super) sentinels: Vec<(String, u16)>,
    pub(super) service: String,
    pub(super) db: Option<i64>,
}

pub(super) struct ClusterUrl {
    pub(super) user: Option<String>,
    pub(super) pass: Option<String>,
    pub(super) seeds: Vec<(String, u16)>,
    pub(super) node_scheme: &'static str,
}

/// Parses a `redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://` or
/// `rediss+cluster://` URL. Messages name the URL only through `redact_url`.
pub(super) fn parse_url(url: &str) -> Result<RedisUrl, StoreError> {
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

pub(super) fn parse_sentinel(rest: &str, url: &str) -> Result<SentinelUrl, StoreError> {
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

pub(super) fn parse_cluster(
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
