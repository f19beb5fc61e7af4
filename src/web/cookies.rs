//! Cookie names and attributes. On https every cookie is `Secure` and `__Host-` prefixed
//! (`__Secure-` for the session cookie when `cookie_domain` shares it with subdomains).
use axum::http::header::{HeaderValue, COOKIE};
use axum::http::HeaderMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    /// Sent on cross-site POSTs too (`form_post` callbacks); browsers require `Secure`.
    None,
}

#[derive(Debug, Clone)]
pub struct CookiePolicy {
    secure: bool,
    session_domain: Option<String>,
    pub session: String,
    pub csrf: String,
    pub flow: String,
    /// The flow binding for `response_mode=form_post` providers.
    pub flow_cross_site: String,
    /// The refresh token, sent to `/refresh` only.
    pub refresh: String,
    refresh_path: String,
}

impl CookiePolicy {
    pub fn new(https: bool, cookie_domain: Option<String>) -> Self {
        let host_prefix = if https { "__Host-" } else { "" };
        let session_prefix = match (https, cookie_domain.is_some()) {
            (false, _) => "",
            (true, false) => "__Host-",
            (true, true) => "__Secure-",
        };
        CookiePolicy {
            secure: https,
            session: format!("{session_prefix}latch.session-token"),
            csrf: format!("{host_prefix}latch.csrf-token"),
            flow: format!("{host_prefix}latch.flow"),
            flow_cross_site: format!("{host_prefix}latch.flow-xs"),
            refresh: if https {
                "__Secure-latch.refresh-token".into()
            } else {
                "latch.refresh-token".into()
            },
            refresh_path: "/refresh".into(),
            session_domain: cookie_domain,
        }
    }

    /// Cookies for a server under `base_path` (the refresh cookie's path is its `/refresh`).
    pub fn with_base_path(mut self, base_path: &str) -> Self {
        self.refresh_path = format!("{base_path}/refresh");
        self
    }

    /// Is `public_url` https (every cookie `Secure`)?
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    fn build(
        &self,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        same_site: SameSite,
    ) -> HeaderValue {
        self.build_at("/", name, value, max_age, same_site)
    }

    fn build_at(
        &self,
        path: &str,
        name: &str,
        value: &str,
        max_age: Option<Duration>,
        same_site: SameSite,
    ) -> HeaderValue {
        let mut cookie = format!("{name}={value}; Path={path}; HttpOnly");
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        cookie.push_str(match same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
        if self.secure || same_site == SameSite::None {
            cookie.push_str("; Secure");
        }
        if name == self.session {
            if let Some(domain) = &self.session_domain {
                cookie.push_str(&format!("; Domain={domain}"));
            }
        }
        HeaderValue::from_str(&cookie).expect("cookie values are URL-safe tokens")
    }

    pub fn set(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        self.build(name, value, Some(max_age), SameSite::Lax)
    }

    pub fn set_cross_site(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        self.build(name, value, Some(max_age), SameSite::None)
    }

    pub fn clear(&self, name: &str) -> HeaderValue {
        self.build(name, "", Some(Duration::ZERO), SameSite::Lax)
    }

    /// The refresh cookie: `SameSite=Strict`, sent to `/refresh` only.
    pub fn set_refresh(&self, value: &str, max_age: Duration) -> HeaderValue {
        let path = &self.refresh_path;
        self.build_at(path, &self.refresh, value, Some(max_age), SameSite::Strict)
    }

    pub fn clear_refresh(&self) -> HeaderValue {
        self.set_refresh("", Duration::ZERO)
    }

    /// Clears a cookie set by [`Self::set_cross_site`] (same `Secure`, so browsers accept it).
    pub fn clear_cross_site(&self, name: &str) -> HeaderValue {
        self.build(name, "", Some(Duration::ZERO), SameSite::None)
    }
}

/// The value of cookie `name` in the request, if present.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_scheme_and_domain() {
        let http = CookiePolicy::new(false, None);
        assert_eq!(http.session, "latch.session-token");
        let https = CookiePolicy::new(true, None);
        assert_eq!(https.session, "__Host-latch.session-token");
        let shared = CookiePolicy::new(true, Some(".example.com".into()));
        assert_eq!(shared.session, "__Secure-latch.session-token");
        assert_eq!(shared.csrf, "__Host-latch.csrf-token");
        let v = shared.set(&shared.session, "abc", Duration::from_secs(60));
        let v = v.to_str().unwrap();
        assert!(
            v.contains("Secure") && v.contains("HttpOnly") && v.contains("Domain=.example.com")
        );
        let csrf = shared.set(&shared.csrf, "abc", Duration::from_secs(60));
        assert!(!csrf.to_str().unwrap().contains("Domain"));
    }

    #[test]
    fn reads_cookies_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; latch.flow=xyz; b=2"));
        assert_eq!(read(&headers, "latch.flow"), Some("xyz"));
        assert_eq!(read(&headers, "latch"), None);
    }

    use proptest::prelude::*;

    /// Cookie header bytes: visible ASCII and obs-text, with `;`, `=`, quotes and spaces
    /// frequent (anything a `HeaderValue` can hold).
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(b"; =\"\tab".to_vec()),
                2 => 0x21u8..0x7f,
                1 => 0x80u8..=0xff,
            ],
            0..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any Cookie header: no panic, and a value found is one `;`-free, trimmed piece that
        /// followed exactly `name=` in the header.
        #[test]
        fn reading_any_cookie_header_never_panics(raw in header_bytes(), name in "[a-z.;= -]{0,8}") {
            let Ok(value) = HeaderValue::from_bytes(&raw) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, value);
            if let Some(found) = read(&headers, &name) {
                prop_assert!(!found.contains(';'));
                let text = std::str::from_utf8(&raw).unwrap();
                prop_assert!(text.contains(&format!("{name}=")), "{name:?} in {text:?}");
            }
        }

        /// A cookie latch set reads back, whatever other cookies the browser sends beside it.
        #[test]
        fn a_cookie_latch_set_reads_back_among_others(
            value in "[A-Za-z0-9_-]{0,64}",
            before in prop::collection::vec("[a-z]{1,6}=[A-Za-z0-9]{0,6}", 0..4),
            after in prop::collection::vec("[a-z]{1,6}=[A-Za-z0-9]{0,6}", 0..4),
            https in any::<bool>(),
        ) {
            let policy = CookiePolicy::new(https, None);
            let set = policy.set(&policy.session, &value, Duration::from_secs(60));
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            let mut all = before.clone();
            all.push(pair);
            all.extend(after);
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(&all.join("; ")).unwrap());
            prop_assert_eq!(read(&headers, &policy.session), Some(value.as_str()));
        }
    }
}
