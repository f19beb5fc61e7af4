//! First-party sessions. The cookie carries a random 256-bit token; the store only ever
//! sees its SHA-256, so a leaked store dump cannot be replayed as cookies.
//! A session ends at `max_age` after sign-in (absolute) or `idle_timeout` after last use;
//! use extends it at most once per `update_age`, so reads rarely write.
//!
//! Store layout: `session:<id>` holds the record ([`codec`]), with a TTL at its end;
//! `user_sessions:<user id>` is the set of the user's session ids (sign out everywhere,
//! listing). The id is the base64url SHA-256 of the token (43 characters). Sessions made
//! before that keep the id they had, the hex SHA-256 (64 characters), and their JSON record
//! until their next extension: a cookie is looked up under its id and then under its old
//! one, and everything that names a session by id (access tokens' `sid`, refresh families,
//! the user index, the admin commands) takes either.
//!
//! (Over 600 lines with its unit tests, which are the last 525: the tests stay beside
//! the code they pin down.)
mod codec;
pub mod device;

use crate::audit::{Audit, EndedBy, Event};
use crate::config::SessionConfig;
use crate::crypto::{random_token, sha256_b64url, sha256_hex};
use crate::identity::User;
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use sha2::Digest;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a session holds. Stored in the binary form of [`codec`]; `Deserialize` reads the
/// JSON that versions before it wrote (these field names are that format).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionRecord {
    pub user_id: String,
    pub provider: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen: i64,
    /// The user's name and email as of the user's last sign-in, so `/session`, `/verify` and
    /// the sign-out page read this one record. (Profiles change only at sign-in, which makes
    /// a new session and rewrites the user's others: `Sessions::refresh_profiles`.)
    #[serde(default)]
    pub profile: SessionProfile,
    /// Where the session came from (SPEC §4): for the account page and `latch sessions
    /// list`, and the provider's session id for back-channel logout. Empty in records made
    /// before it existed (the JSON ones of earlier versions never have one).
    #[serde(skip)]
    pub origin: SessionOrigin,
    /// The groups the provider said the user is in at this sign-in (SPEC §6): per session,
    /// since each sign-in's provider says its own.
    #[serde(skip)]
    pub groups: Vec<String>,
}

/// Where a session was started. Everything is optional: a sign-in without a `User-Agent`, a
/// provider without `sid`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionOrigin {
    /// Which browser and system ("Firefox on Linux"), never the raw User-Agent: a record
    /// stays small, and holds no more about the device than is shown.
    pub device: Option<device::Device>,
    /// The client address the sign-in came from (through `trusted_proxies`).
    pub ip: Option<IpAddr>,
    /// The hash of the provider's session id (the ID token's `sid`, see
    /// [`provider_sid_hash`]), when it gave one. Back-channel logout finds sessions by the
    /// (provider, `sid`) index and only checks this to be sure, so 8 bytes are enough, and a
    /// UUID's 36 characters would not fit a record's 256 bytes.
    pub provider_sid: Option<[u8; 8]>,
}

/// What a session keeps of a provider's `sid`: the first 8 bytes of its SHA-256.
pub fn provider_sid_hash(sid: &str) -> [u8; 8] {
    let digest = sha2::Sha256::digest(sid.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SessionProfile {
    pub name: Option<String>,
    pub email: Option<String>,
    /// Did the provider verify `email`? Records written before this field existed read as
    /// unverified, so their email is not asserted to apps until the next sign-in.
    #[serde(default)]
    pub email_verified: bool,
    // No picture: only `/session` shows one, and it reads the user record (an `image` in a
    // record written as JSON by an earlier version is ignored).
}

impl SessionProfile {
    /// The email to assert to apps: only a verified one (SPEC §4).
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

impl From<&User> for SessionProfile {
    fn from(user: &User) -> Self {
        SessionProfile {
            name: user.name.clone(),
            email: user.email.clone(),
            email_verified: user.email.is_some() && user.email_verified,
        }
    }
}

pub struct Session {
    /// The store id (hash of the cookie token, see the module documentation); safe to log
    /// and to name in `sid` claims.
    pub id: String,
    pub record: SessionRecord,
    /// When the session ends if unused: the earlier of the absolute and the idle limit.
    pub expires: DateTime<Utc>,
}

pub use crate::clock::Clock;

pub struct Sessions {
    store: Arc<dyn Store>,
    config: SessionConfig,
    clock: Clock,
    /// Told of sessions found expired (`session.ended` by `expiry`); off by default.
    audit: Audit,
}

use crate::store::keys::{session as key, user_sessions as user_index};

/// The set of sessions started from one provider session, by the hash of its `sid` (which
/// comes from the provider: a key should not carry its text).
fn provider_index(provider: &str, sid_hash: &[u8; 8]) -> String {
    crate::store::keys::provider_session(provider, &hex::encode(sid_hash))
}

/// The mark a back-channel logout of one provider session leaves (see [`Sessions::create`]).
fn provider_logout_mark(provider: &str, sid_hash: &[u8; 8]) -> String {
    crate::store::keys::provider_logout(provider, &hex::encode(sid_hash))
}

/// How long that mark stays: a sign-in that got its ID token from the provider session before
/// the logout completes well within the 10 minutes a sign-in flow lives.
const PROVIDER_LOGOUT_MARK_TTL: Duration = Duration::from_secs(10 * 60);

/// Why [`Sessions::create`] made no session.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A back-channel logout ended the provider session this sign-in came from while the
    /// session was being made; it was ended again at once.
    #[error("a back-channel logout ended the provider session this sign-in came from while it was completing")]
    ProviderSessionEnded,
}

impl From<CreateError> for crate::error::AuthError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Store(e) => e.into(),
            CreateError::ProviderSessionEnded => crate::error::AuthError::new(
                crate::error::ErrorCode::ProviderSessionEnded,
                e.to_string(),
            ),
        }
    }
}

/// The store id of the session behind a cookie token: its SHA-256, base64url (43 characters).
pub fn session_id(token: &str) -> String {
    sha256_b64url(token.as_bytes())
}

/// The id a session made before the base64url ids has: the hex SHA-256 of its token.
fn legacy_session_id(token: &str) -> String {
    sha256_hex(token)
}

/// A stored record, in the current binary form or in the JSON of earlier versions.
fn decode(bytes: &[u8]) -> Option<SessionRecord> {
    match read(bytes) {
        Read::Record(r) => Some(r),
        Read::Newer | Read::Unreadable => None,
    }
}

enum Read {
    Record(SessionRecord),
    /// Written by a later version of latch (a rollback, or instances of two versions on one
    /// store): not found here, and not dropped either.
    Newer,
    Unreadable,
}

fn read(bytes: &[u8]) -> Read {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_or(Read::Unreadable, Read::Record);
    }
    match codec::decode(bytes) {
        codec::Decoded::Record(r) => Read::Record(r),
        codec::Decoded::Newer => Read::Newer,
        codec::Decoded::Unreadable => Read::Unreadable,
    }
}

fn encode(record: &SessionRecord) -> Vec<u8> {
    codec::encode(record)
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, config: SessionConfig) -> Self {
        Self::with_clock(store, config, Clock::system())
    }

    pub fn with_clock(store: Arc<dyn Store>, config: SessionConfig, clock: Clock) -> Self {
        Sessions {
            store,
            config,
            clock,
            audit: Audit::off(),
        }
    }

    /// Reports sessions found expired on load to `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Unix seconds.
    fn now(&self) -> i64 {
        self.clock.unix_secs()
    }

    pub fn max_age(&self) -> Duration {
        self.config.max_age
    }

    fn absolute_end(&self, r: &SessionRecord) -> i64 {
        r.created_at + self.config.max_age.as_secs() as i64
    }

    /// When the session ends however much it is used (`max_age` after sign-in), Unix ms.
    pub fn absolute_end_ms(&self, r: &SessionRecord) -> i64 {
        self.absolute_end(r).saturating_mul(1000)
    }

    fn end(&self, r: &SessionRecord) -> i64 {
        self.absolute_end(r)
            .min(r.last_seen + self.config.idle_timeout.as_secs() as i64)
    }

    fn ttl(&self, r: &SessionRecord) -> Duration {
        Duration::from_secs((self.end(r) - self.now()).max(1) as u64)
    }

    /// Starts a session; returns the cookie token (a fresh one at every sign-in).
    ///
    /// A session from a provider session (`sid`) is written, then indexed under that `sid`,
    /// and only then is the provider's logout mark looked for: a back-channel logout
    /// ([`Self::end_provider_session`]) sets the mark before it reads the index. So a logout
    /// racing this sign-in either finds the session in the index and ends it, or has set
    /// its mark before this looks, and this ends the session itself
    /// ([`CreateError::ProviderSessionEnded`]). Either way the logout wins.
    pub async fn create(
        &self,
        user: &User,
        provider: &str,
        origin: SessionOrigin,
        groups: Vec<String>,
    ) -> Result<(String, Session), CreateError> {
        let user_id = &user.id;
        let token = random_token(32);
        let id = session_id(&token);
        let t = self.now();
        let record = SessionRecord {
            user_id: user_id.to_string(),
            provider: provider.to_string(),
            created_at: t,
            last_seen: t,
            profile: user.into(),
            origin,
            groups,
        };
        let bytes = encode(&record);
        self.store
            .put(&key(&id), &bytes, Some(self.ttl(&record)))
            .await?;
        self.store
            .set_add(&user_index(user_id), &id, Some(self.config.max_age))
            .await?;
        if let Some(sid_hash) = &record.origin.provider_sid {
            self.store
                .set_add(
                    &provider_index(provider, sid_hash),
                    &id,
                    Some(self.config.max_age),
                )
                .await?;
            let mark = self
                .store
                .get(&provider_logout_mark(provider, sid_hash))
                .await?;
            if mark.is_some_and(|named| named.is_empty() || named == user_id.as_bytes()) {
                self.end_by_id(&id).await?;
                // Ended: what remains is an index entry, which `end_provider_session` drops
                // anyway when it meets it.
                if let Err(e) = self
                    .store
                    .set_remove(&provider_index(provider, sid_hash), &id)
                    .await
                {
                    tracing::warn!(session = %id, error = %e, "index entry of a session ended at sign-in left for later");
                }
                return Err(CreateError::ProviderSessionEnded);
            }
        }
        let expires = self.expires_at(&record);
        Ok((
            token,
            Session {
                id,
                record,
                expires,
            },
        ))
    }

    fn expires_at(&self, r: &SessionRecord) -> DateTime<Utc> {
        Utc.timestamp_opt(self.end(r), 0)
            .single()
            .unwrap_or_else(Utc::now)
    }

    /// The live session behind a cookie token, extending it when `update_age` has passed.
    pub async fn load(&self, token: &str) -> Result<Option<Session>, StoreError> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let Some((id, bytes)) = self.find(token).await? else {
            return Ok(None);
        };
        let mut record = match read(&bytes) {
            Read::Record(record) => record,
            Read::Newer => {
                tracing::warn!(session = %id, "session record of a later latch version ignored");
                return Ok(None);
            }
            Read::Unreadable => {
                tracing::warn!(session = %id, "unreadable session record dropped");
                self.store.delete(&key(&id)).await?;
                return Ok(None);
            }
        };
        let t = self.now();
        if t >= self.end(&record) {
            self.store.delete(&key(&id)).await?;
            self.audit.emit(|| {
                let limit = if t >= self.absolute_end(&record) {
                    "absolute"
                } else {
                    "idle"
                };
                Event::session_ended(EndedBy::Expiry, &id)
                    .user(&record.user_id)
                    .provider(&record.provider)
                    .with("limit", limit)
            });
            return Ok(None);
        }
        if t - record.last_seen >= self.config.update_age.as_secs() as i64 {
            record.last_seen = t;
            // A record written as JSON is rewritten in the current form (under its own key).
            let bytes = encode(&record);
            // Only over a record that still exists: a sign-out or revoke that landed after
            // the read above wins, and this request no longer sees the session either.
            if !self
                .store
                .put_existing(&key(&id), &bytes, Some(self.ttl(&record)))
                .await?
            {
                return Ok(None);
            }
        }
        let expires = self.expires_at(&record);
        Ok(Some(Session {
            id,
            record,
            expires,
        }))
    }

    /// Ends the session behind a cookie token (a no-op if there is none).
    pub async fn delete(&self, token: &str) -> Result<(), StoreError> {
        if !plausible_token(token) {
            return Ok(());
        }
        for id in [session_id(token), legacy_session_id(token)] {
            if let Some(bytes) = self.store.take(&key(&id)).await? {
                if let Some(record) = decode(&bytes) {
                    self.store
                        .set_remove(&user_index(&record.user_id), &id)
                        .await?;
                }
                break;
            }
        }
        Ok(())
    }

    /// The id and stored record behind a cookie token: under its id, or else under the id
    /// sessions made before the base64url ids have. (A cookie with no session costs two
    /// reads; one `max_age` after the upgrade no session is left under an old id.)
    async fn find(&self, token: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let id = session_id(token);
        if let Some(bytes) = self.store.get(&key(&id)).await? {
            return Ok(Some((id, bytes)));
        }
        // Only after a miss: hashing twice on every request was a measurable share of it.
        let id = legacy_session_id(token);
        Ok(self.store.get(&key(&id)).await?.map(|bytes| (id, bytes)))
    }

    /// The user's live sessions, oldest first, without extending them. Index entries whose
    /// session has ended are dropped from the index on the way.
    pub async fn list_for_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        let index = user_index(user_id);
        let t = self.now();
        let mut sessions = Vec::new();
        for id in self.store.set_members(&index).await? {
            let record = match self.store.get(&key(&id)).await? {
                Some(bytes) => match read(&bytes) {
                    Read::Record(record) => Some(record),
                    // A later version's session (instances of two versions on one store):
                    // not listed here, but its index entry stays, or that version could no
                    // longer end it with the others.
                    Read::Newer => continue,
                    Read::Unreadable => None,
                },
                None => None,
            };
            match record {
                Some(record) if record.user_id == user_id && t < self.end(&record) => {
                    let expires = self.expires_at(&record);
                    sessions.push(Session {
                        id,
                        record,
                        expires,
                    });
                }
                _ => self.store.set_remove(&index, &id).await?,
            }
        }
        sessions.sort_by(|a, b| (a.record.created_at, &a.id).cmp(&(b.record.created_at, &b.id)));
        Ok(sessions)
    }

    /// Ends every session of the user ("sign out everywhere"); returns how many were live.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.revoke_user_except(user_id, None).await
    }

    /// Ends every session of the user but `keep` (the account page's "sign out everywhere
    /// else"), or all of them; returns how many were live.
    pub async fn revoke_user_except(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<usize, StoreError> {
        Ok(self.end_user_sessions(user_id, keep).await?.len())
    }

    /// [`Sessions::revoke_user_except`], answering the ids of the live sessions it ended.
    pub async fn end_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let index = user_index(user_id);
        let t = self.now();
        let mut revoked = Vec::new();
        for id in self.store.set_members(&index).await? {
            if keep == Some(id.as_str()) {
                continue;
            }
            if let Some(bytes) = self.store.take(&key(&id)).await? {
                if decode(&bytes).is_some_and(|r| t < self.end(&r)) {
                    revoked.push(id.clone());
                }
            }
            // Member by member: a session created meanwhile keeps its index entry.
            self.store.set_remove(&index, &id).await?;
        }
        Ok(revoked)
    }

    /// Ends every session of every user; returns how many were live. Scans the store (for
    /// `latch sessions revoke --all`; never on a request).
    pub async fn revoke_all(&self) -> Result<usize, StoreError> {
        Ok(self.end_all().await?.len())
    }

    /// [`Sessions::revoke_all`], answering the (session id, user id) of each live one ended.
    pub async fn end_all(&self) -> Result<Vec<(String, String)>, StoreError> {
        let t = self.now();
        let mut revoked = Vec::new();
        for k in self
            .store
            .keys_with_prefix(crate::store::keys::SESSION_PREFIX)
            .await?
        {
            let Some(bytes) = self.store.take(&k).await? else {
                continue;
            };
            if let Some(record) = decode(&bytes) {
                let id = &k[crate::store::keys::SESSION_PREFIX.len()..];
                self.store
                    .set_remove(&user_index(&record.user_id), id)
                    .await?;
                if t < self.end(&record) {
                    revoked.push((id.to_string(), record.user_id));
                }
            }
        }
        Ok(revoked)
    }
}

impl Sessions {
    /// Is the session with store id `id` (not the cookie token) still live? Never extends it.
    pub async fn is_live(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.live_record(id).await?.is_some())
    }

    /// The record of the session with store id `id` while it is live. Never extends it.
    pub async fn live_record(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let Some(bytes) = self.store.get(&key(id)).await? else {
            return Ok(None);
        };
        Ok(decode(&bytes).filter(|record| self.now() < self.end(record)))
    }

    /// Ends the session with store id `id` if it is one of `user_id`'s (the account page's
    /// "end this session"); returns whether it was. Another user's session, an ended one, or
    /// an id that names nothing are all left alone and answer `false`.
    pub async fn end_of_user(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.get(&key(id)).await? else {
            return Ok(false);
        };
        if decode(&bytes).is_none_or(|r| r.user_id != user_id) {
            return Ok(false);
        }
        // Ids are never reused, so the record taken is the one just checked (or already gone).
        self.end_by_id(id).await
    }

    /// Ends the session with store id `id` (token theft detected, revocation by id); returns
    /// whether there was a record to end.
    pub async fn end_by_id(&self, id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.take(&key(id)).await? else {
            return Ok(false);
        };
        if let Some(record) = decode(&bytes) {
            self.store
                .set_remove(&user_index(&record.user_id), id)
                .await?;
        }
        Ok(true)
    }

    /// Leaves the mark of a back-channel logout of provider session `sid` (see
    /// [`Self::create`]), for the account `user_id` or, with `None`, any: a sign-in from it
    /// that is completing now ends its own session. [`Self::end_provider_session`] sets it
    /// itself; a logout naming a provider account latch does not know yet (a first sign-in
    /// that has not made its user yet) sets only this.
    pub async fn mark_provider_logout(
        &self,
        provider: &str,
        sid: &str,
        user_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store
            .put(
                &provider_logout_mark(provider, &provider_sid_hash(sid)),
                user_id.unwrap_or_default().as_bytes(),
                Some(PROVIDER_LOGOUT_MARK_TTL),
            )
            .await
    }

    /// Ends every session started from the provider session `sid` at `provider` (a
    /// back-channel logout), only those of `user_id` when it is given (the Logout Token also
    /// named the account); returns how many were live. Index entries are dropped as they are
    /// read; one whose session ended otherwise is simply dropped.
    pub async fn end_provider_session(
        &self,
        provider: &str,
        sid: &str,
        user_id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let sid_hash = provider_sid_hash(sid);
        // First the mark, then the index: a sign-in from this provider session that is
        // being completed right now ends its own session when it sees the mark (`create`).
        self.mark_provider_logout(provider, sid, user_id).await?;
        let index = provider_index(provider, &sid_hash);
        let t = self.now();
        let mut ended = 0;
        for id in self.store.set_members(&index).await? {
            let record = match self.store.get(&key(&id)).await? {
                Some(bytes) => decode(&bytes),
                None => None,
            };
            let Some(record) = record
                .filter(|r| r.provider == provider && r.origin.provider_sid == Some(sid_hash))
            else {
                // Ended already (or not from this provider session): nothing to end.
                self.store.set_remove(&index, &id).await?;
                continue;
            };
            if user_id.is_some_and(|u| u != record.user_id) {
                // Another account's (the token named one): left alone.
                continue;
            }
            if self.store.take(&key(&id)).await?.is_some() && t < self.end(&record) {
                ended += 1;
                self.audit.emit(|| {
                    Event::session_ended(EndedBy::Backchannel, &id)
                        .user(&record.user_id)
                        .provider(provider)
                });
            }
            self.store
                .set_remove(&user_index(&record.user_id), &id)
                .await?;
            self.store.set_remove(&index, &id).await?;
        }
        Ok(ended)
    }

    /// Ends every session the user started with `provider` (a back-channel logout that names
    /// only the account, `sub`); returns how many were live.
    pub async fn end_provider_account(
        &self,
        provider: &str,
        user_id: &str,
    ) -> Result<usize, StoreError> {
        let mut ended = 0;
        for session in self.list_for_user(user_id).await? {
            // `list_for_user` has checked whose it is.
            if session.record.provider == provider && self.end_by_id(&session.id).await? {
                ended += 1;
                self.audit.emit(|| {
                    Event::session_ended(EndedBy::Backchannel, &session.id)
                        .user(user_id)
                        .provider(provider)
                });
            }
        }
        Ok(ended)
    }

    /// After a sign-in, the user's other live sessions take the profile it brought (a new
    /// name or email, or an email the provider no longer verifies), so `/session`
    /// and `/verify` on every device show and assert what the provider said last. Only over
    /// records that still exist: a session revoked meanwhile stays gone. Returns how many
    /// records were rewritten (none when the profile did not change).
    pub async fn refresh_profiles(&self, user: &User) -> Result<usize, StoreError> {
        let profile = SessionProfile::from(user);
        let mut rewritten = 0;
        for Session { id, mut record, .. } in self.list_for_user(&user.id).await? {
            if record.profile == profile {
                continue;
            }
            record.profile = profile.clone();
            let ttl = self.ttl(&record);
            if self
                .store
                .put_existing(&key(&id), &encode(&record), Some(ttl))
                .await?
            {
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }
}

/// Cookie tokens are 43 URL-safe characters; anything else is not worth a store lookup.
/// Only a shortcut: an implausible token also finds no record (mutation testing reports
/// `true` here as a survivor, an equivalent one: the lookup it saves would answer "none").
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    const HOUR: u64 = 3600;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: Some("Ann".into()),
            email: Some("ann@x.test".into()),
            email_verified: true,
            image: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    async fn setup() -> (Sessions, Arc<AtomicI64>, Arc<dyn Store>) {
        let store = crate::store::open("memory://", None).await.unwrap();
        let time = Arc::new(AtomicI64::new(1_000_000));
        let t = time.clone();
        let config = SessionConfig {
            max_age: Duration::from_secs(30 * 24 * HOUR),
            idle_timeout: Duration::from_secs(7 * 24 * HOUR),
            update_age: Duration::from_secs(24 * HOUR),
            cookie_domain: None,
        };
        let sessions = Sessions::with_clock(
            store.clone(),
            config,
            Clock::new(move || t.load(Ordering::SeqCst) * 1000),
        );
        (sessions, time, store)
    }

    fn advance(time: &AtomicI64, secs: u64) {
        time.fetch_add(secs as i64, Ordering::SeqCst);
    }

    /// Sign out everywhere counts only the sessions still live: one at the last second of its
    /// idle limit is over (the same boundary as `load` and `is_live`).
    #[tokio::test]
    async fn revoke_user_counts_only_live_sessions() {
        let (sessions, time, _) = setup().await;
        let (over, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        advance(&time, 2 * HOUR);
        let (live, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        // The first is exactly at its idle end; the second has two hours left.
        advance(&time, 7 * 24 * HOUR - 2 * HOUR);
        assert_eq!(sessions.revoke_user("u1").await.unwrap(), 1);
        assert!(sessions.load(&over).await.unwrap().is_none());
        assert!(sessions.load(&live).await.unwrap().is_none());
        // The same boundary for every user at once.
        let (over, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        advance(&time, 2 * HOUR);
        sessions
            .create(&user("u2"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        advance(&time, 7 * 24 * HOUR - 2 * HOUR);
        assert_eq!(sessions.revoke_all().await.unwrap(), 1);
        assert!(sessions.load(&over).await.unwrap().is_none());
    }

    /// A later version's session (instances of two versions on one store) is not listed, but
    /// keeps its index entry, so "sign out everywhere" still ends it.
    #[tokio::test]
    async fn a_later_versions_session_stays_in_the_index() {
        let (sessions, _, store) = setup().await;
        let (_, newer) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let mut bytes = store.get(&key(&newer.id)).await.unwrap().unwrap();
        bytes[0] = 3;
        store.put(&key(&newer.id), &bytes, None).await.unwrap();
        assert!(sessions.list_for_user("u1").await.unwrap().is_empty());
        assert_eq!(
            store.set_members(&user_index("u1")).await.unwrap(),
            vec![newer.id.clone()]
        );
        sessions.revoke_user("u1").await.unwrap();
        assert_eq!(store.get(&key(&newer.id)).await.unwrap(), None);
    }

    /// The account page's two ways to end sessions: one of the user's own (never another
    /// user's), and every one but this.
    #[tokio::test]
    async fn a_user_ends_only_their_own_sessions() {
        let (sessions, _, store) = setup().await;
        let (mine, my_session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (other, other_session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (theirs, their_session) = sessions
            .create(&user("u2"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert!(!sessions.end_of_user("u1", &their_session.id).await.unwrap());
        assert!(sessions.load(&theirs).await.unwrap().is_some());
        assert!(!sessions.end_of_user("u1", "no-such-id").await.unwrap());
        assert!(sessions.end_of_user("u1", &other_session.id).await.unwrap());
        assert!(sessions.load(&other).await.unwrap().is_none());
        assert!(
            !sessions.end_of_user("u1", &other_session.id).await.unwrap(),
            "already ended"
        );
        assert_eq!(
            store.set_members(&user_index("u1")).await.unwrap(),
            vec![my_session.id.clone()]
        );

        let (a, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (b, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(
            sessions
                .revoke_user_except("u1", Some(&my_session.id))
                .await
                .unwrap(),
            2
        );
        assert!(sessions.load(&a).await.unwrap().is_none());
        assert!(sessions.load(&b).await.unwrap().is_none());
        assert!(sessions.load(&mine).await.unwrap().is_some());
        assert!(sessions.load(&theirs).await.unwrap().is_some());
        assert_eq!(
            store.set_members(&user_index("u1")).await.unwrap(),
            vec![my_session.id]
        );
    }

    /// A sign-in's new profile reaches the user's other live sessions, keeps their times,
    /// and brings back none that ended; an unchanged profile rewrites nothing.
    #[tokio::test]
    async fn a_new_profile_reaches_the_other_sessions_and_no_ended_one() {
        let (sessions, time, store) = setup().await;
        let (a, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (revoked, revoked_session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (other, _) = sessions
            .create(&user("u2"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        advance(&time, HOUR);
        let before = sessions.load(&a).await.unwrap().unwrap();
        assert_eq!(sessions.refresh_profiles(&user("u1")).await.unwrap(), 0);
        // Revoked, but still in the index (as when a revoke races the refresh).
        store.delete(&key(&revoked_session.id)).await.unwrap();
        let mut renamed = user("u1");
        renamed.name = Some("Ann B".into());
        renamed.email_verified = false;
        assert_eq!(sessions.refresh_profiles(&renamed).await.unwrap(), 1);
        let after = sessions.load(&a).await.unwrap().unwrap();
        assert_eq!(after.record.profile.name.as_deref(), Some("Ann B"));
        assert_eq!(after.record.profile.verified_email(), None);
        assert_eq!(
            (
                after.record.created_at,
                after.record.last_seen,
                after.expires
            ),
            (
                before.record.created_at,
                before.record.last_seen,
                before.expires
            )
        );
        assert!(sessions.load(&revoked).await.unwrap().is_none());
        let untouched = sessions.load(&other).await.unwrap().unwrap();
        assert_eq!(untouched.record.profile.name.as_deref(), Some("Ann"));
        // An ended session is not rewritten either.
        advance(&time, 8 * 24 * HOUR);
        assert_eq!(sessions.refresh_profiles(&user("u1")).await.unwrap(), 0);
    }

    /// The store keeps a record exactly until the session's end (the earlier of the idle and
    /// the absolute limit), never longer, and at least a second.
    #[tokio::test]
    async fn the_store_ttl_is_the_time_left() {
        let (sessions, time, _) = setup().await;
        let now = time.load(Ordering::SeqCst);
        let record = |created_at: i64, last_seen: i64| SessionRecord {
            user_id: "u1".into(),
            provider: "dev".into(),
            created_at,
            last_seen,
            profile: SessionProfile::default(),
            origin: SessionOrigin::default(),
            groups: Vec::new(),
        };
        // Idle limit first: seen an hour ago, 7 days of idle allowed.
        let idle = record(now - 2 * HOUR as i64, now - HOUR as i64);
        assert_eq!(
            sessions.ttl(&idle),
            Duration::from_secs(7 * 24 * HOUR - HOUR)
        );
        // Absolute limit first: started 29 days and 23 hours ago.
        let old = now - (30 * 24 - 1) * HOUR as i64;
        assert_eq!(sessions.ttl(&record(old, now)), Duration::from_secs(HOUR));
        // Already over: one second, never zero.
        assert_eq!(
            sessions.ttl(&record(now - 40 * 24 * HOUR as i64, now)),
            Duration::from_secs(1)
        );
        assert_eq!(sessions.max_age(), Duration::from_secs(30 * 24 * HOUR));
    }

    /// `email_verified` is never true without an email, whatever the user record says.
    #[test]
    fn a_profile_without_email_is_not_verified() {
        let mut u = user("u1");
        u.email = None;
        let profile = SessionProfile::from(&u);
        assert!(!profile.email_verified);
        assert_eq!(profile.verified_email(), None);
        let verified = SessionProfile::from(&user("u1"));
        assert!(verified.email_verified);
        assert_eq!(verified.verified_email(), Some("ann@x.test"));
        assert_eq!(verified.name.as_deref(), Some("Ann"));
        let mut unverified = user("u1");
        unverified.email_verified = false;
        assert_eq!(SessionProfile::from(&unverified).verified_email(), None);
    }

    #[tokio::test]
    async fn idle_sessions_end_and_active_ones_are_extended() {
        let (sessions, time, _) = setup().await;
        let (token, _) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        // Used every 6 days: each use after update_age pushes the idle limit out.
        for _ in 0..3 {
            advance(&time, 6 * 24 * HOUR);
            let s = sessions.load(&token).await.unwrap().expect("still alive");
            assert_eq!(s.record.last_seen, time.load(Ordering::SeqCst));
        }
        // Then unused for more than 7 days: gone.
        advance(&time, 7 * 24 * HOUR + 1);
        assert!(sessions.load(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn absolute_lifetime_ends_even_an_active_session() {
        let (sessions, time, _) = setup().await;
        let (token, created) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let start = time.load(Ordering::SeqCst);
        for _ in 0..4 {
            advance(&time, 6 * 24 * HOUR);
            assert!(sessions.load(&token).await.unwrap().is_some());
        }
        // 30 days after sign-in it ends however recently it was used.
        time.store(start + 30 * 24 * 3600, Ordering::SeqCst);
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert!(created.expires.timestamp() <= start + 30 * 24 * 3600);
    }

    #[tokio::test]
    async fn reads_within_update_age_do_not_write() {
        let (sessions, time, store) = setup().await;
        let (token, session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let before = store.get(&key(&session.id)).await.unwrap();
        advance(&time, HOUR);
        sessions.load(&token).await.unwrap().unwrap();
        let after = store.get(&key(&session.id)).await.unwrap();
        assert_eq!(before, after, "no write within update_age");
    }

    #[tokio::test]
    async fn only_the_hash_is_stored_and_delete_ends_it() {
        let (sessions, _, store) = setup().await;
        let (token, session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(session.id, session_id(&token));
        assert_eq!(session.id.len(), 43);
        assert!(store.get(&key(&token)).await.unwrap().is_none());
        assert_eq!(
            store.set_members("user_sessions:u1").await.unwrap(),
            vec![session.id.clone()]
        );
        sessions.delete(&token).await.unwrap();
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert!(store
            .set_members("user_sessions:u1")
            .await
            .unwrap()
            .is_empty());
        // Malformed tokens never reach the store.
        assert!(sessions.load("short").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_last_second_is_the_same_for_load_is_live_and_listing() {
        let (sessions, time, _) = setup().await;
        let (token, session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let end = session.expires.timestamp();
        time.store(end - 1, Ordering::SeqCst);
        assert!(sessions.is_live(&session.id).await.unwrap());
        assert_eq!(sessions.list_for_user("u1").await.unwrap().len(), 1);
        // At `end` exactly, every view agrees that it has ended.
        time.store(end, Ordering::SeqCst);
        assert!(!sessions.is_live(&session.id).await.unwrap());
        assert!(sessions.list_for_user("u1").await.unwrap().is_empty());
        assert!(sessions.load(&token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn listing_skips_records_of_other_users_and_ended_sessions() {
        let (sessions, time, store) = setup().await;
        let (_, mine) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (_, theirs) = sessions
            .create(&user("u2"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        // An index entry naming another user's session (a corrupt or forged index).
        store
            .set_add("user_sessions:u1", &theirs.id, None)
            .await
            .unwrap();
        let listed = sessions.list_for_user("u1").await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            [mine.id.as_str()]
        );
        assert_eq!(
            store.set_members("user_sessions:u1").await.unwrap(),
            vec![mine.id.clone()],
            "the stray entry is dropped"
        );
        advance(&time, 8 * 24 * HOUR);
        assert!(sessions.list_for_user("u1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_extension_never_recreates_a_revoked_session() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let config = SessionConfig {
            max_age: Duration::from_secs(30 * 24 * HOUR),
            idle_timeout: Duration::from_secs(7 * 24 * HOUR),
            update_age: Duration::ZERO,
            cookie_domain: None,
        };
        let sessions = Sessions::new(store.clone(), config);
        let (token, session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        // A load that read the record before the revocation writes its extension after it:
        // the conditional write finds nothing and creates nothing.
        let bytes = store.get(&key(&session.id)).await.unwrap().unwrap();
        assert_eq!(sessions.revoke_user("u1").await.unwrap(), 1);
        assert!(!store
            .put_existing(&key(&session.id), &bytes, Some(Duration::from_secs(60)))
            .await
            .unwrap());
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert!(!sessions.is_live(&session.id).await.unwrap());
    }

    /// A record as the versions before the binary form wrote it: JSON under the hex id.
    async fn legacy_session(store: &Arc<dyn Store>, user_id: &str, t: i64) -> (String, String) {
        let token = random_token(32);
        let id = sha256_hex(&token);
        let json = serde_json::json!({
            "user_id": user_id,
            "provider": "dev",
            "created_at": t,
            "last_seen": t,
            "profile": {"name": "Ann", "email": "ann@x.test", "email_verified": true, "image": "https://x.test/a.png"},
        });
        store
            .put(
                &key(&id),
                json.to_string().as_bytes(),
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        store
            .set_add(&user_index(user_id), &id, None)
            .await
            .unwrap();
        (token, id)
    }

    #[tokio::test]
    async fn sessions_from_before_the_binary_form_keep_working() {
        let (sessions, time, store) = setup().await;
        let t = time.load(Ordering::SeqCst);
        let (token, id) = legacy_session(&store, "u1", t).await;
        let s = sessions
            .load(&token)
            .await
            .unwrap()
            .expect("old record loads");
        assert_eq!(
            s.id, id,
            "an old session keeps its id (sid claims, refresh families)"
        );
        assert_eq!(s.record.profile.verified_email(), Some("ann@x.test"));
        assert!(sessions.is_live(&id).await.unwrap());
        // Listed beside a new session of the same user, under its own id.
        let (_, new) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let listed: Vec<String> = sessions
            .list_for_user("u1")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&id) && listed.contains(&new.id));

        // An extension rewrites it in the binary form, under the same key.
        advance(&time, 25 * HOUR);
        assert!(sessions.load(&token).await.unwrap().is_some());
        let bytes = store.get(&key(&id)).await.unwrap().unwrap();
        assert_eq!(bytes[0], 2, "rewritten as version 2");
        assert_eq!(
            sessions
                .load(&token)
                .await
                .unwrap()
                .unwrap()
                .record
                .last_seen,
            time.load(Ordering::SeqCst)
        );

        // Signing out ends it and drops it from the index.
        sessions.delete(&token).await.unwrap();
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert_eq!(
            store.set_members("user_sessions:u1").await.unwrap(),
            vec![new.id.clone()]
        );

        // Sign out everywhere, end by id and revoke --all find old sessions too.
        let (a, _) = legacy_session(&store, "u1", time.load(Ordering::SeqCst)).await;
        assert_eq!(sessions.revoke_user("u1").await.unwrap(), 2);
        assert!(sessions.load(&a).await.unwrap().is_none());
        let (b, b_id) = legacy_session(&store, "u2", time.load(Ordering::SeqCst)).await;
        sessions.end_by_id(&b_id).await.unwrap();
        assert!(sessions.load(&b).await.unwrap().is_none());
        legacy_session(&store, "u3", time.load(Ordering::SeqCst)).await;
        sessions
            .create(&user("u3"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(sessions.revoke_all().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_record_of_a_later_version_is_neither_read_nor_dropped() {
        let (sessions, _, store) = setup().await;
        let (token, session) = sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let key = key(&session.id);
        let mut bytes = store.get(&key).await.unwrap().unwrap();
        bytes[0] = 3;
        store.put(&key, &bytes, None).await.unwrap();
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert_eq!(store.get(&key).await.unwrap(), Some(bytes), "left in place");
        // An unreadable one is dropped.
        store.put(&key, b"\x01garbage", None).await.unwrap();
        assert!(sessions.load(&token).await.unwrap().is_none());
        assert_eq!(store.get(&key).await.unwrap(), None);
    }

    /// A session found past its limit on load is reported to the audit log, with the limit
    /// it passed; a live one is not.
    #[tokio::test]
    async fn a_session_found_expired_is_an_audit_event() {
        let (sessions, time, _) = setup().await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let audit = Audit::open(Some(&crate::config::AuditTarget::File(path.clone()))).unwrap();
        let sessions = sessions.with_audit(audit.clone());
        let (idle, s1) = sessions
            .create(&user("u1"), "dev", SessionOrigin::default(), Vec::new())
            .await
            .unwrap();
        assert!(sessions.load(&idle).await.unwrap().is_some());
        advance(&time, 7 * 24 * HOUR);
        assert!(sessions.load(&idle).await.unwrap().is_none());
        audit.flush().await;
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["event"], "session.ended");
        assert_eq!(line["by"], "expiry");
        assert_eq!(line["limit"], "idle");
        assert_eq!(line["session"], s1.id.as_str());
        assert_eq!(line["user_id"], "u1");
        assert_eq!(line["provider"], "dev");
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&idle));
    }

    fn from_provider_session(sid: &str) -> SessionOrigin {
        SessionOrigin {
            provider_sid: Some(provider_sid_hash(sid)),
            ..SessionOrigin::default()
        }
    }

    /// A back-channel logout that lands while a sign-in from that provider session is being
    /// completed, before the new session is in the `sid` index: the sign-in finds the
    /// logout's mark and ends its own session; a sign-in from another provider session, or
    /// (when the logout named one) as another account, is not touched.
    #[tokio::test]
    async fn a_sign_in_completing_after_its_provider_session_was_logged_out_ends_itself() {
        let (sessions, _, store) = setup().await;
        assert_eq!(
            sessions
                .end_provider_session("oidc", "op-1", None)
                .await
                .unwrap(),
            0
        );
        let refused = sessions
            .create(
                &user("u1"),
                "oidc",
                from_provider_session("op-1"),
                Vec::new(),
            )
            .await;
        assert!(
            matches!(refused, Err(CreateError::ProviderSessionEnded)),
            "{:?}",
            refused.as_ref().err()
        );
        assert!(sessions.list_for_user("u1").await.unwrap().is_empty());
        let index = provider_index("oidc", &provider_sid_hash("op-1"));
        assert!(store.set_members(&index).await.unwrap().is_empty());
        // Another provider session, the same provider session at another provider, and a
        // session without `sid`: signed in.
        for (provider, origin) in [
            ("oidc", from_provider_session("op-2")),
            ("other", from_provider_session("op-1")),
            ("oidc", SessionOrigin::default()),
        ] {
            let (token, _) = sessions
                .create(&user("u1"), provider, origin, Vec::new())
                .await
                .unwrap();
            assert!(sessions.load(&token).await.unwrap().is_some());
        }
        // A logout that named the account: only that account's sign-in ends itself.
        sessions
            .end_provider_session("oidc", "op-3", Some("u2"))
            .await
            .unwrap();
        let (token, _) = sessions
            .create(
                &user("u1"),
                "oidc",
                from_provider_session("op-3"),
                Vec::new(),
            )
            .await
            .unwrap();
        assert!(sessions.load(&token).await.unwrap().is_some());
        let refused = sessions
            .create(
                &user("u2"),
                "oidc",
                from_provider_session("op-3"),
                Vec::new(),
            )
            .await;
        assert!(
            matches!(refused, Err(CreateError::ProviderSessionEnded)),
            "{:?}",
            refused.as_ref().err()
        );
    }

    /// Sign-ins and the logout of their provider session, run at the same moment on two
    /// threads, many times: afterwards no session from it is live, whichever went first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_back_channel_logout_racing_a_sign_in_from_its_provider_session_wins() {
        let (sessions, _, _) = setup().await;
        let sessions = Arc::new(sessions);
        for round in 0..200 {
            let sid = format!("op-{round}");
            let signing_in = {
                let (sessions, sid) = (sessions.clone(), sid.clone());
                tokio::spawn(async move {
                    sessions
                        .create(&user("u1"), "oidc", from_provider_session(&sid), Vec::new())
                        .await
                })
            };
            let logging_out = {
                let (sessions, sid) = (sessions.clone(), sid.clone());
                tokio::spawn(async move { sessions.end_provider_session("oidc", &sid, None).await })
            };
            let (signed_in, logged_out) = (signing_in.await.unwrap(), logging_out.await.unwrap());
            logged_out.unwrap();
            match signed_in {
                Ok((token, _)) => assert!(
                    sessions.load(&token).await.unwrap().is_none(),
                    "round {round}: the session outlived its provider session's logout"
                ),
                Err(CreateError::ProviderSessionEnded) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert!(sessions.list_for_user("u1").await.unwrap().is_empty());
    }
}
