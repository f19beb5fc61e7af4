//! Double-submit CSRF protection, as Auth.js does it: the cookie holds `token|hmac(token)`,
//! and a POST must carry the same token in its `csrfToken` field.
use crate::crypto::{constant_time_eq, hmac_b64url, random_token};

const PURPOSE: &str = "csrf";

/// The token inside a valid CSRF cookie value.
pub fn token_from_cookie<'a>(secret: &[u8], cookie: &'a str) -> Option<&'a str> {
    let (token, mac) = cookie.split_once('|')?;
    if token.is_empty() || token.len() > 128 {
        return None;
    }
    constant_time_eq(mac, &hmac_b64url(secret, PURPOSE, token)).then_some(token)
}

/// A new token and the cookie value that vouches for it.
pub fn issue(secret: &[u8]) -> (String, String) {
    let token = random_token(32);
    let cookie = format!("{token}|{}", hmac_b64url(secret, PURPOSE, &token));
    (token, cookie)
}

/// Is `submitted` the token of this (untampered) cookie?
pub fn verify(secret: &[u8], cookie: Option<&str>, submitted: Option<&str>) -> bool {
    match (cookie.and_then(|c| token_from_cookie(secret, c)), submitted) {
        (Some(expected), Some(given)) => constant_time_eq(expected, given),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_submit() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let (token, cookie) = issue(secret);
        assert!(verify(secret, Some(&cookie), Some(&token)));
        assert!(!verify(secret, Some(&cookie), Some("other")));
        assert!(!verify(secret, None, Some(&token)));
        assert!(!verify(secret, Some(&cookie), None));
        // A cookie forged without the secret is refused even when the tokens match.
        let forged = format!("{token}|AAAA");
        assert!(!verify(secret, Some(&forged), Some(&token)));
        assert!(!verify(
            b"another secret another secret!!!",
            Some(&cookie),
            Some(&token)
        ));
    }
}
