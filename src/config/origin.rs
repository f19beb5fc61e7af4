//! Trusted origin patterns: `https://app.example.com`, `http://localhost:8080`,
//! `https://*.example.com`.

use url::Url;

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Exact host as serialized by `url` (lowercase; IPv6 in brackets).
    Exact(String),
    /// `*.suffix`: any host with at least one label before `.suffix`.
    Subdomains(String),
}

/// An origin (scheme, host, port) that may start its host with `*.`.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginPattern {
    scheme: String,
    host: HostPattern,
    port: u16,
}

const HELP: &str =
    "expected an origin like \"https://app.example.com\", \"http://localhost:8080\" or \"https://*.example.com\"";

impl OriginPattern {
    /// Parse a pattern; the error says what is wrong and what would be valid.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("\"{s}\" is not an origin: {HELP}"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "\"{s}\": scheme must be http or https, not \"{scheme}\""
            ));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(format!(
                "\"{s}\": an origin has no path, query or fragment; {HELP}"
            ));
        }
        if authority.contains('@') {
            return Err(format!("\"{s}\": an origin has no user name or password"));
        }
        let (wildcard, authority) = match authority.strip_prefix("*.") {
            Some(a) => (true, a),
            None => (false, authority),
        };
        if authority.contains('*') {
            return Err(format!(
                "\"{s}\": '*' is only allowed as the whole first label, as in \"https://*.example.com\""
            ));
        }
        let url = Url::parse(&format!("{scheme}://{authority}/"))
            .map_err(|e| format!("\"{s}\": {e}; {HELP}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("\"{s}\": missing host; {HELP}"))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("\"{s}\": missing port"))?;
        let host = if wildcard {
            if url.domain().is_none() {
                return Err(format!(
                    "\"{s}\": a wildcard needs a domain name after \"*.\", not an IP address"
                ));
            }
            if !host.contains('.') {
                return Err(format!(
                    "\"{s}\": \"*.{host}\" is too broad; name a domain with at least two labels, as in \"https://*.example.com\""
                ));
            }
            HostPattern::Subdomains(host)
        } else {
            HostPattern::Exact(host)
        };
        Ok(Self { scheme, host, port })
    }

    /// Does `url`'s origin match this pattern? Scheme and port (default port by
    /// scheme) must be equal; `*.example.com` matches `a.example.com` and
    /// `a.b.example.com` but neither `example.com` nor `evilexample.com`.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme || url.port_or_known_default() != Some(self.port) {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        match &self.host {
            HostPattern::Exact(h) => host == h,
            // One or more labels before `.suffix`, none of them empty: neither `.example.com`
            // nor `..example.com` is a subdomain.
            HostPattern::Subdomains(suffix) => {
                url.domain().is_some()
                    && host
                        .strip_suffix(suffix.as_str())
                        .and_then(|rest| rest.strip_suffix('.'))
                        .is_some_and(|labels| !labels.split('.').any(str::is_empty))
            }
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match &self.host {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Subdomains(s) => format!("*.{s}"),
        };
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, host, self.port)
        }
    }
}

/// `[server] error_url`: where refused callbacks send the browser (with `error=<Code>`
/// added to its query). An absolute http(s) URL, or a path on `public_url`, whose origin is
/// `public_url`'s or matches a trusted origin: latch must not become an open redirect.
pub fn check_error_url(
    raw: &str,
    public_url: &Url,
    trusted: &[OriginPattern],
) -> Result<Url, String> {
    const EXAMPLE: &str =
        "e.g. \"https://app.example.com/auth/error\" or \"/auth/error\" (a path on public_url)";
    if raw.trim().is_empty() {
        return Err(format!(
            "is empty; remove the key for latch's own error page, or set one, {EXAMPLE}"
        ));
    }
    let url = public_url
        .join(raw.trim())
        .map_err(|e| format!("\"{raw}\" is not a URL ({e}); {EXAMPLE}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "\"{raw}\": scheme must be http or https, not \"{}\"",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "\"{raw}\" must not contain a user name or password"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "\"{raw}\" must not have a fragment (latch adds error=<Code> to the query)"
        ));
    }
    if url.origin() != public_url.origin() && !trusted.iter().any(|o| o.matches(&url)) {
        return Err(format!(
            "\"{raw}\": origin {} is neither server.public_url's nor in server.trusted_origins; add it there, or use a path on public_url",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, url: &str) -> bool {
        OriginPattern::parse(pattern)
            .unwrap()
            .matches(&Url::parse(url).unwrap())
    }

    #[test]
    fn exact() {
        assert!(m(
            "https://app.example.com",
            "https://app.example.com/x?y=1"
        ));
        assert!(m("https://app.example.com/", "https://APP.example.com"));
        assert!(m("https://app.example.com", "https://app.example.com:443/"));
        assert!(!m("https://app.example.com", "https://other.example.com/"));
        assert!(!m("https://app.example.com", "https://x.app.example.com/"));
        assert!(m("http://localhost:8080", "http://localhost:8080/cb"));
        assert!(m("http://[::1]:8080", "http://[::1]:8080/cb"));
        assert!(m("http://127.0.0.1:8080", "http://127.0.0.1:8080/"));
    }

    #[test]
    fn port_and_scheme_must_match() {
        assert!(!m("http://localhost:8080", "http://localhost:8081/"));
        assert!(!m("http://localhost:8080", "http://localhost/"));
        assert!(!m(
            "https://app.example.com",
            "https://app.example.com:8443/"
        ));
        assert!(!m("https://app.example.com", "http://app.example.com/"));
        assert!(!m("http://app.example.com", "https://app.example.com/"));
        assert!(!m("https://*.example.com", "http://a.example.com/"));
        assert!(!m("https://*.example.com", "https://a.example.com:444/"));
        assert!(m(
            "https://*.example.com:8443",
            "https://a.example.com:8443/"
        ));
    }

    #[test]
    fn wildcard() {
        assert!(m("https://*.example.com", "https://a.example.com/"));
        assert!(m("https://*.example.com", "https://a.b.example.com/"));
        assert!(!m("https://*.example.com", "https://example.com/"));
        assert!(!m("https://*.example.com", "https://evilexample.com/"));
        assert!(!m("https://*.example.com", "https://a.evilexample.com/"));
        assert!(!m("https://*.example.com", "https://example.com.evil.org/"));
        // An empty first label is not a subdomain (a browser would not visit it as one).
        assert!(!m("https://*.example.com", "https://.example.com/"));
        assert!(!m("https://*.example.com", "https://..example.com/"));
    }

    use proptest::prelude::*;

    /// Host names made of a few labels from a small alphabet, so that suffix and
    /// near-suffix cases (`example.com`, `.example.com`, `xexample.com`) come up often.
    fn host() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("example".to_string()),
                Just("com".to_string()),
                Just(String::new()),
                "[a-z0-9-]{1,4}"
            ],
            1..5,
        )
        .prop_map(|labels| labels.join("."))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = OriginPattern::parse(&s);
        }

        /// `*.example.com` matches exactly the hosts with at least one non-empty label before
        /// `.example.com`, with the same scheme and port; parse and display round-trip.
        #[test]
        fn wildcard_matches_only_real_subdomains(h in host(), https in any::<bool>()) {
            let scheme = if https { "https" } else { "http" };
            let pattern = OriginPattern::parse("https://*.example.com").unwrap();
            let Ok(url) = Url::parse(&format!("{scheme}://{h}/")) else { return Ok(()) };
            let Some(host) = url.host_str() else { return Ok(()) };
            let expected = https
                && url.domain().is_some()
                && host
                    .strip_suffix(".example.com")
                    .is_some_and(|prefix| !prefix.split('.').any(str::is_empty));
            prop_assert_eq!(pattern.matches(&url), expected, "{}", url);
            let again = OriginPattern::parse(&pattern.to_string()).unwrap();
            prop_assert_eq!(again, pattern);
        }

        /// An exact pattern matches only URLs whose origin is that origin.
        #[test]
        fn exact_matches_only_its_origin(h in host(), port in prop::option::of(1u16..65535), path in "[ -~]{0,20}") {
            let authority = match port { Some(p) => format!("{h}:{p}"), None => h.clone() };
            let Ok(pattern) = OriginPattern::parse(&format!("https://{authority}")) else { return Ok(()) };
            let target = Url::parse("https://example.com/").unwrap().join(&path);
            let Ok(target) = target else { return Ok(()) };
            let same = Url::parse(&format!("https://{authority}/")).map(|u| u.origin()).ok();
            prop_assert_eq!(pattern.matches(&target), same == Some(target.origin()), "{} vs {}", pattern, target);
        }
    }

    #[test]
    fn invalid() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com?q",
            "https://user@example.com",
            "https://a.*.example.com",
            "https://*example.com",
            "https://*.com",
            "https://*.127.0.0.1",
            "https://",
            "https://exa mple.com",
        ] {
            assert!(
                OriginPattern::parse(bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn error_url_must_stay_on_a_trusted_origin() {
        let public = Url::parse("https://login.example.com/").unwrap();
        let trusted = [OriginPattern::parse("https://*.example.com").unwrap()];
        let ok = |raw: &str| check_error_url(raw, &public, &trusted).map(|u| u.to_string());
        assert_eq!(
            ok("/oops").unwrap(),
            "https://login.example.com/oops",
            "a path is on public_url"
        );
        assert_eq!(
            ok("https://app.example.com/auth/error?lang=en").unwrap(),
            "https://app.example.com/auth/error?lang=en"
        );
        assert_eq!(
            ok("https://login.example.com/e").unwrap(),
            "https://login.example.com/e"
        );
        for bad in [
            "https://evil.example.org/error",
            "https://example.com/error",
            "http://app.example.com/error",
            "//evil.example.org/x",
            "javascript:alert(1)",
            "https://user@app.example.com/e",
            "https://app.example.com/e#frag",
            "",
            "https://[::1",
        ] {
            let err = ok(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        // Without trusted origins only public_url's own origin.
        assert!(check_error_url("https://app.example.com/e", &public, &[]).is_err());
    }

    #[test]
    fn display() {
        let p = OriginPattern::parse("https://*.Example.com:443").unwrap();
        assert_eq!(p.to_string(), "https://*.example.com");
        let p = OriginPattern::parse("http://localhost:8080").unwrap();
        assert_eq!(p.to_string(), "http://localhost:8080");
    }
}
