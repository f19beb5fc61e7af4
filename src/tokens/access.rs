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
        groups: &[String],
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
            "groups": groups,
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
        Ok(self
            .issue(&user, &issued.session_id, &issued.groups, audiences)
            .await?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SessionConfig, TokensConfig};
    use crate::store::Store;
    use std::sync::Arc;

    const NOW_MS: i64 = 1_700_000_000_000;

    struct Fixture {
        tokens: AccessTokens,
        sessions: Sessions,
        users: Users,
        store: Arc<dyn Store>,
    }

    async fn fixture() -> Fixture {
        let store = crate::store::open("memory://", None).await.unwrap();
        let keys = KeyRing::with_clock(
            store.clone(),
            b"unit-test-secret-0123456789abcdef0123",
            Duration::from_secs(3600),
            Duration::from_secs(300),
            crate::clock::Clock::new(|| NOW_MS),
        );
        let config = TokensConfig {
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(3600),
            audience: vec!["api".into(), "api2".into()],
            key_rotation: Duration::from_secs(3600),
            refresh_grace: Duration::from_secs(1),
            provider_token_audience: "latch-provider-tokens".into(),
            introspection_clients: Vec::new(),
        };
        let sessions = Sessions::new(
            store.clone(),
            SessionConfig {
                max_age: Duration::from_secs(3600),
                idle_timeout: Duration::from_secs(3600),
                update_age: Duration::from_secs(3600),
                cookie_domain: None,
            },
        );
        Fixture {
            tokens: AccessTokens::new(keys, "https://login.test".into(), &config),
            sessions,
            users: Users::new(store.clone()),
            store,
        }
    }

    fn user(email: Option<&str>, verified: bool) -> User {
        User {
            id: "u1".into(),
            name: Some("Ada".into()),
            email: email.map(str::to_string),
            email_verified: verified,
            image: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// A token for `user` in a live session, checked as `/introspect` would.
    async fn claims_of(f: &Fixture, user: &User, audiences: &[&str]) -> Value {
        let (_, session) = f
            .sessions
            .create(user, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let token = f
            .tokens
            .issue(user, &session.id, &[], audiences)
            .await
            .unwrap();
        let claims = f
            .tokens
            .verify(&token, Accepted::Mintable, &f.sessions)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims["sid"], session.id.as_str());
        claims
    }

    #[tokio::test]
    async fn issued_claims_carry_the_session_lifetime_and_only_a_verified_email() {
        let f = fixture().await;
        assert_eq!(f.tokens.ttl(), Duration::from_secs(300));
        let claims = claims_of(&f, &user(Some("ada@x.test"), true), &["api"]).await;
        assert_eq!(claims["iss"], "https://login.test");
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["aud"], "api");
        assert_eq!(claims["iat"], NOW_MS / 1000);
        assert_eq!(claims["exp"], NOW_MS / 1000 + 300);
        assert_eq!(claims["email"], "ada@x.test");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Ada");
        let claims = claims_of(&f, &user(Some("ada@x.test"), false), &["api", "api2"]).await;
        assert_eq!(claims["aud"], serde_json::json!(["api", "api2"]));
        assert!(claims["email"].is_null());
        assert_eq!(claims["email_verified"], false);
        assert_eq!(
            verified_email(&user(Some("ada@x.test"), true)),
            Some("ada@x.test")
        );
        assert_eq!(verified_email(&user(Some("ada@x.test"), false)), None);
        assert_eq!(verified_email(&user(None, true)), None);
    }

    #[tokio::test]
    async fn issue_for_needs_the_user_to_still_exist() {
        let f = fixture().await;
        let issued = Issued {
            token: "t".into(),
            max_age: Duration::from_secs(60),
            family_id: "f".into(),
            session_id: "s".into(),
            user_id: "u1".into(),
            groups: Vec::new(),
        };
        let gone = f.tokens.issue_for(&f.users, &issued, &["api"]).await;
        assert_eq!(gone.unwrap_err().code, ErrorCode::SessionRequired);
        let ada = user(None, false);
        f.store
            .put(
                &crate::store::keys::user("u1"),
                &serde_json::to_vec(&ada).unwrap(),
                None,
            )
            .await
            .unwrap();
        let (_, session) = f
            .sessions
            .create(&ada, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let issued = Issued {
            session_id: session.id.clone(),
            ..issued
        };
        let token = f
            .tokens
            .issue_for(&f.users, &issued, &["api"])
            .await
            .unwrap();
        let claims = f
            .tokens
            .verify(&token, Accepted::Api, &f.sessions)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims["sid"], session.id.as_str());
    }

    #[tokio::test]
    async fn requested_audiences_are_known_deduplicated_and_never_mix_provider_tokens() {
        let f = fixture().await;
        let t = &f.tokens;
        assert_eq!(t.api_audiences(), ["api", "api2"]);
        assert_eq!(t.requested(None).unwrap(), ["api", "api2"]);
        assert_eq!(t.requested(Some("  ")).unwrap(), ["api", "api2"]);
        assert_eq!(t.requested(Some("api2")).unwrap(), ["api2"]);
        assert_eq!(t.requested(Some("api2 api api2")).unwrap(), ["api2", "api"]);
        assert_eq!(
            t.requested(Some("latch-provider-tokens")).unwrap(),
            ["latch-provider-tokens"]
        );
        for refused in [
            "other",
            "api other",
            "latch-provider-tokens api",
            "api latch-provider-tokens",
        ] {
            let err = t.requested(Some(refused)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidAudience, "{refused}");
        }
    }

    #[tokio::test]
    async fn verify_accepts_only_the_named_audiences_of_a_live_session() {
        let f = fixture().await;
        let ada = user(None, false);
        let (_, session) = f
            .sessions
            .create(&ada, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let sign = |aud: &'static [&'static str]| f.tokens.issue(&ada, &session.id, &[], aud);
        let api = sign(&["api"]).await.unwrap();
        let provider = sign(&["latch-provider-tokens"]).await.unwrap();
        let check = |token: String, accepted| {
            let f = &f;
            async move {
                f.tokens
                    .verify(&token, accepted, &f.sessions)
                    .await
                    .unwrap()
            }
        };
        assert!(check(api.clone(), Accepted::Api).await.is_ok());
        assert!(check(api.clone(), Accepted::Mintable).await.is_ok());
        assert!(check(api.clone(), Accepted::ProviderTokens).await.is_err());
        assert!(check(provider.clone(), Accepted::Api).await.is_err());
        assert!(check(provider.clone(), Accepted::Mintable).await.is_ok());
        assert!(check(provider.clone(), Accepted::ProviderTokens)
            .await
            .is_ok());
        // The provider-token audience beside another one (not minted by latch): refused there.
        let mixed = sign(&["latch-provider-tokens", "api"]).await.unwrap();
        assert!(check(mixed.clone(), Accepted::Mintable).await.is_ok());
        let why = check(mixed, Accepted::ProviderTokens).await.unwrap_err();
        assert!(why.contains("more than"), "{why}");
        // No sid, or an empty one: refused.
        let key = f.tokens.keys().current().await.unwrap();
        for sid in [Value::Null, "".into()] {
            let token = key.sign(&serde_json::json!({
                "iss": "https://login.test", "sub": "u1", "aud": "api",
                "exp": NOW_MS / 1000 + 60, "sid": sid,
            }));
            assert_eq!(
                check(token, Accepted::Api).await.unwrap_err(),
                "no sid claim"
            );
        }
        f.sessions.end_by_id(&session.id).await.unwrap();
        let why = check(api, Accepted::Api).await.unwrap_err();
        assert!(why.contains("has ended"), "{why}");
    }
}
