//! `callbackUrl` checking: only a path on latch's own origin, `public_url`'s origin, or a
//! `trusted_origins` match may be a redirect target. Everything else falls back to
//! `public_url`. URLs are parsed the way browsers parse them (WHATWG), so `//evil`,
//! `/\evil`, tabs and `javascript:` resolve to what a browser would visit.
use crate::config::Config;

pub enum Target {
    Allowed(String),
    /// Refused; carries the fallback and why (for the log line).
    Refused {
        fallback: String,
        reason: String,
    },
}

pub fn check_callback_url(config: &Config, raw: Option<&str>) -> Target {
    let public = &config.server.public_url;
    let fallback = public.as_str().to_string();
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
        return Target::Allowed(fallback);
    };
    let url = match public.join(raw) {
        Ok(url) => url,
        Err(e) => {
            return Target::Refused {
                fallback,
                reason: format!("unparsable callbackUrl: {e}"),
            }
        }
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return Target::Refused {
            fallback,
            reason: format!("callbackUrl scheme {:?} is not http(s)", url.scheme()),
        };
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Target::Refused {
            fallback,
            reason: "callbackUrl carries credentials".into(),
        };
    }
    let trusted = url.origin() == public.origin()
        || config
            .server
            .trusted_origins
            .iter()
            .any(|o| o.matches(&url));
    if trusted {
        Target::Allowed(url.to_string())
    } else {
        Target::Refused {
            fallback,
            reason: format!(
                "callbackUrl origin {} is not trusted",
                url.origin().ascii_serialization()
            ),
        }
    }
}

/// The checked target, logging a refusal.
pub fn safe_callback_url(config: &Config, raw: Option<&str>) -> String {
    match check_callback_url(config, raw) {
        Target::Allowed(url) => url,
        Target::Refused { fallback, reason } => {
            tracing::warn!(%reason, "callbackUrl refused, using public_url");
            fallback
        }
    }
}

/// Where a sign-in lands: the checked `callbackUrl`, or with none the account page (SPEC §4).
pub fn signin_landing(config: &Config, raw: Option<&str>) -> String {
    match raw.filter(|s| !s.trim().is_empty()) {
        None => crate::provider::public_route(config, "/account"),
        raw => safe_callback_url(config, raw),
    }
}

/// For checks in tests: is this target accepted?
pub fn is_allowed(config: &Config, raw: &str) -> bool {
    matches!(check_callback_url(config, Some(raw)), Target::Allowed(_))
}

/// Is `origin` (an `Origin` header value) `public_url`'s origin or a `trusted_origins` match?
/// `null` and anything unparsable are not.
pub fn is_trusted_origin(config: &Config, origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    // An Origin is scheme://host[:port] and nothing else.
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return false;
    }
    url.origin() == config.server.public_url.origin()
        || config
            .server
            .trusted_origins
            .iter()
            .any(|o| o.matches(&url))
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn config() -> Config {
        let text = "[server]\npublic_url = \"https://login.example.com\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
            trusted_origins = [\"https://*.apps.example.com\", \"http://localhost:8080\"]\n";
        crate::config::load_str(std::path::Path::new("t.toml"), text, &|_| None).unwrap()
    }

    /// Strings shaped like what an attacker tries: scheme tricks, slashes and backslashes,
    /// credentials, look-alike hosts, whitespace and control characters.
    fn callback() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("https://".to_string()),
            Just("http://".to_string()),
            Just("//".to_string()),
            Just("/\\".to_string()),
            Just("\\\\".to_string()),
            Just("javascript:".to_string()),
            Just("data:".to_string()),
            Just("login.example.com".to_string()),
            Just("apps.example.com".to_string()),
            Just(".apps.example.com".to_string()),
            Just("evil.test".to_string()),
            Just("localhost:8080".to_string()),
            Just("@".to_string()),
            Just(":443".to_string()),
            Just("%2e".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("/".to_string()),
            Just("?".to_string()),
            Just("#".to_string()),
            "[a-z]{1,5}",
            "\\PC{1,3}",
        ];
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    /// Independently of `OriginPattern`: the origins this config trusts.
    fn trusted(url: &url::Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        match (url.scheme(), url.port_or_known_default()) {
            ("https", Some(443)) => {
                host == "login.example.com"
                    || host
                        .strip_suffix(".apps.example.com")
                        .is_some_and(|l| !l.is_empty() && !l.split('.').any(str::is_empty))
            }
            ("http", Some(8080)) => host == "localhost",
            _ => false,
        }
    }

    /// Examples beside the property: what is kept (and exactly as what), what falls back.
    #[test]
    fn a_trusted_target_is_kept_as_resolved_and_anything_else_falls_back() {
        let config = config();
        let public = "https://login.example.com/";
        for (raw, kept) in [
            ("/dash?x=1#top", "https://login.example.com/dash?x=1#top"),
            ("https://login.example.com/a", "https://login.example.com/a"),
            (
                "https://a.apps.example.com/b",
                "https://a.apps.example.com/b",
            ),
            ("http://localhost:8080/c", "http://localhost:8080/c"),
        ] {
            assert!(is_allowed(&config, raw), "{raw}");
            assert_eq!(safe_callback_url(&config, Some(raw)), kept);
        }
        for raw in [None, Some(""), Some("  ")] {
            assert!(matches!(check_callback_url(&config, raw), Target::Allowed(u) if u == public));
        }
        for raw in [
            "https://evil.test/",
            "//evil.test",
            "javascript:alert(1)",
            "ftp://login.example.com/",
            "https://user@login.example.com/",
            "https://:pw@login.example.com/",
            "https://user:pw@login.example.com/",
            "http://[",
        ] {
            assert!(!is_allowed(&config, raw), "{raw}");
            assert_eq!(safe_callback_url(&config, Some(raw)), public, "{raw}");
        }
    }

    #[test]
    fn only_a_bare_trusted_origin_is_trusted() {
        let config = config();
        for origin in [
            "https://login.example.com",
            "https://a.apps.example.com",
            "http://localhost:8080",
        ] {
            assert!(is_trusted_origin(&config, origin), "{origin}");
        }
        for origin in [
            "null",
            "",
            "https://evil.test",
            "https://login.example.com/path",
            "https://login.example.com?q",
            "https://login.example.com#f",
            "https://u@login.example.com",
            "http://login.example.com",
        ] {
            assert!(!is_trusted_origin(&config, origin), "{origin}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn only_trusted_origins_are_ever_returned(raw in prop_oneof![callback(), "\\PC{0,40}"]) {
            let config = config();
            match check_callback_url(&config, Some(&raw)) {
                Target::Allowed(target) => {
                    let url = url::Url::parse(&target).unwrap();
                    prop_assert!(trusted(&url), "{raw:?} -> {target}");
                    prop_assert!(url.username().is_empty() && url.password().is_none());
                    // A browser resolving the target again lands at the same place.
                    prop_assert_eq!(config.server.public_url.join(&target).unwrap(), url);
                }
                Target::Refused { fallback, reason } => {
                    prop_assert_eq!(fallback.as_str(), config.server.public_url.as_str());
                    prop_assert!(!reason.is_empty());
                }
            }
        }
    }
}
