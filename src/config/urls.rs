//! The URLs a provider table names (issuers, endpoints): https, or http on a loopback host
//! (a provider under test).

use url::{Host, Url};

pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn check_url(s: &str, what: &str, example: &str) -> Result<Url, String> {
    let url = Url::parse(s)
        .map_err(|e| format!("\"{s}\" is not a valid URL ({e}); expected e.g. \"{example}\""))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not contain a user name or password"));
    }
    let host = url.host().ok_or_else(|| format!("\"{s}\" has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "\"{s}\": {what} must use https (http is allowed only for localhost, 127.0.0.0/8 and [::1])"
            ))
        }
        other => return Err(format!("\"{s}\": scheme must be https, not \"{other}\"")),
    }
    if url.fragment().is_some() {
        return Err(format!("\"{s}\": {what} has no fragment"));
    }
    Ok(url)
}

pub(crate) fn parse_issuer(s: &str) -> Result<Url, String> {
    let url = check_url(s, "the issuer", "https://accounts.example.com")?;
    if url.query().is_some() {
        return Err(format!("\"{s}\": an issuer has no query or fragment"));
    }
    Ok(url)
}

/// An OAuth 2.0 endpoint (a query is allowed, e.g. Facebook's `?fields=`).
pub(crate) fn parse_endpoint(s: &str) -> Result<Url, String> {
    check_url(s, "an endpoint", "https://provider.example/oauth/token")
}
