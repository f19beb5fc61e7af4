//! First-party sessions. The cookie carries a random 256-bit token; the store only ever
//! sees its SHA-256, so a leaked store dump cannot be replayed as cookies.
//! A session ends at `max_age` after sign-in (absolute) or `idle_timeout` after last use;
//! use extends it at most once per `update_age`, so reads rarely write.
use crate::config::SessionConfig;
use crate::crypto::{random_token, sha256_hex};
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: String,
    pub provider: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen: i64,
}

pub struct Session {
    /// The store id (hash of the cookie token); safe to log and to name in `sid` claims.
    pub id: String,
    pub record: SessionRecord,
    /// When the session ends if unused: the earlier of the absolute and the idle limit.
    pub expires: DateTime<Utc>,
}

pub struct Sessions {
    store: Arc<dyn Store>,
    config: SessionConfig,
}

fn key(id: &str) -> String {
    format!("session:{id}")
}

fn user_index(user_id: &str) -> String {
    format!("user_sessions:{user_id}")
}

fn now() -> i64 {
    Utc::now().timestamp()
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, config: SessionConfig) -> Self {
        Sessions { store, config }
    }

    pub fn max_age(&self) -> Duration {
        self.config.max_age
    }

    fn absolute_end(&self, r: &SessionRecord) -> i64 {
        r.created_at + self.config.max_age.as_secs() as i64
    }

    fn end(&self, r: &SessionRecord) -> i64 {
        self.absolute_end(r)
            .min(r.last_seen + self.config.idle_timeout.as_secs() as i64)
    }

    fn ttl(&self, r: &SessionRecord) -> Duration {
        Duration::from_secs((self.end(r) - now()).max(1) as u64)
    }

    /// Starts a session; returns the cookie token (a fresh one at every sign-in).
    pub async fn create(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<(String, Session), StoreError> {
        let token = random_token(32);
        let id = sha256_hex(&token);
        let t = now();
        let record = SessionRecord {
            user_id: user_id.to_string(),
            provider: provider.to_string(),
            created_at: t,
            last_seen: t,
        };
        let bytes = serde_json::to_vec(&record).expect("session records serialize");
        self.store
            .put(&key(&id), &bytes, Some(self.ttl(&record)))
            .await?;
        self.store
            .set_add(&user_index(user_id), &id, Some(self.config.max_age))
            .await?;
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
        let id = sha256_hex(token);
        let Some(bytes) = self.store.get(&key(&id)).await? else {
            return Ok(None);
        };
        let Ok(mut record) = serde_json::from_slice::<SessionRecord>(&bytes) else {
            tracing::warn!(session = %id, "unreadable session record dropped");
            self.store.delete(&key(&id)).await?;
            return Ok(None);
        };
        let t = now();
        if t >= self.end(&record) {
            self.store.delete(&key(&id)).await?;
            return Ok(None);
        }
        if t - record.last_seen >= self.config.update_age.as_secs() as i64 {
            record.last_seen = t;
            let bytes = serde_json::to_vec(&record).expect("session records serialize");
            self.store
                .put(&key(&id), &bytes, Some(self.ttl(&record)))
                .await?;
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
        let id = sha256_hex(token);
        if let Some(bytes) = self.store.take(&key(&id)).await? {
            if let Ok(record) = serde_json::from_slice::<SessionRecord>(&bytes) {
                self.store
                    .set_remove(&user_index(&record.user_id), &id)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Cookie tokens are 43 URL-safe characters; anything else is not worth a store lookup.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
