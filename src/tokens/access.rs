//! Access tokens for apps (SPEC §4): issuing them for a session, and verifying them where
//! latch itself is asked (`/verify` with a bearer token, `/introspect`, `/provider-token`).
//!
//! A token is a short-lived ES256 JWT; apps may check it offline against the JWKS until
//! `exp`. Wherever latch checks one, it also requires the session named by `sid` to be live,
//! so sign-out and revocation win there at once.
use super::keys::{KeyError, KeyRing};
use crate::crypto::random_token;
use crate::identity::User;
use crate::session::Sessions;
use crate::store::StoreError;
use serde_json::{json, Value};
use std::time::Duration;

pub struct AccessTokens {
    keys: KeyRing,
    issuer: String,
    ttl: Duration,
}

/// A verified token's claims, or why it is refused (for the log line; never the token).
pub type Verdict = Result<Value, String>;

impl AccessTokens {
    pub fn new(keys: KeyRing, issuer: String, ttl: Duration) -> Self {
        AccessTokens { keys, issuer, ttl }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `user` in session `sid`, for `audiences` (one or more).
    /// `email` is claimed only when the provider verified it (SPEC §4).
    pub async fn issue(
        &self,
        user: &User,
        sid: &str,
        audiences: &[&str],
    ) -> Result<String, KeyError> {
        let key = self.keys.current().await?;
        let now = chrono::Utc::now().timestamp();
        let aud = match audiences {
            [one] => json!(one),
            many => json!(many),
        };
        let claims = json!({
            "iss": self.issuer,
            "sub": user.id,
            "aud": aud,
            "exp": now + self.ttl.as_secs().max(1) as i64,
            "iat": now,
            "jti": random_token(16),
            "sid": sid,
            "email": verified_email(user),
            "email_verified": user.email.is_some() && user.email_verified,
            "name": user.name,
        });
        Ok(key.sign(&claims))
    }

    /// Signature, `iss`, an `aud` among `audiences`, `exp`, and a live session behind `sid`.
    pub async fn verify_live(
        &self,
        token: &str,
        audiences: &[&str],
        sessions: &Sessions,
    ) -> Result<Verdict, StoreError> {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let claims = match self.keys.verify(token, &self.issuer, &audiences).await? {
            Ok(claims) => claims,
            Err(why) => return Ok(Err(why)),
        };
        let Some(sid) = claims["sid"].as_str().filter(|s| !s.is_empty()) else {
            return Ok(Err("no sid claim".into()));
        };
        if !sessions.is_live(sid).await? {
            return Ok(Err(format!("session {sid} has ended")));
        }
        Ok(Ok(claims))
    }
}

/// The user's email if the provider verified it; `None` otherwise. Only this ever reaches
/// apps as an identity assertion (`X-Auth-Request-Email`, the `email` claim).
pub fn verified_email(user: &User) -> Option<&str> {
    user.email.as_deref().filter(|_| user.email_verified)
}
