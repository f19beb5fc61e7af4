//! Access tokens for apps (SPEC §4): issuing them for a session, and verifying them where
//! latch itself is asked (`/verify` with a bearer token, `/introspect`, `/provider-token`).
//!
//! A token is a short-lived ES256 JWT; apps may check it offline against the JWKS until
//! `exp`. Wherever latch checks one, it also requires the session named by `sid` to be live,
//! so sign-out and revocation win there at once.
use super::keys::{KeyError, KeyRing};
use super::refresh::Issued;
use crate::config::TokensConfig;
use crate::crypto::random_token;
use crate::error::{printable, AuthError, ErrorCode};
use crate::identity::{User, Users};
use crate::session::Sessions;
use crate::store::StoreError;
use serde_json::{json, Value};
use std::time::Duration;

pub struct AccessTokens {
    keys: KeyRing,
    issuer: String,
    ttl: Duration,
    /// `[tokens] audience`: the apps' APIs.
    api: Vec<String>,
    /// Every audience `/token` mints: `api` and `provider_token`.
    mintable: Vec<String>,
    /// `[tokens] provider_token_audience` alone: what `/provider-token` accepts.
    provider_token: Vec<String>,
}

/// Which audiences a check accepts.
#[derive(Clone, Copy, Debug)]
pub enum Accepted {
    /// `[tokens] audience` (`/verify`).
    Api,
    /// Any audience latch mints (`/introspect`).
    Mintable,
    /// Only the provider-token audience, and nothing beside it (`/provider-token`).
    ProviderTokens,
}

/// A verified token's claims, or why it is refused (for the log line; never the token).
pub type Verdict = Result<Value, String>;

impl AccessTokens {
    /// Tokens signed by `keys`, issued by `issuer`, for the audiences of `config`.
    pub fn new(keys: KeyRing, issuer: String, config: &TokensConfig) -> Self {
        AccessTokens {
            keys,
            issuer,
            ttl: config.access_ttl,
            api: config.audience.clone(),
            mintable: config.mintable_audiences().map(str::to_string).collect(),
            provider_token: vec![config.provider_token_audience.clone()],
        }
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
        let now = self.keys.clock().unix_secs();
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

    /// Signs a token for the user and session of a refresh family just started or rotated;
    /// `SessionRequired` when that user no longer exists.
    pub async fn issue_for(
        &self,
        users: &Users,
        issued: &Issued,
        audiences: &[&str],
    ) -> Result<String, AuthError> {
        let Some(user) = users.get(&issued.user_id).await? else {
            return Err(AuthError::new(
                ErrorCode::SessionRequired,
                format!(
                    "user {} of session {} no longer exists",
                    issued.user_id, issued.session_id
                ),
            ));
        };
        Ok(self.issue(&user, &issued.session_id, audiences).await?)
    }

    /// `[tokens] audience`: what a refreshed token is for.
    pub fn api_audiences(&self) -> Vec<&str> {
        self.api.iter().map(String::as_str).collect()
    }

    /// The audiences a `/token` call asks for: `asked` (space-separated, each one of
    /// `[tokens] audience` or `provider_token_audience`), else every `[tokens] audience`.
    pub fn requested<'a>(&'a self, asked: Option<&str>) -> Result<Vec<&'a str>, AuthError> {
        let Some(asked) = asked.filter(|a| !a.trim().is_empty()) else {
            return Ok(self.api_audiences());
        };
        let mut out = Vec::new();
        for a in asked.split_ascii_whitespace() {
            let Some(known) = self.mintable.iter().find(|m| *m == a) else {
                return Err(AuthError::new(
                    ErrorCode::InvalidAudience,
                    format!(
                        "audience {:?} is not one of tokens.audience or tokens.provider_token_audience",
                        printable(a, 100)
                    ),
                ));
            };
            if !out.contains(&known.as_str()) {
                out.push(known.as_str());
            }
        }
        // A token that names the provider-token audience names nothing else: an API that
        // receives a token must never be able to fetch the user's provider tokens with it.
        if out.len() > 1 && out.contains(&self.provider_token[0].as_str()) {
            return Err(AuthError::new(
                ErrorCode::InvalidAudience,
                "tokens.provider_token_audience cannot be combined with other audiences",
            ));
        }
        Ok(out)
    }

    /// Signature, `iss`, an `aud` among the `accepted` ones, `exp`, and a live session
    /// behind `sid`.
    pub async fn verify(
        &self,
        token: &str,
        accepted: Accepted,
        sessions: &Sessions,
    ) -> Result<Verdict, StoreError> {
        let audiences = match accepted {
            Accepted::Api => &self.api,
            Accepted::Mintable => &self.mintable,
            Accepted::ProviderTokens => &self.provider_token,
        };
        let claims = match self.keys.verify(token, &self.issuer, audiences).await? {
            Ok(claims) => claims,
            Err(why) => return Ok(Err(why)),
        };
        let Some(sid) = claims["sid"].as_str().filter(|s| !s.is_empty()) else {
            return Ok(Err("no sid claim".into()));
        };
        if !sessions.is_live(sid).await? {
            return Ok(Err(format!("session {sid} has ended")));
        }
        // Exactly that audience (`/token` never mixes it with others; a token from elsewhere
        // that does is refused too).
        if matches!(accepted, Accepted::ProviderTokens) && !claims["aud"].is_string() {
            return Ok(Err("aud names more than the provider-token audience".into()));
        }
        Ok(Ok(claims))
    }
}

/// The user's email if the provider verified it; `None` otherwise. Only this ever reaches
/// apps as an identity assertion (`X-Auth-Request-Email`, the `email` claim).
pub fn verified_email(user: &User) -> Option<&str> {
    user.email.as_deref().filter(|_| user.email_verified)
}
