//! Every key latch writes, in one place. Each kind of record has one owner, the only module
//! that reads or writes it; everything else goes through the owner's methods. No other
//! module spells a key.
//!
//! | key | holds | owner | lives | when a user is deleted |
//! |---|---|---|---|---|
//! | `user:<user id>` | the user (JSON) | `identity` | until deleted | deleted |
//! | `account:<provider>:<subject>` | the user id a provider account belongs to | `identity` | until unlinked | deleted |
//! | `user_accounts:<user id>` | set of `<provider>:<subject>` | `identity` | until deleted | deleted |
//! | `email:<lowercased email>` | the user id with that verified email | `identity` | until deleted | deleted if it names the user |
//! | `provider_tokens:<provider>:<subject>` | the account's provider tokens, sealed | `provider_tokens` (deleted by `identity` with the account) | until unlinked | deleted |
//! | `provider_tokens_lock:<provider>:<subject>` | lock while one request refreshes them | `provider_tokens` | 10 s | expires |
//! | `session:<session id>` | the session record | `session` | its end (absolute or idle) | deleted (`Sessions::revoke_user`) |
//! | `user_sessions:<user id>` | set of the user's session ids | `session` | `max_age` | deleted |
//! | `provider_session:<provider>:<sid hash>` | set of the session ids started from one provider session (the ID token's `sid`), for back-channel logout | `session` | `max_age` | expires (its sessions are gone) |
//! | `provider_logout:<provider>:<sid hash>` | a back-channel logout of that provider session: a sign-in from it that was in flight then ends its new session instead of keeping it | `session` | 10 min | expires |
//! | `session_id_token:<session id>` | the ID token a session signed in with, sealed, for federated sign-out's `id_token_hint` (only providers with `federated_signout`) | `signout` | `max_age` | expires (the session is gone, sign-out takes it) |
//! | `signout_state:<state hash>` | where a federated sign-out goes once the provider sends the browser back | `signout` | 10 min, taken once | — |
//! | `logout_jti:<provider>:<jti hash>` | a Logout Token already acted on (replays are refused) | `backchannel` | the token's life | — |
//! | `refresh_family:<family id>` | a refresh-token family, sealed | `tokens::refresh` | `refresh_ttl` | refused at once (its session is gone), expires |
//! | `refresh_token:<token hash>` | the family a refresh token belongs to | `tokens::refresh` | `refresh_ttl` | expires |
//! | `session_refresh:<session id>` | set of a session's families | `tokens::refresh` | `refresh_ttl` | expires |
//! | `refresh_lock:<family id>` | lock while one request rotates a family | `tokens::refresh` | 5 s | expires |
//! | `signing_key:<period ms>:<slot>` | an access-token signing key, sealed | `tokens::keys` | until its last token expires | — |
//! | `flow:<state hash>` | a sign-in in progress (PKCE verifier, nonce, where to go) | `flow` | 10 min, taken once | — |
//! | `flow_binding:<binding hash>` | set of state hashes started by one browser | `flow` | 10 min | — |
//! | `ratelimit:<class>:<client>` | the GCRA arrival time of a client's requests | `web::limits` | one rate period | — |
//!
//! Ids and hashes are never secrets themselves: a session id is the hash of the cookie's
//! token, a flow key the hash of `state`, a refresh key the hash of the token.

// Keys are joined with `concat`, not `format!`: the session key is built on every request,
// and the formatting machinery cost it more than the allocation (`bench/instructions.sh`).

/// Prefix of every user record (the admin CLI lists users by it).
pub const USER_PREFIX: &str = "user:";
/// Prefix of every session record (only `latch sessions revoke --all` walks it).
pub const SESSION_PREFIX: &str = "session:";

pub fn user(id: &str) -> String {
    [USER_PREFIX, id].concat()
}

pub fn account(provider: &str, subject: &str) -> String {
    ["account:", provider, ":", subject].concat()
}

pub fn user_accounts(user_id: &str) -> String {
    ["user_accounts:", user_id].concat()
}

/// Emails are matched without regard to case.
pub fn email(email: &str) -> String {
    format!("email:{}", email.to_lowercase())
}

pub fn provider_tokens(provider: &str, subject: &str) -> String {
    ["provider_tokens:", provider, ":", subject].concat()
}

pub fn provider_tokens_lock(provider: &str, subject: &str) -> String {
    ["provider_tokens_lock:", provider, ":", subject].concat()
}

pub fn session(id: &str) -> String {
    [SESSION_PREFIX, id].concat()
}

pub fn user_sessions(user_id: &str) -> String {
    ["user_sessions:", user_id].concat()
}

pub fn provider_session(provider: &str, sid_hash: &str) -> String {
    ["provider_session:", provider, ":", sid_hash].concat()
}

pub fn provider_logout(provider: &str, sid_hash: &str) -> String {
    ["provider_logout:", provider, ":", sid_hash].concat()
}

pub fn session_id_token(session_id: &str) -> String {
    ["session_id_token:", session_id].concat()
}

pub fn signout_state(state_hash: &str) -> String {
    ["signout_state:", state_hash].concat()
}

pub fn logout_jti(provider: &str, jti_hash: &str) -> String {
    ["logout_jti:", provider, ":", jti_hash].concat()
}

pub fn refresh_family(id: &str) -> String {
    ["refresh_family:", id].concat()
}

pub fn refresh_token(hash: &str) -> String {
    ["refresh_token:", hash].concat()
}

pub fn session_refresh(session_id: &str) -> String {
    ["session_refresh:", session_id].concat()
}

pub fn refresh_lock(family_id: &str) -> String {
    ["refresh_lock:", family_id].concat()
}

pub fn signing_key(period_ms: i64, slot: i64) -> String {
    format!("signing_key:{period_ms}:{slot}")
}

pub fn flow(state_hash: &str) -> String {
    ["flow:", state_hash].concat()
}

pub fn flow_binding(binding_hash: &str) -> String {
    ["flow_binding:", binding_hash].concat()
}

/// `client` is written as it displays (an IP address or network), with no copy in between:
/// this runs on every rate-limited request.
pub fn rate_limit(class: &str, client: impl std::fmt::Display) -> String {
    format!("ratelimit:{class}:{client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefix belongs to one kind of record: no key of one kind starts with another's
    /// prefix, so a prefix walk (users, sessions) never meets a stranger.
    #[test]
    fn prefixes_do_not_overlap() {
        let samples = [
            user("u"),
            account("p", "s"),
            user_accounts("u"),
            email("A@B"),
            provider_tokens("p", "s"),
            provider_tokens_lock("p", "s"),
            session("i"),
            user_sessions("u"),
            provider_session("p", "h"),
            provider_logout("p", "h"),
            logout_jti("p", "h"),
            session_id_token("i"),
            signout_state("h"),
            refresh_family("f"),
            refresh_token("h"),
            session_refresh("i"),
            refresh_lock("f"),
            signing_key(1, 2),
            flow("h"),
            flow_binding("h"),
            rate_limit("c", "k"),
        ];
        let prefix = |k: &str| k[..=k.find(':').unwrap()].to_string();
        let mut prefixes: Vec<String> = samples.iter().map(|k| prefix(k)).collect();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), samples.len(), "{prefixes:?}");
        assert!(user("u").starts_with(USER_PREFIX));
        assert!(session("i").starts_with(SESSION_PREFIX));
        assert_eq!(email("Ann@Example.COM"), "email:ann@example.com");
    }
}
