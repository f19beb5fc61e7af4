//! `[limits]` (per-client request rates) and `server.trusted_proxies` (IP networks).

use std::net::IpAddr;
use std::time::Duration;

use super::ctx::Ctx;
use super::duration::parse_duration;
use super::raw::RawLimits;
use super::source::KeyPath;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `"192.0.2.7"` (one address) or `"10.0.0.0/8"`, `"fd00::/8"`.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let t = s.trim();
        let (ip, prefix) = match t.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (t, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| {
            format!("\"{s}\" is not an IP address or network (e.g. \"10.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("\"{s}\": the prefix length must be 0 to {max}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }

    /// Is `ip` inside this network? IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A request rate: at most `count` requests per `per`, in bursts of up to `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `"30/min"`, `"5/s"`, `"1000/h"`, `"10/15m"`; `"off"` gives `None`.
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let help = "expected \"<count>/<period>\" such as \"30/min\", \"5/s\", \"1000/h\", \"10/15m\", or \"off\"";
        let Some((count, per)) = t.split_once('/') else {
            return Err(format!("invalid rate \"{s}\": {help}"));
        };
        let count: u32 = match count.trim().parse() {
            Ok(0) => {
                return Err(format!(
                    "invalid rate \"{s}\": the count must be at least 1 (use \"off\" to disable)"
                ))
            }
            Ok(n) => n,
            Err(_) => return Err(format!("invalid rate \"{s}\": {help}")),
        };
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => match parse_duration(other) {
                Ok(d) if !d.is_zero() => d,
                _ => return Err(format!("invalid rate \"{s}\": {help}")),
            },
        };
        Ok(Some(Rate { count, per }))
    }
}

/// `[limits]`: per-client-IP request rates per route class; `None` is no limit.
/// Counted in each latch process (not shared between instances).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `GET`/`POST /signin/<provider>`.
    pub signin: Option<Rate>,
    /// `/callback/<provider>`.
    pub callback: Option<Rate>,
    /// `POST /token`.
    pub token: Option<Rate>,
    /// `POST /refresh`.
    pub refresh: Option<Rate>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            signin: Some(Rate::per_minute(30)),
            callback: Some(Rate::per_minute(30)),
            token: Some(Rate::per_minute(60)),
            refresh: Some(Rate::per_minute(60)),
        }
    }
}

pub(crate) fn limits(ctx: &mut Ctx, raw: RawLimits) -> Option<LimitsConfig> {
    let p = KeyPath::new(&["limits"]);
    let d = LimitsConfig::default();
    let mut one = |key: &str, raw: Option<&str>, default: Option<Rate>| -> Option<Option<Rate>> {
        let Some(raw) = raw else {
            return Some(default);
        };
        let path = p.key(key);
        let s = ctx.string(&path, raw)?;
        match Rate::parse(&s) {
            Ok(r) => Some(r),
            Err(e) => {
                ctx.err(&path, e);
                None
            }
        }
    };
    let signin = one("signin", raw.signin.as_deref(), d.signin);
    let callback = one("callback", raw.callback.as_deref(), d.callback);
    let token = one("token", raw.token.as_deref(), d.token);
    let refresh = one("refresh", raw.refresh.as_deref(), d.refresh);
    Some(LimitsConfig {
        signin: signin?,
        callback: callback?,
        token: token?,
        refresh: refresh?,
    })
}

/// `server.trusted_proxies`: every element an IP address or network.
pub(crate) fn trusted_proxies(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: Option<&[String]>,
) -> Option<Vec<IpNet>> {
    let list = ctx.strings(path, raw)?.unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        match IpNet::parse(s) {
            Ok(n) => out.push(n),
            Err(e) => {
                ctx.err(&path.index(i), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
