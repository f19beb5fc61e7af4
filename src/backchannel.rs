//! OpenID Back-Channel Logout 1.0: a verified Logout Token (`provider::logout`) ends the
//! latch sessions it names, on every instance at once (they share the store), and only once:
//! its `jti` is remembered for as long as the token would pass the checks, and a replay is
//! refused.
use crate::crypto::sha256_b64url;
use crate::identity::Users;
use crate::provider::logout::LogoutClaims;
use crate::session::Sessions;
use crate::store::{keys, Store, StoreError};
use std::time::Duration;

/// What a logout did: how many live sessions it ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Ended(usize),
    /// This `jti` was acted on before: nothing ended (a 400 for the caller).
    Replayed,
}

/// Ends what `claims` (from `provider`, already verified) name: with `sid`, the sessions
/// started from that provider session (only the account's, when `sub` names one too); with
/// `sub` alone, every session of that account made with this provider. `now` is Unix seconds.
pub async fn log_out(
    store: &dyn Store,
    users: &Users,
    sessions: &Sessions,
    provider: &str,
    claims: &LogoutClaims,
    now: i64,
) -> Result<Outcome, StoreError> {
    let jti_key = keys::logout_jti(provider, &sha256_b64url(claims.jti.as_bytes()));
    let ttl = Duration::from_secs((claims.acceptable_until - now).max(1) as u64);
    if !store.put_new(&jti_key, b"1", Some(ttl)).await? {
        return Ok(Outcome::Replayed);
    }
    let ended = end_named(users, sessions, provider, claims).await;
    if ended.is_err() {
        // Not everything was ended: let the provider's retry through. If the store is too
        // far gone for that as well, the retry is refused as a replay: say so.
        if let Err(e) = store.delete(&jti_key).await {
            tracing::error!(provider, jti_key = %jti_key, error = %e, "back-channel logout failed half-way and its jti stays recorded: a retry of this Logout Token will be refused as a replay; end the sessions with `latch sessions revoke`");
        }
    }
    ended.map(Outcome::Ended)
}

async fn end_named(
    users: &Users,
    sessions: &Sessions,
    provider: &str,
    claims: &LogoutClaims,
) -> Result<usize, StoreError> {
    let owner = match &claims.sub {
        Some(sub) => match users.owner_of(provider, sub).await? {
            Some(user) => Some(user),
            // An account latch does not know has no sessions here, but its first sign-in
            // may be completing from that provider session: it must not last either.
            None => {
                if let Some(sid) = &claims.sid {
                    sessions.mark_provider_logout(provider, sid, None).await?;
                }
                return Ok(0);
            }
        },
        None => None,
    };
    match (&claims.sid, owner) {
        (Some(sid), owner) => {
            sessions
                .end_provider_session(provider, sid, owner.as_deref())
                .await
        }
        (None, Some(user)) => sessions.end_provider_account(provider, &user).await,
        // `check_claims` lets no token through without one of them.
        (None, None) => Ok(0),
    }
}
