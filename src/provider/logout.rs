//! OpenID Back-Channel Logout 1.0: the claims of a Logout Token (§2.4) and the checks of
//! §2.6 that follow its signature's (which `oidc::OidcClient::verify_logout_token` does with
//! the ID-token rules: the issuer's JWKS, no `none`, no HMAC).
use serde_json::Value;

/// The member of `events` that makes a JWT a Logout Token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A Logout Token older than this is refused (SPEC §4), so a stolen one is soon worthless.
pub const MAX_AGE_SECS: i64 = 300;

/// What a verified Logout Token says: which provider session (`sid`) or which account (`sub`)
/// has ended, at least one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// Until when (Unix seconds) the token would pass these checks: how long its `jti` must
    /// be remembered to refuse a replay.
    pub acceptable_until: i64,
}

/// A provider session id worth keeping: 1 to 255 visible ASCII characters (what providers
/// send: UUIDs, base64url). Anything else is dropped at sign-in and refused in a Logout
/// Token, so that a hostile provider cannot make records large or put control characters in
/// logs and pages.
pub fn plausible_sid(sid: &str) -> bool {
    (1..=255).contains(&sid.len()) && sid.bytes().all(|b| b.is_ascii_graphic())
}

/// §2.6 steps 3–10 on the claims of a token whose signature has been verified: `iss` is
/// `issuer`, `aud` contains `client_id`, `iat` is at most `skew` seconds in the future and
/// at most five minutes old, `exp` (if any) has not passed, `events` names the back-channel
/// logout event, `sid` or `sub` is present, there is no `nonce`, and there is a `jti`.
/// `now` is Unix seconds. The error is the log line's reason.
pub fn check_claims(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    now: i64,
    skew: i64,
) -> Result<LogoutClaims, String> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    match text("iss") {
        Some(iss) if iss == issuer => {}
        Some(iss) => return Err(format!("iss {iss:?} is not the issuer {issuer:?}")),
        None => return Err("no iss".into()),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(format!("aud does not contain the client id {client_id:?}"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("no numeric iat")?;
    // Saturating: the times are the provider's numbers, anything up to i64's ends.
    if iat > now.saturating_add(skew) {
        return Err(format!("iat is {}s in the future", iat.saturating_sub(now)));
    }
    let age = now.saturating_sub(iat);
    if age > MAX_AGE_SECS {
        return Err(format!("issued {age}s ago: older than {MAX_AGE_SECS}s"));
    }
    let mut acceptable_until = iat.saturating_add(MAX_AGE_SECS);
    match claims.get("exp") {
        None => {}
        Some(exp) => {
            let exp = exp.as_i64().ok_or("exp is not a number")?;
            if exp.saturating_add(skew) <= now {
                return Err(format!("expired {}s ago", now.saturating_sub(exp)));
            }
            acceptable_until = acceptable_until.min(exp.saturating_add(skew));
        }
    }
    let is_logout = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT))
        .is_some_and(Value::is_object);
    if !is_logout {
        return Err(format!("events does not contain {EVENT:?} (an object)"));
    }
    if claims.get("nonce").is_some() {
        return Err("has a nonce: an ID token, not a Logout Token".into());
    }
    let sub = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        Some(_) => return Err("sub is not a string of 1 to 255 bytes".into()),
    };
    let sid = match claims.get("sid") {
        None => None,
        Some(Value::String(s)) if plausible_sid(s) => Some(s.clone()),
        Some(_) => return Err("sid is not 1 to 255 visible ASCII characters".into()),
    };
    if sub.is_none() && sid.is_none() {
        return Err("neither sid nor sub".into());
    }
    let jti = match text("jti") {
        Some(jti) if !jti.is_empty() && jti.len() <= 255 => jti.to_string(),
        _ => return Err("no jti (a string of 1 to 255 bytes)".into()),
    };
    Ok(LogoutClaims {
        sub,
        sid,
        jti,
        acceptable_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_764_000_000;

    fn good() -> Value {
        json!({
            "iss": "https://op.test",
            "aud": "latch",
            "iat": NOW - 10,
            "jti": "j1",
            "sid": "s1",
            "sub": "u1",
            "events": { EVENT: {} },
        })
    }

    fn check(claims: &Value) -> Result<LogoutClaims, String> {
        check_claims(claims, "https://op.test", "latch", NOW, 60)
    }

    fn with(edit: impl Fn(&mut serde_json::Map<String, Value>)) -> Value {
        let mut claims = good();
        edit(claims.as_object_mut().unwrap());
        claims
    }

    #[test]
    fn a_good_token_names_its_session_and_account() {
        let claims = check(&good()).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert_eq!(claims.sub.as_deref(), Some("u1"));
        assert_eq!(claims.jti, "j1");
        assert_eq!(claims.acceptable_until, NOW - 10 + MAX_AGE_SECS);
        // sid alone, sub alone, several audiences, an exp that ends it sooner.
        assert!(check(&with(|c| drop(c.remove("sub")))).is_ok());
        assert!(check(&with(|c| drop(c.remove("sid")))).is_ok());
        assert!(check(&with(|c| drop(
            c.insert("aud".into(), json!(["x", "latch"]))
        )))
        .is_ok());
        let short = check(&with(|c| drop(c.insert("exp".into(), json!(NOW + 5))))).unwrap();
        assert_eq!(short.acceptable_until, NOW + 5 + 60);
    }

    #[test]
    fn every_rule_refuses_on_its_own() {
        let cases: Vec<(&str, Value)> = vec![
            (
                "iss",
                with(|c| drop(c.insert("iss".into(), json!("https://evil.test")))),
            ),
            ("no iss", with(|c| drop(c.remove("iss")))),
            (
                "aud",
                with(|c| drop(c.insert("aud".into(), json!("other")))),
            ),
            (
                "aud list",
                with(|c| drop(c.insert("aud".into(), json!(["other"])))),
            ),
            ("no aud", with(|c| drop(c.remove("aud")))),
            ("no iat", with(|c| drop(c.remove("iat")))),
            (
                "iat text",
                with(|c| drop(c.insert("iat".into(), json!("1")))),
            ),
            (
                "future iat",
                with(|c| drop(c.insert("iat".into(), json!(NOW + 61)))),
            ),
            (
                "old iat",
                with(|c| drop(c.insert("iat".into(), json!(NOW - 301)))),
            ),
            (
                "expired",
                with(|c| drop(c.insert("exp".into(), json!(NOW - 60)))),
            ),
            (
                "exp text",
                with(|c| drop(c.insert("exp".into(), json!("soon")))),
            ),
            ("no events", with(|c| drop(c.remove("events")))),
            (
                "other event",
                with(|c| drop(c.insert("events".into(), json!({"urn:other": {}})))),
            ),
            (
                "event not an object",
                with(|c| drop(c.insert("events".into(), json!({ EVENT: true })))),
            ),
            (
                "nonce",
                with(|c| drop(c.insert("nonce".into(), json!("n")))),
            ),
            (
                "neither",
                with(|c| {
                    c.remove("sid");
                    c.remove("sub");
                }),
            ),
            (
                "empty sub",
                with(|c| drop(c.insert("sub".into(), json!("")))),
            ),
            (
                "sid with a space",
                with(|c| drop(c.insert("sid".into(), json!("a b")))),
            ),
            (
                "numeric sid",
                with(|c| drop(c.insert("sid".into(), json!(7)))),
            ),
            ("no jti", with(|c| drop(c.remove("jti")))),
            (
                "empty jti",
                with(|c| drop(c.insert("jti".into(), json!("")))),
            ),
        ];
        for (what, claims) in cases {
            assert!(check(&claims).is_err(), "{what} passed");
        }
        // The ends of i64 are refused, never wrapped around (or a panic).
        for (claim, value) in [("iat", i64::MIN), ("iat", i64::MAX), ("exp", i64::MIN)] {
            let claims = with(|c| drop(c.insert(claim.into(), json!(value))));
            assert!(check(&claims).is_err(), "{claim} = {value}");
        }
        let far = check(&with(|c| drop(c.insert("exp".into(), json!(i64::MAX))))).unwrap();
        assert_eq!(far.acceptable_until, NOW - 10 + MAX_AGE_SECS);
        // At the edges: exactly 5 minutes old and 60 s ahead pass; an exp 60 s ago does not.
        assert!(check(&with(|c| drop(c.insert("iat".into(), json!(NOW - 300))))).is_ok());
        assert!(check(&with(|c| drop(c.insert("iat".into(), json!(NOW + 60))))).is_ok());
        assert!(check(&with(|c| drop(c.insert("exp".into(), json!(NOW - 59))))).is_ok());
    }
}
