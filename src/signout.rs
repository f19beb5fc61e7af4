//! Federated sign-out (OpenID RP-Initiated Logout 1.0): the ID token a session signed in
//! with, kept sealed so that sign-out can hand it to the provider as `id_token_hint`, and the
//! single-use `state` that brings the browser back through `/signout/done` to where it was
//! going.
use crate::crypto::{open, random_token, seal, sha256_b64url};
use crate::store::{keys, Store, StoreError};
use std::time::Duration;

/// The sealing purpose of stored ID tokens (a sealed record opens only for its purpose).
const PURPOSE: &str = "session-id-token";
/// How long the provider may take to send the browser back.
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// Keeps `id_token` for the session `session_id` until `ttl` (the session's `max_age`).
pub async fn remember_id_token(
    store: &dyn Store,
    secret: &[u8],
    session_id: &str,
    id_token: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    let sealed = seal(secret, PURPOSE, id_token.as_bytes());
    store
        .put(
            &keys::session_id_token(session_id),
            sealed.as_bytes(),
            Some(ttl),
        )
        .await
}

/// Takes the session's ID token (it is of no use once the session has ended). `None` when
/// there is none, or it was sealed with a secret no longer in `keyring`.
pub async fn take_id_token(
    store: &dyn Store,
    keyring: &[&[u8]],
    session_id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(bytes) = store.take(&keys::session_id_token(session_id)).await? else {
        return Ok(None);
    };
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(|sealed| open(keyring, PURPOSE, sealed))
        .and_then(|plain| String::from_utf8(plain).ok()))
}

/// A fresh `state` for the provider's redirect back, remembering where to go then.
pub async fn start(store: &dyn Store, callback_url: &str) -> Result<String, StoreError> {
    let state = random_token(32);
    store
        .put(
            &keys::signout_state(&sha256_b64url(state.as_bytes())),
            callback_url.as_bytes(),
            Some(STATE_TTL),
        )
        .await?;
    Ok(state)
}

/// Where the sign-out that issued `state` was going; `None` for a state that is unknown,
/// expired or already used.
pub async fn finish(store: &dyn Store, state: &str) -> Result<Option<String>, StoreError> {
    if state.is_empty() || state.len() > 256 {
        return Ok(None);
    }
    let taken = store
        .take(&keys::signout_state(&sha256_b64url(state.as_bytes())))
        .await?;
    Ok(taken.and_then(|url| String::from_utf8(url).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_token_is_sealed_and_taken_once() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let (old, new) = (
            b"old-secret-0123456789abcdef012345".as_slice(),
            b"new-secret-0123456789abcdef012345".as_slice(),
        );
        remember_id_token(&*store, old, "s1", "eyJ.id.token", Duration::from_secs(60))
            .await
            .unwrap();
        let stored = store
            .get(&keys::session_id_token("s1"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&stored).contains("eyJ.id.token"),
            "sealed"
        );
        // Opens with a previous secret; only once.
        assert_eq!(
            take_id_token(&*store, &[new, old], "s1")
                .await
                .unwrap()
                .as_deref(),
            Some("eyJ.id.token")
        );
        assert_eq!(
            take_id_token(&*store, &[new, old], "s1").await.unwrap(),
            None
        );
        // A secret no longer in the keyring: none.
        remember_id_token(&*store, old, "s2", "t", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(take_id_token(&*store, &[new], "s2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_state_leads_back_once() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let state = start(&*store, "https://app.test/bye").await.unwrap();
        assert_eq!(
            finish(&*store, &state).await.unwrap().as_deref(),
            Some("https://app.test/bye")
        );
        assert_eq!(finish(&*store, &state).await.unwrap(), None);
        assert_eq!(finish(&*store, "made-up").await.unwrap(), None);
        assert_eq!(finish(&*store, "").await.unwrap(), None);
    }
}
