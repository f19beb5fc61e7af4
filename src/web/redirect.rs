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
