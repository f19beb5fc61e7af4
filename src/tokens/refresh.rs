//! Refresh-token families: one family per `/token` call, bound to a session; each use rotates
//! the token. The store keeps only SHA-256 hashes as keys; the current token itself is kept
//! sealed in the family record so that a request racing with a rotation (within the grace
//! window) can be given the same new token. Presenting any rotated token later revokes the
//! family and the session behind it.
//!
//! Rotation is serialized per family across instances by a lock record taken with
//! `put_new` (5 s TTL, released by its owner), so two instances never both rotate one token.
//!
//! (Over 600 lines with its unit tests, which are the last 224: the tests stay beside
//! the code they pin down.)
use crate::clock::now_ms;
use crate::crypto::{open, random_token, seal, sha256_hex};
use crate::session::{Session, Sessions};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PURPOSE: &str = "refresh-token";
const LOCK_TTL: Duration = Duration::from_secs(5);
const LOCK_WAIT: Duration = Duration::from_secs(3);

use crate::store::keys::{
    refresh_family as family_key, refresh_lock as lock_key, refresh_token as token_key,
    session_refresh as session_index,
};

#[derive(Debug, Serialize, Deserialize)]
struct Family {
    id: String,
    session_id: String,
    user_id: String,
    /// SHA-256 of the token that is valid now.
    current: String,
    /// The current token, sealed with the server secret (re-sent to a racing request).
    current_sealed: String,
    /// SHA-256 of the token it replaced, accepted within the grace window.
    previous: Option<String>,
    /// Unix ms of the last rotation.
    rotated_at: i64,
    /// Unix ms when the family ends (never after the session's absolute end).
    expires_at: i64,
}

/// A refresh token handed out, with its cookie lifetime.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    pub max_age: Duration,
    pub family_id: String,
    pub session_id: String,
    pub user_id: String,
    /// The session's groups, for the access token issued with it.
    pub groups: Vec<String>,
}

/// Why a refresh token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unknown, expired or revoked.
    Unknown,
    /// The session behind the family has ended.
    SessionEnded,
    /// An already rotated token came back after the grace window: family and session revoked.
    Reused {
        family_id: String,
        /// The session ended with it, and its user (for the audit log).
        session_id: String,
        user_id: String,
    },
    /// The family lock could not be taken in time (another instance holds it).
    Busy,
}

pub struct RefreshFamilies {
    store: Arc<dyn Store>,
    secret: Vec<u8>,
    /// Earlier server secrets: they still open sealed tokens, never seal new ones.
    previous: Vec<Vec<u8>>,
    ttl: Duration,
    grace: Duration,
}

/// Refresh tokens are 43 URL-safe characters; anything else never reaches the store.
fn plausible(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the store says about a refresh token, read without rotating or revoking anything
/// (`latch token inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyView {
    pub family_id: String,
    pub session_id: String,
    pub user_id: String,
    /// The token is the family's current one (not yet rotated).
    pub current: bool,
    /// Unix ms of the last rotation, and when the family ends.
    pub rotated_at: i64,
    pub expires_at: i64,
}

/// The family `token` belongs to, if the store has it; `None` for a token it does not know.
pub async fn lookup(store: &dyn Store, token: &str) -> Result<Option<FamilyView>, StoreError> {
    if !plausible(token) {
        return Ok(None);
    }
    let hash = sha256_hex(token);
    let Some(id) = store.get(&token_key(&hash)).await? else {
        return Ok(None);
    };
    let Ok(id) = String::from_utf8(id) else {
        return Ok(None);
    };
    let Some(bytes) = store.get(&family_key(&id)).await? else {
        return Ok(None);
    };
    let Ok(family) = serde_json::from_slice::<Family>(&bytes) else {
        return Ok(None);
    };
    Ok(Some(FamilyView {
        current: family.current == hash,
        family_id: family.id,
        session_id: family.session_id,
        user_id: family.user_id,
        rotated_at: family.rotated_at,
        expires_at: family.expires_at,
    }))
}

impl RefreshFamilies {
    pub fn new(store: Arc<dyn Store>, secret: &[u8], ttl: Duration, grace: Duration) -> Self {
        RefreshFamilies {
            store,
            secret: secret.to_vec(),
            previous: Vec::new(),
            ttl,
            grace,
        }
    }

    /// Also opens tokens sealed with these earlier server secrets (`server.previous_secrets`).
    pub fn with_previous_secrets(mut self, previous: &[&[u8]]) -> Self {
        self.previous = previous.iter().map(|s| s.to_vec()).collect();
        self
    }

    fn remaining(family: &Family) -> Duration {
        Duration::from_millis((family.expires_at - now_ms()).max(1000) as u64)
    }

    /// Writes a new family record.
    async fn save_new(&self, family: &Family) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(family).expect("families serialize");
        self.store
            .put(
                &family_key(&family.id),
                &bytes,
                Some(Self::remaining(family)),
            )
            .await
    }

    /// Rewrites an existing family record; false if it was revoked meanwhile (revocation
    /// does not take the family lock, so a rotation must never recreate the record).
    async fn save_existing(&self, family: &Family) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(family).expect("families serialize");
        self.store
            .put_existing(
                &family_key(&family.id),
                &bytes,
                Some(Self::remaining(family)),
            )
            .await
    }

    /// Starts a family for a session; `session_end_ms` is the session's absolute end.
    pub async fn create(
        &self,
        session_id: &str,
        user_id: &str,
        session_end_ms: i64,
    ) -> Result<Issued, StoreError> {
        let now = now_ms();
        let token = random_token(32);
        let family = Family {
            id: random_token(16),
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
            current: sha256_hex(&token),
            current_sealed: seal(&self.secret, PURPOSE, token.as_bytes()),
            previous: None,
            rotated_at: now,
            expires_at: (now + self.ttl.as_millis() as i64).min(session_end_ms),
        };
        let ttl = Self::remaining(&family);
        self.save_new(&family).await?;
        self.store
            .put(&token_key(&family.current), family.id.as_bytes(), Some(ttl))
            .await?;
        self.store
            .set_add(&session_index(session_id), &family.id, Some(self.ttl))
            .await?;
        Ok(Issued {
            token,
            max_age: ttl,
            family_id: family.id,
            session_id: family.session_id,
            user_id: family.user_id,
            groups: Vec::new(),
        })
    }

    /// Starts a family for `session` (a `/token` call), ending at the session's absolute end;
    /// `None` when a sign-out that answered meanwhile ended the session (the family goes too).
    pub async fn start(
        &self,
        session: &Session,
        sessions: &Sessions,
    ) -> Result<Option<Issued>, StoreError> {
        let end_ms = sessions.absolute_end_ms(&session.record);
        let mut issued = self
            .create(&session.id, &session.record.user_id, end_ms)
            .await?;
        issued.groups = session.record.groups.clone();
        if !sessions.is_live(&session.id).await? {
            self.revoke_session(&session.id).await?;
            return Ok(None);
        }
        Ok(Some(issued))
    }

    /// The family id a token belongs to (rotated tokens included), if any.
    async fn family_of(&self, token: &str) -> Result<Option<String>, StoreError> {
        if !plausible(token) {
            return Ok(None);
        }
        Ok(self
            .store
            .get(&token_key(&sha256_hex(token)))
            .await?
            .and_then(|v| String::from_utf8(v).ok()))
    }

    /// Rotates `token`: a new token for the current one; the same new token again for the
    /// previous one within the grace window; anything else revokes the family and session.
    pub async fn rotate(
        &self,
        token: &str,
        sessions: &Sessions,
    ) -> Result<Result<Issued, Refusal>, StoreError> {
        let Some(family_id) = self.family_of(token).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        let Some(lock) = self.lock(&family_id).await? else {
            return Ok(Err(Refusal::Busy));
        };
        let outcome = self.rotate_locked(token, &family_id, sessions).await;
        lock.release().await;
        outcome
    }

    async fn rotate_locked(
        &self,
        token: &str,
        family_id: &str,
        sessions: &Sessions,
    ) -> Result<Result<Issued, Refusal>, StoreError> {
        let Some(bytes) = self.store.get(&family_key(family_id)).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        let Ok(mut family) = serde_json::from_slice::<Family>(&bytes) else {
            tracing::warn!(family = %family_id, "unreadable refresh family dropped");
            self.store.delete(&family_key(family_id)).await?;
            return Ok(Err(Refusal::Unknown));
        };
        let Some(session) = sessions.live_record(&family.session_id).await? else {
            self.revoke_family(&family.id, &family.session_id).await?;
            return Ok(Err(Refusal::SessionEnded));
        };
        let hash = sha256_hex(token);
        let now = now_ms();
        if hash == family.current {
            let next = random_token(32);
            family.previous = Some(family.current.clone());
            family.current = sha256_hex(&next);
            family.current_sealed = seal(&self.secret, PURPOSE, next.as_bytes());
            family.rotated_at = now;
            let ttl = Self::remaining(&family);
            if !self.save_existing(&family).await? {
                return Ok(Err(Refusal::Unknown));
            }
            // After the family record: a revocation racing with this rotation leaves at
            // most a token that names a family that no longer exists.
            self.store
                .put(&token_key(&family.current), family.id.as_bytes(), Some(ttl))
                .await?;
            return Ok(Ok(Issued {
                token: next,
                max_age: ttl,
                family_id: family.id,
                session_id: family.session_id,
                user_id: family.user_id,
                groups: session.groups,
            }));
        }
        let within_grace = now - family.rotated_at <= self.grace.as_millis() as i64;
        if family.previous.as_deref() == Some(hash.as_str()) && within_grace {
            // A request that raced with the rotation: give it the same current token.
            let current = open(
                &std::iter::once(self.secret.as_slice())
                    .chain(self.previous.iter().map(Vec::as_slice))
                    .collect::<Vec<_>>(),
                PURPOSE,
                &family.current_sealed,
            )
            .and_then(|t| String::from_utf8(t).ok());
            if let Some(current) = current {
                return Ok(Ok(Issued {
                    token: current,
                    max_age: Self::remaining(&family),
                    family_id: family.id,
                    session_id: family.session_id,
                    user_id: family.user_id,
                    groups: session.groups,
                }));
            }
            tracing::warn!(family = %family.id, "current refresh token cannot be unsealed (server.secret changed?)");
            return Ok(Err(Refusal::Unknown));
        }
        // A rotated token again, after the grace window: assume it was stolen.
        tracing::warn!(
            family = %family.id,
            session = %family.session_id,
            "refresh token reuse detected: revoking the token family and its session"
        );
        self.revoke_session(&family.session_id).await?;
        sessions.end_by_id(&family.session_id).await?;
        Ok(Err(Refusal::Reused {
            family_id: family.id,
            session_id: family.session_id,
            user_id: family.user_id,
        }))
    }

    async fn revoke_family(&self, family_id: &str, session_id: &str) -> Result<(), StoreError> {
        self.store.delete(&family_key(family_id)).await?;
        self.store
            .set_remove(&session_index(session_id), family_id)
            .await
    }

    /// Ends the family `token` belongs to (any of its tokens, rotated or current); false
    /// if there was none.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, StoreError> {
        let Some(family_id) = self.family_of(token).await? else {
            return Ok(false);
        };
        let Some(bytes) = self.store.take(&family_key(&family_id)).await? else {
            return Ok(false);
        };
        if let Ok(family) = serde_json::from_slice::<Family>(&bytes) {
            self.store
                .set_remove(&session_index(&family.session_id), &family_id)
                .await?;
            tracing::info!(family = %family_id, "refresh token family revoked");
        }
        Ok(true)
    }

    /// Ends every family a session owns.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), StoreError> {
        let index = session_index(session_id);
        for family_id in self.store.set_members(&index).await? {
            self.store.delete(&family_key(&family_id)).await?;
        }
        self.store.delete(&index).await?;
        Ok(())
    }

    /// Takes the family lock, waiting briefly for another holder; `None` if it stays taken.
    async fn lock(&self, family_id: &str) -> Result<Option<Lock>, StoreError> {
        let key = lock_key(family_id);
        let owner = random_token(16);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            if self
                .store
                .put_new(&key, owner.as_bytes(), Some(LOCK_TTL))
                .await?
            {
                return Ok(Some(Lock {
                    store: self.store.clone(),
                    key,
                    owner,
                    released: false,
                }));
            }
            if Instant::now() >= deadline {
                tracing::warn!(family = %family_id, "refresh family lock not acquired in time");
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A held family lock; released explicitly, or in the background if the request is dropped.
struct Lock {
    store: Arc<dyn Store>,
    key: String,
    owner: String,
    released: bool,
}

async fn release(store: &dyn Store, key: &str, owner: &str) {
    // Only the owner deletes it (a lock that outlived its TTL may be someone else's now),
    // compared and deleted in one step so another owner's lock is never deleted in between.
    if let Err(e) = store.delete_if(key, owner.as_bytes()).await {
        tracing::warn!(error = %e, "refresh family lock not released; it expires by itself");
    }
}

impl Lock {
    async fn release(mut self) {
        self.released = true;
        release(self.store.as_ref(), &self.key, &self.owner).await;
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, key, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { release(store.as_ref(), &key, &owner).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;

    /// A user with nothing but an id (these tests are about families, not profiles).
    fn user(id: &str) -> crate::identity::User {
        crate::identity::User {
            id: id.into(),
            name: None,
            email: None,
            email_verified: false,
            image: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    async fn setup(grace: Duration) -> (RefreshFamilies, Sessions, String, Arc<dyn Store>) {
        let store = crate::store::open("memory://", None).await.unwrap();
        let sessions = Sessions::new(
            store.clone(),
            SessionConfig {
                max_age: Duration::from_secs(3600),
                idle_timeout: Duration::from_secs(3600),
                update_age: Duration::from_secs(3600),
                cookie_domain: None,
            },
        );
        let user = user("u1");
        let (_, session) = sessions
            .create(&user, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let families = RefreshFamilies::new(
            store.clone(),
            b"unit-test-secret-0123456789abcdef0123",
            Duration::from_secs(600),
            grace,
        );
        (families, sessions, session.id, store)
    }

    #[tokio::test]
    async fn rotation_grace_and_reuse() {
        let (families, sessions, sid, store) = setup(Duration::from_millis(300)).await;
        let first = families.create(&sid, "u1", i64::MAX).await.unwrap();
        assert!(store.get(&token_key(&first.token)).await.unwrap().is_none());
        let second = families
            .rotate(&first.token, &sessions)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(second.token, first.token);
        // Racing request with the first token, within grace: the same second token.
        let again = families
            .rotate(&first.token, &sessions)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.token, second.token);
        let third = families
            .rotate(&second.token, &sessions)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The second token after grace: theft assumed, family and session revoked.
        let reused = families.rotate(&second.token, &sessions).await.unwrap();
        assert_eq!(
            reused.unwrap_err(),
            Refusal::Reused {
                family_id: first.family_id.clone(),
                session_id: sid.clone(),
                user_id: first.user_id.clone(),
            }
        );
        assert!(!sessions.is_live(&sid).await.unwrap());
        let after = families.rotate(&third.token, &sessions).await.unwrap();
        assert_eq!(after.unwrap_err(), Refusal::Unknown);
        assert_eq!(
            families
                .rotate("garbage", &sessions)
                .await
                .unwrap()
                .unwrap_err(),
            Refusal::Unknown
        );
    }

    #[tokio::test]
    async fn session_end_and_revocation_stop_refresh() {
        let (families, sessions, sid, _) = setup(Duration::from_secs(1)).await;
        let a = families.create(&sid, "u1", i64::MAX).await.unwrap();
        let b = families.create(&sid, "u1", i64::MAX).await.unwrap();
        assert!(families.revoke_token(&a.token).await.unwrap());
        assert!(!families.revoke_token(&a.token).await.unwrap());
        assert_eq!(
            families
                .rotate(&a.token, &sessions)
                .await
                .unwrap()
                .unwrap_err(),
            Refusal::Unknown
        );
        sessions.end_by_id(&sid).await.unwrap();
        assert_eq!(
            families
                .rotate(&b.token, &sessions)
                .await
                .unwrap()
                .unwrap_err(),
            Refusal::SessionEnded
        );
    }

    #[tokio::test]
    async fn concurrent_rotations_of_one_token_agree() {
        let (families, sessions, sid, _) = setup(Duration::from_secs(5)).await;
        let first = families.create(&sid, "u1", i64::MAX).await.unwrap();
        let results = futures_join(&families, &sessions, &first.token).await;
        let tokens: Vec<_> = results.into_iter().map(|r| r.unwrap().token).collect();
        assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    }

    #[tokio::test]
    async fn revoking_one_session_leaves_other_sessions_families_alone() {
        let (families, sessions, sid, store) = setup(Duration::from_secs(1)).await;
        let user = user("u1");
        let (_, other) = sessions
            .create(&user, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let mine = families.create(&sid, "u1", i64::MAX).await.unwrap();
        let theirs = families.create(&other.id, "u1", i64::MAX).await.unwrap();
        families.revoke_session(&sid).await.unwrap();
        assert!(store
            .get(&family_key(&mine.family_id))
            .await
            .unwrap()
            .is_none());
        assert!(families
            .rotate(&theirs.token, &sessions)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(
            store.set_members(&session_index(&other.id)).await.unwrap(),
            vec![theirs.family_id.clone()]
        );
    }

    #[tokio::test]
    async fn a_family_of_an_ended_session_is_removed_with_its_index_entry() {
        let (families, sessions, sid, store) = setup(Duration::from_secs(1)).await;
        let a = families.create(&sid, "u1", i64::MAX).await.unwrap();
        sessions.end_by_id(&sid).await.unwrap();
        let refused = families.rotate(&a.token, &sessions).await.unwrap();
        assert_eq!(refused.unwrap_err(), Refusal::SessionEnded);
        assert!(store
            .get(&family_key(&a.family_id))
            .await
            .unwrap()
            .is_none());
        assert!(!store
            .set_members(&session_index(&sid))
            .await
            .unwrap()
            .contains(&a.family_id));
    }

    #[tokio::test]
    async fn a_revoked_family_is_not_recreated_by_a_rotation_in_flight() {
        let (families, sessions, sid, store) = setup(Duration::from_secs(1)).await;
        let a = families.create(&sid, "u1", i64::MAX).await.unwrap();
        let bytes = store.get(&family_key(&a.family_id)).await.unwrap().unwrap();
        let family: Family = serde_json::from_slice(&bytes).unwrap();
        // The rotation read the family, then the revocation answered, then it writes.
        assert!(families.revoke_token(&a.token).await.unwrap());
        assert!(!families.save_existing(&family).await.unwrap());
        assert!(store
            .get(&family_key(&a.family_id))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            families
                .rotate(&a.token, &sessions)
                .await
                .unwrap()
                .unwrap_err(),
            Refusal::Unknown
        );
    }

    #[tokio::test]
    async fn a_dropped_lock_is_released_without_waiting_for_its_ttl() {
        let (families, _, _, store) = setup(Duration::from_secs(1)).await;
        let lock = families.lock("f1").await.unwrap().expect("free lock");
        drop(lock);
        let start = Instant::now();
        while store.get(&lock_key("f1")).await.unwrap().is_some() {
            assert!(
                start.elapsed() < LOCK_TTL / 2,
                "a cancelled rotation kept the lock"
            );
            tokio::task::yield_now().await;
        }
        // Release deletes only the owner's lock.
        store
            .put(&lock_key("f2"), b"someone-else", Some(LOCK_TTL))
            .await
            .unwrap();
        release(store.as_ref(), &lock_key("f2"), "me").await;
        assert!(store.get(&lock_key("f2")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn only_43_url_safe_characters_are_looked_up() {
        let (families, _, _, store) = setup(Duration::from_secs(1)).await;
        let good = "A".repeat(42) + "-";
        // Each of these names a family in the store, as if its hash had been recorded, yet
        // none is a token latch could have handed out, so none is looked up.
        for bad in [
            "A".repeat(42),
            "A".repeat(44),
            "A".repeat(42) + "=",
            "A".repeat(42) + "+",
            "A".repeat(42) + "/",
            "A".repeat(42) + "é",
        ] {
            store
                .put(&token_key(&sha256_hex(&bad)), b"f1", None)
                .await
                .unwrap();
            assert_eq!(families.family_of(&bad).await.unwrap(), None, "{bad:?}");
        }
        for ok in [good, "z".repeat(42) + "_", "0".repeat(43)] {
            store
                .put(&token_key(&sha256_hex(&ok)), b"f1", None)
                .await
                .unwrap();
            assert_eq!(
                families.family_of(&ok).await.unwrap().as_deref(),
                Some("f1"),
                "{ok:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_family_lives_for_its_ttl_but_never_past_the_session() {
        let (families, sessions, sid, _) = setup(Duration::from_secs(1)).await;
        let near = |d: Duration, secs: u64| {
            let want = Duration::from_secs(secs);
            assert!(
                d <= want && d + Duration::from_secs(5) > want,
                "{d:?} vs {want:?}"
            );
        };
        // The family's own 600 s.
        let long = families.create(&sid, "u1", i64::MAX).await.unwrap();
        near(long.max_age, 600);
        near(
            families
                .rotate(&long.token, &sessions)
                .await
                .unwrap()
                .unwrap()
                .max_age,
            600,
        );
        // A session that ends in 60 s.
        let short = families
            .create(&sid, "u1", now_ms() + 60_000)
            .await
            .unwrap();
        near(short.max_age, 60);
        // Already over: the store still gets a positive TTL (one second).
        let over = families
            .create(&sid, "u1", now_ms() - 60_000)
            .await
            .unwrap();
        assert_eq!(over.max_age, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn start_issues_for_a_live_session_and_drops_the_family_of_an_ended_one() {
        let (families, sessions, _, store) = setup(Duration::from_secs(1)).await;
        let user = user("u2");
        let (_, session) = sessions
            .create(&user, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let issued = families.start(&session, &sessions).await.unwrap().unwrap();
        assert_eq!(
            (issued.session_id.as_str(), issued.user_id.as_str()),
            (session.id.as_str(), "u2")
        );
        assert!(families
            .rotate(&issued.token, &sessions)
            .await
            .unwrap()
            .is_ok());
        // A sign-out answered meanwhile: no token, and no family left behind.
        sessions.end_by_id(&session.id).await.unwrap();
        assert!(families.start(&session, &sessions).await.unwrap().is_none());
        assert!(store
            .set_members(&session_index(&session.id))
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .get(&family_key(&issued.family_id))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_released_lock_is_gone_at_once() {
        let (families, _, _, store) = setup(Duration::from_secs(1)).await;
        let lock = families.lock("f1").await.unwrap().expect("free lock");
        lock.release().await;
        // Not left to the drop's background task.
        assert!(store.get(&lock_key("f1")).await.unwrap().is_none());
    }

    async fn futures_join(
        families: &RefreshFamilies,
        sessions: &Sessions,
        token: &str,
    ) -> Vec<Result<Issued, Refusal>> {
        let (a, b, c) = tokio::join!(
            families.rotate(token, sessions),
            families.rotate(token, sessions),
            families.rotate(token, sessions)
        );
        vec![a.unwrap(), b.unwrap(), c.unwrap()]
    }
}
