//! Provider tokens kept for apps (SPEC §4; `providers.<id>.expose_tokens`).
//!
//! After each sign-in with a provider that sets `expose_tokens = true`, the provider's
//! access token, refresh token, ID token, expiry and scope are kept as one JSON record sealed
//! with the server secret (AES-256-GCM, purpose `provider-token`); records sealed with a
//! secret listed in `server.previous_secrets` still open. Providers without `expose_tokens`
//! have nothing kept at all.
//!
//! [`ProviderTokens::for_user`] finds a user's account at a provider; [`current`] hands out the access token, refreshing it at the provider first when it has
//! expired (or is about to). Refreshes of one account are serialized across instances by a
//! store lock, so a single-use provider refresh token is sent upstream once and its successor
//! is never lost: the lock holder re-reads the record (another caller may have refreshed it
//! meanwhile), refreshes, stores the new set and releases the lock; everyone else polls the
//! record until it changes.
//!
//! | key | value |
//! |---|---|
//! | `provider_tokens:<provider>:<subject>` | the sealed JSON record (no TTL: a refresh token may live long) |
//! | `provider_tokens_lock:<provider>:<subject>` | refresh lock (`put_new`, 10 s TTL or longer for slow providers), released by its owner |
use crate::clock::now_ms;
use crate::crypto::{open, random_token, seal};
use crate::error::{AuthError, ErrorCode};
use crate::identity::Users;
use crate::provider::{Provider, TokenSet};
use crate::store::keys::{provider_tokens as record_key, provider_tokens_lock as lock_key};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PURPOSE: &str = "provider-token";
const LOCK_TTL: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);
/// A token expiring within this much (at most half its lifetime) is refreshed first.
const MARGIN_MS: i64 = 30_000;

/// One account's provider tokens. `Debug` shows no token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Kept {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// Unix ms; `None` when the provider gave no `expires_in`.
    pub expires_at: Option<i64>,
    pub scope: Option<String>,
    /// Unix ms when the access token was obtained.
    pub obtained_at: i64,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Kept {
    /// The record for a new token response. What the response leaves out (a refresh token,
    /// an ID token, the scope: RFC 6749 section 6 lets a refresh omit them) keeps its
    /// previous value; a new refresh token replaces the old one (single-use tokens).
    fn merge(set: &TokenSet, previous: Option<&Kept>, now: i64) -> Kept {
        Kept {
            access_token: set.access_token.clone(),
            refresh_token: set
                .refresh_token
                .clone()
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            id_token: set
                .id_token
                .clone()
                .or_else(|| previous.and_then(|p| p.id_token.clone())),
            expires_at: set
                .expires_in
                .map(|s| now.saturating_add((s.min(i64::MAX as u64 / 1000) as i64) * 1000)),
            scope: set
                .scope
                .clone()
                .or_else(|| previous.and_then(|p| p.scope.clone())),
            obtained_at: now,
        }
    }

    /// Usable as it is: no known expiry, or more than the margin (30 s, at most half the
    /// token's lifetime) left.
    pub fn fresh(&self, now: i64) -> bool {
        match self.expires_at {
            None => true,
            Some(exp) => {
                let margin = MARGIN_MS.min((exp - self.obtained_at).max(0) / 2);
                now + margin < exp
            }
        }
    }
}

/// The provider tokens apps ask for (`GET /provider-token/{provider}`).
pub struct ProviderTokens {
    store: Arc<dyn Store>,
}

impl ProviderTokens {
    pub fn new(store: Arc<dyn Store>) -> Self {
        ProviderTokens { store }
    }

    /// The current tokens of `user_id`'s account at `provider` (see [`current`]).
    pub async fn for_user(
        &self,
        users: &Users,
        user_id: &str,
        provider: &Arc<Provider>,
    ) -> Result<Kept, AuthError> {
        if !provider.config.expose_tokens {
            return Err(not_exposed(provider));
        }
        let Some(subject) = users.subject_at(user_id, provider.id()).await? else {
            return Err(AuthError::new(
                ErrorCode::NoProviderAccount,
                format!("user {user_id} has no {} account", provider.id()),
            ));
        };
        current(&self.store, provider, &subject).await
    }
}

/// Keeps the tokens of a sign-in with `provider` as `subject` (only with `expose_tokens`).
pub async fn remember(
    store: &dyn Store,
    provider: &Provider,
    subject: &str,
    tokens: &TokenSet,
) -> Result<(), AuthError> {
    let Some(secrets) = provider.token_secrets() else {
        return Ok(());
    };
    let key = record_key(provider.id(), subject);
    // An earlier record only contributes a refresh token the new answer lacks.
    let previous = load(store, &secrets, &key).await.ok().flatten();
    let kept = Kept::merge(tokens, previous.as_ref(), now_ms());
    save(store, secrets[0], &key, &kept).await
}

async fn load(store: &dyn Store, secrets: &[&[u8]], key: &str) -> Result<Option<Kept>, AuthError> {
    let Some(bytes) = store.get(key).await? else {
        return Ok(None);
    };
    let unreadable = |why: &str| {
        AuthError::new(
            ErrorCode::ProviderTokenExpired,
            format!("{key}: {why}; a new sign-in with the provider replaces it"),
        )
    };
    let sealed = std::str::from_utf8(&bytes).map_err(|_| unreadable("not a sealed record"))?;
    let json = open(secrets, PURPOSE, sealed).ok_or_else(|| {
        unreadable("sealed with a secret that is neither server.secret nor in previous_secrets")
    })?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|_| unreadable("unreadable record"))
}

async fn save(store: &dyn Store, secret: &[u8], key: &str, kept: &Kept) -> Result<(), AuthError> {
    let json = serde_json::to_vec(kept).expect("provider token records serialize");
    let sealed = seal(secret, PURPOSE, &json);
    store.put(key, sealed.as_bytes(), None).await?;
    Ok(())
}

/// Rewrites a record read under the lock, only if it still exists: a user deletion or an
/// unlink that removed it meanwhile wins (the refreshed tokens are dropped, never kept).
async fn save_existing(
    store: &dyn Store,
    secret: &[u8],
    key: &str,
    kept: &Kept,
) -> Result<(), AuthError> {
    let json = serde_json::to_vec(kept).expect("provider token records serialize");
    let sealed = seal(secret, PURPOSE, &json);
    if store.put_existing(key, sealed.as_bytes(), None).await? {
        Ok(())
    } else {
        Err(AuthError::new(
            ErrorCode::NoProviderAccount,
            "provider token record removed during refresh (account unlinked or user deleted)",
        ))
    }
}

/// The account's current provider tokens, refreshed at the provider first when the access
/// token has expired or is about to (one upstream call per account, whatever the number of
/// concurrent callers and instances).
pub async fn current(
    store: &Arc<dyn Store>,
    provider: &Arc<Provider>,
    subject: &str,
) -> Result<Kept, AuthError> {
    let Some(secrets) = provider.token_secrets() else {
        return Err(not_exposed(provider));
    };
    let key = record_key(provider.id(), subject);
    let no_record = || {
        AuthError::new(
            ErrorCode::NoProviderAccount,
            format!(
                "no tokens kept for this {} account (signed in before expose_tokens was set?)",
                provider.id()
            ),
        )
    };
    let kept = load(store.as_ref(), &secrets, &key)
        .await?
        .ok_or_else(no_record)?;
    if kept.fresh(now_ms()) {
        return Ok(kept);
    }
    if kept.refresh_token.is_none() {
        return Err(expired_without_refresh(provider.id()));
    }
    let stale = kept.access_token;
    let lock = lock_key(provider.id(), subject);
    let lock_ttl = LOCK_TTL.max(provider.config.timeout + Duration::from_secs(5));
    let deadline = Instant::now() + provider.config.timeout + Duration::from_secs(2);
    loop {
        let owner = random_token(16);
        if store
            .put_new(&lock, owner.as_bytes(), Some(lock_ttl))
            .await?
        {
            // In its own task: a caller that goes away mid-refresh must not lose the new
            // (single-use) refresh token the provider has already issued.
            let (store, provider, subject) = (store.clone(), provider.clone(), subject.to_string());
            let task = tokio::spawn(async move {
                let result = refresh_locked(store.as_ref(), &provider, &subject, &stale).await;
                release(store.as_ref(), &lock, &owner).await;
                result
            });
            return task.await.unwrap_or_else(|e| {
                Err(AuthError::new(
                    ErrorCode::InternalError,
                    format!("provider token refresh task failed: {e}"),
                ))
            });
        }
        tokio::time::sleep(POLL).await;
        let kept = load(store.as_ref(), &secrets, &key)
            .await?
            .ok_or_else(no_record)?;
        if kept.access_token != stale || kept.fresh(now_ms()) {
            return Ok(kept);
        }
        if kept.refresh_token.is_none() {
            // The holder's refresh was refused and the refresh token dropped.
            return Err(expired_without_refresh(provider.id()));
        }
        if Instant::now() >= deadline {
            return Err(AuthError::new(
                ErrorCode::ProviderTimeout,
                format!(
                    "another request's refresh of this {} account did not finish in time",
                    provider.id()
                ),
            ));
        }
    }
}

fn not_exposed(provider: &Provider) -> AuthError {
    AuthError::new(
        ErrorCode::TokensNotExposed,
        format!("provider {:?} does not set expose_tokens", provider.id()),
    )
}

fn expired_without_refresh(provider: &str) -> AuthError {
    AuthError::new(
        ErrorCode::ProviderTokenExpired,
        format!("the {provider} access token expired and there is no refresh token"),
    )
}

/// Under the account's lock: refresh unless another caller already did.
async fn refresh_locked(
    store: &dyn Store,
    provider: &Provider,
    subject: &str,
    stale: &str,
) -> Result<Kept, AuthError> {
    let secrets = provider.token_secrets().unwrap_or_default();
    let key = record_key(provider.id(), subject);
    let Some(mut kept) = load(store, &secrets, &key).await? else {
        return Err(AuthError::new(
            ErrorCode::NoProviderAccount,
            "provider token record vanished during refresh",
        ));
    };
    let now = now_ms();
    if kept.access_token != stale || kept.fresh(now) {
        return Ok(kept);
    }
    let Some(refresh_token) = kept.refresh_token.clone() else {
        return Err(expired_without_refresh(provider.id()));
    };
    match provider.refresh(&refresh_token).await {
        Ok(set) => {
            let next = Kept::merge(&set, Some(&kept), now_ms());
            save_existing(store, secrets[0], &key, &next).await?;
            tracing::info!(provider = provider.id(), "provider access token refreshed");
            Ok(next)
        }
        Err(e) if e.code == ErrorCode::ProviderTokenExpired => {
            // The provider will not take this refresh token again: forget it, so waiting and
            // later callers are told to sign in again without another upstream call.
            kept.refresh_token = None;
            save_existing(store, secrets[0], &key, &kept).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn release(store: &dyn Store, key: &str, owner: &str) {
    // Only the owner deletes it (a lock that outlived its TTL may be someone else's now),
    // compared and deleted in one step.
    if let Err(e) = store.delete_if(key, owner.as_bytes()).await {
        tracing::warn!(error = %e, "provider token lock not released; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> TokenSet {
        TokenSet {
            access_token: access.into(),
            id_token: None,
            refresh_token: refresh.map(str::to_string),
            expires_in,
            scope: None,
        }
    }

    #[test]
    fn merge_keeps_what_the_new_answer_lacks() {
        let mut first = set("a1", Some("r1"), Some(60));
        first.scope = Some("read".into());
        first.id_token = Some("id1".into());
        let kept = Kept::merge(&first, None, 1_000);
        assert_eq!(kept.expires_at, Some(61_000));
        let next = Kept::merge(&set("a2", None, None), Some(&kept), 2_000);
        assert_eq!(next.access_token, "a2");
        assert_eq!(next.refresh_token.as_deref(), Some("r1"));
        assert_eq!(next.scope.as_deref(), Some("read"));
        assert_eq!(next.id_token.as_deref(), Some("id1"));
        assert_eq!(next.expires_at, None);
        let rotated = Kept::merge(&set("a3", Some("r2"), Some(1)), Some(&next), 3_000);
        assert_eq!(rotated.refresh_token.as_deref(), Some("r2"));
        assert!(!format!("{rotated:?}").contains("a3"));
    }

    #[test]
    fn freshness_margin_is_30s_or_half_the_lifetime() {
        let long = Kept::merge(&set("a", None, Some(3600)), None, 0);
        assert!(long.fresh(3_600_000 - 31_000));
        assert!(!long.fresh(3_600_000 - 29_000));
        let short = Kept::merge(&set("a", None, Some(1)), None, 0);
        assert!(short.fresh(400));
        assert!(!short.fresh(600));
        assert!(Kept::merge(&set("a", None, None), None, 0).fresh(i64::MAX / 2));
    }

    #[tokio::test]
    async fn records_are_sealed_and_open_with_previous_secrets() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let old = b"old-secret-old-secret-old-secret-0123".as_slice();
        let new = b"new-secret-new-secret-new-secret-0123".as_slice();
        let kept = Kept::merge(&set("gho_plain_access", Some("r1"), Some(60)), None, 0);
        save(store.as_ref(), old, "k", &kept).await.unwrap();
        let raw = store.get("k").await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("gho_plain_access"));
        let opened = load(store.as_ref(), &[new, old], "k")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.access_token, "gho_plain_access");
        let refused = load(store.as_ref(), &[new], "k").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::ProviderTokenExpired);
    }
}
