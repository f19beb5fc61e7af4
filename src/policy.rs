//! Per-app access rules for forward auth (SPEC §6): the first `[[policies]]` entry whose
//! `hosts` (and `paths`, if any) match the request the proxy forwarded decides who may pass.
//! No policy matching: every signed-in user passes, as without policies.
use crate::config::PolicyConfig;
use percent_encoding::percent_decode_str;

/// Who is asking, as far as policies care.
pub struct Who<'a> {
    pub groups: &'a [String],
    /// Only an email the provider verified.
    pub verified_email: Option<&'a str>,
    /// The provider of the session (`None` for a bearer token, which does not say).
    pub provider: Option<&'a str>,
}

#[derive(Debug, PartialEq)]
pub enum Decision {
    Allowed,
    /// Signed in, but not allowed; the reason is for the log line.
    Denied(String),
}

/// The decision for a request to `host` (the forwarded `Host`, maybe with a port) and `uri`
/// (the forwarded path and query), for `who`; `narrow` are the groups of `/verify`'s own
/// `?allowed_groups=` (one of them is needed as well).
pub fn decide(
    policies: &[PolicyConfig],
    host: Option<&[u8]>,
    uri: Option<&str>,
    who: &Who,
    narrow: &[String],
) -> Decision {
    // Fail closed: with policies, a request whose host cannot be read cannot be placed.
    let host = match host.map(normal_host) {
        _ if policies.is_empty() => None,
        Some(Some(host)) => Some(host),
        Some(None) => return Decision::Denied("the forwarded host is not a host name".into()),
        None => return Decision::Denied("the proxy sent no X-Forwarded-Host or Host".into()),
    };
    let path = uri.map(normal_path);
    // Fail closed: a policy about paths cannot be applied without the path.
    if path.is_none() {
        if let Some(p) = policies.iter().find(|p| {
            !p.paths.is_empty()
                && host
                    .as_deref()
                    .is_some_and(|h| p.hosts.iter().any(|pattern| host_matches(pattern, h)))
        }) {
            return Decision::Denied(format!(
                "policy {} has paths, but the proxy sent no X-Original-URI or X-Forwarded-Uri",
                p.index + 1
            ));
        }
    }
    let matched = policies.iter().find(|p| {
        host.as_deref()
            .is_some_and(|h| p.hosts.iter().any(|pattern| host_matches(pattern, h)))
            && (p.paths.is_empty()
                || path
                    .as_deref()
                    .is_some_and(|path| p.paths.iter().any(|pattern| path_matches(pattern, path))))
    });
    if let Some(policy) = matched {
        if let Some(why) = refusal(policy, who) {
            return Decision::Denied(format!(
                "policy {} ({}): {why}",
                policy.index + 1,
                policy.hosts.join(", ")
            ));
        }
    }
    if !narrow.is_empty() && !who.groups.iter().any(|g| narrow.contains(g)) {
        return Decision::Denied(format!(
            "not in allowed_groups={} of the request",
            narrow.join(",")
        ));
    }
    Decision::Allowed
}

/// Why `who` may not pass `policy`, if so: each kind of rule it has must be met.
fn refusal(policy: &PolicyConfig, who: &Who) -> Option<String> {
    if !policy.allowed_groups.is_empty()
        && !who.groups.iter().any(|g| policy.allowed_groups.contains(g))
    {
        return Some("in none of allowed_groups".into());
    }
    let email = who.verified_email.map(str::to_lowercase);
    if !policy.allowed_emails.is_empty()
        && !email
            .as_ref()
            .is_some_and(|e| policy.allowed_emails.contains(e))
    {
        return Some("no verified email in allowed_emails".into());
    }
    if !policy.allowed_email_domains.is_empty() {
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        if !domain.is_some_and(|d| policy.allowed_email_domains.iter().any(|a| a == d)) {
            return Some("no verified email in allowed_email_domains".into());
        }
    }
    if !policy.allowed_providers.is_empty()
        && !who
            .provider
            .is_some_and(|p| policy.allowed_providers.iter().any(|a| a == p))
    {
        return Some(match who.provider {
            Some(p) => format!("signed in with {p}, not one of allowed_providers"),
            None => "a bearer token names no provider, and the policy has allowed_providers".into(),
        });
    }
    None
}

/// The host name as nginx picks the virtual host by it: up to the first `:` (or the
/// `[IPv6]` literal), one trailing dot dropped, lowercased. `None` when what is left is not
/// a host name (`admin.test:x` is `admin.test`, as nginx serves it; `ad min`, bytes above
/// ASCII or an empty name are nothing).
fn normal_host(raw: &[u8]) -> Option<String> {
    let raw = raw.trim_ascii();
    let name = if raw.starts_with(b"[") {
        &raw[..=raw.iter().position(|&b| b == b']')?]
    } else {
        raw.split(|&b| b == b':').next().unwrap_or(raw)
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    let bracketed = name.starts_with(b"[");
    let valid = !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b'_'
                || (bracketed && (b == b'[' || b == b']' || b == b':'))
        });
    valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty()),
        None => pattern == host,
    }
}

/// The path the upstream will serve for `uri`, as nginx works it out for `$uri`: without the
/// query, percent-decoded, with `.` and `..` segments resolved and repeated slashes merged.
/// A policy matched against the raw `$request_uri` could be stepped around with
/// `/public/../admin` or `/%61dmin`.
pub fn normal_path(uri: &str) -> String {
    let raw = uri.split(['?', '#']).next().unwrap_or("");
    // A backslash is a slash to many upstreams (and to browsers).
    let decoded = percent_decode_str(raw)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    let mut path = format!("/{}", segments.join("/"));
    if trailing && path.len() > 1 {
        path.push('/');
    }
    path
}

/// A prefix (`/admin` matches `/admin`, `/admin/x` and `/administrator`, as nginx's
/// `location /admin` does), or with `*` a pattern for the whole path (`*` is any characters).
fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    // `/api/*/private` also covers `/api/v1/private/`.
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], paths: &[&str], edit: impl Fn(&mut PolicyConfig)) -> PolicyConfig {
        let mut p = PolicyConfig {
            index: 0,
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            allowed_groups: vec![],
            allowed_emails: vec![],
            allowed_email_domains: vec![],
            allowed_providers: vec![],
        };
        edit(&mut p);
        p
    }

    fn who<'a>(groups: &'a [String], email: Option<&'a str>, provider: Option<&'a str>) -> Who<'a> {
        Who {
            groups,
            verified_email: email,
            provider,
        }
    }

    #[test]
    fn paths_are_matched_as_the_upstream_serves_them() {
        for (uri, want) in [
            ("/admin", "/admin"),
            ("/admin?x=1", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("//admin//x/", "/admin/x/"),
            ("/./admin/.", "/admin/"),
            ("/../../etc", "/etc"),
            ("", "/"),
            ("/", "/"),
        ] {
            assert_eq!(normal_path(uri), want, "{uri}");
        }
        assert!(path_matches("/admin", "/admin/users"));
        assert!(path_matches("/admin", "/administrator"));
        assert!(!path_matches("/admin", "/public"));
        assert!(path_matches("/api/*/private", "/api/v1/private"));
        assert!(path_matches("/api/*/private", "/api/v1/private/"));
        assert_eq!(normal_path("/\\admin\\x"), "/admin/x");
        assert!(!path_matches("/api/*/private", "/api/v1/private/x"));
        assert!(path_matches("/static/*", "/static/a/b.css"));
        assert!(path_matches("*.css", "/a/b.css"));
        assert!(!path_matches("/a*b*c", "/ac"));
        assert!(path_matches("/a*b*c", "/axbyc"));
    }

    #[test]
    fn hosts_match_exactly_or_by_subdomain_without_port_or_case() {
        let host = |raw: &[u8]| normal_host(raw);
        assert_eq!(
            host(b"App.Example.COM:8443").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(
            host(b"app.example.com.").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(host(b"[::1]:80").as_deref(), Some("[::1]"));
        // As nginx picks the virtual host: up to the first colon, whatever follows.
        for raw in [
            &b"admin.test:x"[..],
            b"admin.test:1:2",
            b"admin.test:443.",
            b"admin.test:\xff",
            b"ADMIN.TEST.",
        ] {
            assert_eq!(host(raw).as_deref(), Some("admin.test"), "{raw:?}");
        }
        for raw in [&b""[..], b":80", b"ad min", b"\xffadmin", b"a/b", b"[::1"] {
            assert_eq!(host(raw), None, "{raw:?}");
        }
        assert!(host_matches("*", "anything.test"));
        assert!(host_matches("app.example.com", "app.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
    }

    #[test]
    fn the_first_matching_policy_decides_and_every_rule_kind_must_hold() {
        let staff = vec!["staff".to_string()];
        let none: Vec<String> = vec![];
        let policies = vec![
            policy(&["app.test"], &["/admin"], |p| {
                p.index = 0;
                p.allowed_groups = vec!["admins".into()];
            }),
            policy(&["app.test"], &[], |p| {
                p.index = 1;
                p.allowed_email_domains = vec!["example.com".into()];
                p.allowed_providers = vec!["corp".into()];
            }),
        ];
        let ann = who(&staff, Some("Ann@Example.com"), Some("corp"));
        let d = |host: &str, uri, who: &Who| {
            decide(&policies, Some(host.as_bytes()), Some(uri), who, &[])
        };
        assert!(
            matches!(d("app.test", "/admin/x", &ann), Decision::Denied(why) if why.contains("policy 1"))
        );
        // Stepping around /admin does not reach the second policy.
        assert!(matches!(
            d("app.test", "/x/../admin", &ann),
            Decision::Denied(_)
        ));
        assert_eq!(d("app.test", "/home", &ann), Decision::Allowed);
        assert_eq!(d("APP.test:443", "/home", &ann), Decision::Allowed);
        let other_domain = who(&staff, Some("ann@elsewhere.com"), Some("corp"));
        assert!(matches!(
            d("app.test", "/home", &other_domain),
            Decision::Denied(_)
        ));
        let unverified = who(&staff, None, Some("corp"));
        assert!(matches!(
            d("app.test", "/home", &unverified),
            Decision::Denied(_)
        ));
        let other_provider = who(&staff, Some("ann@example.com"), Some("github"));
        assert!(matches!(
            d("app.test", "/home", &other_provider),
            Decision::Denied(_)
        ));
        let bearer = who(&staff, Some("ann@example.com"), None);
        assert!(matches!(
            d("app.test", "/home", &bearer),
            Decision::Denied(_)
        ));
        // No policy for this host: every signed-in user passes. No host, or one that is not
        // a host name: nobody (with policies, a request must be placed).
        let nobody = who(&none, None, None);
        assert_eq!(d("other.test", "/admin", &nobody), Decision::Allowed);
        assert!(matches!(
            decide(&policies, None, None, &nobody, &[]),
            Decision::Denied(_)
        ));
        assert!(matches!(
            decide(&policies, Some(b"\xff"), Some("/"), &ann, &[]),
            Decision::Denied(_)
        ));
        // A catch-all last policy refuses every host nobody wrote a policy for.
        let mut closed = policies.clone();
        closed.push(policy(&["*"], &[], |p| {
            p.index = 2;
            p.allowed_groups = vec!["nobody".into()];
        }));
        assert!(matches!(
            decide(&closed, Some(b"evil.test"), Some("/"), &ann, &[]),
            Decision::Denied(why) if why.contains("policy 3")
        ));
        // Without policies the host does not matter.
        assert_eq!(decide(&[], None, None, &nobody, &[]), Decision::Allowed);
        // ?allowed_groups= narrows, whatever the policy said.
        assert!(matches!(
            decide(
                &policies,
                Some("other.test".as_bytes()),
                Some("/"),
                &ann,
                &["admins".into()]
            ),
            Decision::Denied(_)
        ));
        assert_eq!(
            decide(
                &policies,
                Some("other.test".as_bytes()),
                Some("/"),
                &ann,
                &["admins".into(), "staff".into()]
            ),
            Decision::Allowed
        );
    }

    #[test]
    fn a_policy_with_paths_needs_a_forwarded_uri_to_match() {
        let policies = vec![policy(&["app.test"], &["/admin"], |p| {
            p.allowed_groups = vec!["admins".into()]
        })];
        let none: Vec<String> = vec![];
        let admin = vec!["admins".to_string()];
        // Without X-Original-URI a policy about paths cannot tell: nobody passes that host.
        let d = decide(
            &policies,
            Some("app.test".as_bytes()),
            None,
            &who(&admin, None, None),
            &[],
        );
        assert!(matches!(d, Decision::Denied(why) if why.contains("X-Original-URI")));
        let d = decide(
            &policies,
            Some("other.test".as_bytes()),
            None,
            &who(&none, None, None),
            &[],
        );
        assert_eq!(d, Decision::Allowed);
    }
}
