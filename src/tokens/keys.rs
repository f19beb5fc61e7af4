//! Signing keys shared by every latch instance.
//!
//! Time is cut into slots of `key_rotation`, counted from the Unix epoch; slot `n` has its own
//! key, which signs from `n * period` until `(n + 1) * period` (its retirement) and is
//! published until the last token it signed has expired (`retired_at + access_ttl`, plus a
//! minute for clock skew between instances), which is exactly the store record's TTL.
//! The key of a slot is created by whichever instance needs it first, with `put_new`, so two
//! instances racing to create it agree on one key. The next slot's key is created and
//! published ahead of its first use, so apps that cache the JWKS already know it.
//! The private key is stored as PKCS#8 sealed with the server secret (purpose `signing-key`).
use crate::clock::Clock;
use crate::crypto::{open, random_token, seal};
use crate::jws::SigningKey;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INDEX: &str = "signing_keys";
const PURPOSE: &str = "signing-key";
/// Published this much longer than strictly needed, for clock skew between instances.
const SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    /// Unix ms: starts signing.
    pub not_before: i64,
    /// Unix ms: stops signing (the next key takes over).
    pub retires_at: i64,
    /// The public half, as published.
    pub jwk: Value,
    /// PKCS#8 DER sealed with the server secret.
    pub private_key: String,
}

/// Why no key could be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {0}: {1}")]
    Unusable(String, String),
}

impl From<KeyError> for crate::error::AuthError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Store(e) => e.into(),
            // The store holds a key this instance cannot open (another server.secret):
            // a deployment fault, answered like an unusable store.
            e @ KeyError::Unusable(..) => crate::error::AuthError::new(
                crate::error::ErrorCode::StoreUnavailable,
                e.to_string(),
            ),
        }
    }
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    secret: Vec<u8>,
    /// Earlier server secrets: they still open stored keys, never seal new ones.
    previous: Vec<Vec<u8>>,
    period_ms: i64,
    access_ttl: Duration,
    clock: Clock,
    cache: Mutex<HashMap<i64, Arc<SigningKey>>>,
}

impl KeyRing {
    pub fn new(
        store: Arc<dyn Store>,
        secret: &[u8],
        rotation: Duration,
        access_ttl: Duration,
    ) -> Self {
        Self::with_clock(store, secret, rotation, access_ttl, Clock::system())
    }

    /// With an injected clock, for tests.
    pub fn with_clock(
        store: Arc<dyn Store>,
        secret: &[u8],
        rotation: Duration,
        access_ttl: Duration,
        clock: Clock,
    ) -> Self {
        KeyRing {
            store,
            secret: secret.to_vec(),
            previous: Vec::new(),
            period_ms: (rotation.as_millis() as i64).max(1),
            access_ttl,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The clock keys are cut into slots by, and tokens are dated and checked with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Also opens keys sealed with these earlier server secrets (`server.previous_secrets`).
    pub fn with_previous_secrets(mut self, previous: &[&[u8]]) -> Self {
        self.previous = previous.iter().map(|s| s.to_vec()).collect();
        self
    }

    fn secrets(&self) -> Vec<&[u8]> {
        std::iter::once(self.secret.as_slice())
            .chain(self.previous.iter().map(Vec::as_slice))
            .collect()
    }

    fn slot_now(&self) -> i64 {
        self.clock.unix_ms().div_euclid(self.period_ms)
    }

    fn record_key(&self, slot: i64) -> String {
        crate::store::keys::signing_key(self.period_ms, slot)
    }

    /// How long slot `slot`'s record must live from now: until its last token expires.
    fn record_ttl(&self, slot: i64) -> Duration {
        let retires = (slot + 1) * self.period_ms;
        let until = retires + self.access_ttl.as_millis() as i64 + SKEW.as_millis() as i64;
        Duration::from_millis((until - self.clock.unix_ms()).max(1) as u64)
    }

    fn index_ttl(&self) -> Duration {
        Duration::from_millis(2 * self.period_ms as u64) + self.access_ttl + SKEW
    }

    /// The key that signs now.
    pub async fn current(&self) -> Result<Arc<SigningKey>, KeyError> {
        self.slot_key(self.slot_now()).await
    }

    /// The key of `slot`, created (by this or another instance) if it does not exist yet.
    async fn slot_key(&self, slot: i64) -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = self.cache.lock().expect("key cache").get(&slot) {
            return Ok(key.clone());
        }
        let record_key = self.record_key(slot);
        let key = match self.store.get(&record_key).await? {
            Some(bytes) => self.open_record(&record_key, &bytes)?,
            None => {
                let kid = random_token(12);
                let (key, der) = SigningKey::generate_pkcs8(&kid);
                let record = KeyRecord {
                    kid,
                    not_before: slot * self.period_ms,
                    retires_at: (slot + 1) * self.period_ms,
                    jwk: key.public_jwk(),
                    private_key: seal(&self.secret, PURPOSE, &der),
                };
                let bytes = serde_json::to_vec(&record).expect("key records serialize");
                let ttl = self.record_ttl(slot);
                if self.store.put_new(&record_key, &bytes, Some(ttl)).await? {
                    tracing::info!(kid = %record.kid, "new signing key created");
                    key
                } else {
                    // Another instance created this slot's key first: use theirs.
                    let bytes = self.store.get(&record_key).await?.ok_or_else(|| {
                        KeyError::Unusable(record_key.clone(), "vanished after creation".into())
                    })?;
                    self.open_record(&record_key, &bytes)?
                }
            }
        };
        // Idempotent; every instance adds it so no instance signs with an unlisted key.
        self.store
            .set_add(INDEX, &record_key, Some(self.index_ttl()))
            .await?;
        let key = Arc::new(key);
        let mut cache = self.cache.lock().expect("key cache");
        let oldest_useful = slot - 2;
        cache.retain(|s, _| *s >= oldest_useful);
        Ok(cache.entry(slot).or_insert(key).clone())
    }

    fn open_record(&self, record_key: &str, bytes: &[u8]) -> Result<SigningKey, KeyError> {
        let unusable = |why: &str| KeyError::Unusable(record_key.to_string(), why.to_string());
        let record: KeyRecord =
            serde_json::from_slice(bytes).map_err(|_| unusable("unreadable record"))?;
        let der = open(&self.secrets(), PURPOSE, &record.private_key)
            .ok_or_else(|| unusable("sealed with another server.secret"))?;
        SigningKey::from_pkcs8_der(&der, &record.kid).map_err(|e| unusable(&e))
    }

    /// Verifies an access token this latch (any instance sharing the store) signed: alg ES256,
    /// a `kid` among the published keys, the signature, `iss`, an `aud` among `audiences`, and
    /// `exp` (60 s of skew). `Ok(Err(reason))` for a token to refuse.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        audiences: &[String],
    ) -> Result<Result<Value, String>, StoreError> {
        let kid = match crate::jws::es256_kid(token) {
            Ok(kid) => kid,
            Err(why) => return Ok(Err(why)),
        };
        let mut point = None;
        for member in self.store.set_members(INDEX).await? {
            let Some(bytes) = self.store.get(&member).await? else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice::<KeyRecord>(&bytes) {
                if record.kid == kid {
                    point = crate::jws::p256_point(&record.jwk);
                    break;
                }
            }
        }
        let Some(point) = point else {
            return Ok(Err(format!("unknown kid {kid:?}")));
        };
        let claims = match crate::jws::verify_es256(token, &point) {
            Ok(claims) => claims,
            Err(why) => return Ok(Err(why)),
        };
        Ok(self.check_claims(claims, issuer, audiences))
    }

    fn check_claims(
        &self,
        claims: Value,
        issuer: &str,
        audiences: &[String],
    ) -> Result<Value, String> {
        if claims["iss"].as_str() != Some(issuer) {
            return Err(format!("iss {} is not {issuer:?}", claims["iss"]));
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => audiences.contains(a),
            Value::Array(list) => list
                .iter()
                .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
            _ => false,
        };
        if !aud_ok {
            return Err(format!("aud {} names none of {audiences:?}", claims["aud"]));
        }
        let now = self.clock.unix_secs();
        let Some(exp) = claims["exp"].as_i64() else {
            return Err("no numeric exp".into());
        };
        if exp + SKEW.as_secs() as i64 <= now {
            return Err(format!("expired {} s ago", now - exp));
        }
        if claims["sub"].as_str().is_none_or(str::is_empty) {
            return Err("no sub".into());
        }
        Ok(claims)
    }

    /// The published key records (public halves and validity; the private keys stay sealed),
    /// read without creating any: what `latch token inspect` classifies a `kid` with.
    pub async fn published(store: &dyn Store) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records = Vec::new();
        for member in store.set_members(INDEX).await? {
            if let Some(bytes) = store.get(&member).await? {
                if let Ok(record) = serde_json::from_slice::<KeyRecord>(&bytes) {
                    records.push(record);
                }
            }
        }
        records.sort_by(|a, b| b.not_before.cmp(&a.not_before).then(a.kid.cmp(&b.kid)));
        Ok(records)
    }

    /// The public keys to publish, newest first: the next slot's key (not signing yet), the
    /// current one, and retired ones whose tokens may still be valid.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        let slot = self.slot_now();
        self.slot_key(slot).await?;
        self.slot_key(slot + 1).await?;
        let mut records = Vec::new();
        for member in self.store.set_members(INDEX).await? {
            match self.store.get(&member).await? {
                Some(bytes) => match serde_json::from_slice::<KeyRecord>(&bytes) {
                    Ok(record) => records.push(record),
                    Err(_) => tracing::warn!(key = %member, "unreadable signing key record"),
                },
                // Expired: every token it signed has expired too.
                None => self.store.set_remove(INDEX, &member).await?,
            }
        }
        records.sort_by(|a, b| b.not_before.cmp(&a.not_before).then(a.kid.cmp(&b.kid)));
        let keys: Vec<Value> = records.into_iter().map(|r| r.jwk).collect();
        Ok(serde_json::json!({ "keys": keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    const SECRET: &[u8] = b"unit-test-secret-0123456789abcdef0123";

    async fn ring(
        store: Arc<dyn Store>,
        time: Arc<AtomicI64>,
        rotation_s: u64,
        ttl_s: u64,
    ) -> KeyRing {
        KeyRing::with_clock(
            store,
            SECRET,
            Duration::from_secs(rotation_s),
            Duration::from_secs(ttl_s),
            Clock::new(move || time.load(Ordering::SeqCst)),
        )
    }

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn verifies_its_own_tokens_and_opens_keys_with_previous_secrets() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let time = Arc::new(AtomicI64::new(1_000_000_000));
        let a = ring(store.clone(), time.clone(), 100, 10).await;
        let key = a.current().await.unwrap();
        let aud = vec!["api".to_string()];
        let now = 1_000_000;
        let claims = |exp: i64, aud: Value| serde_json::json!({"iss": "https://l", "sub": "u1", "aud": aud, "exp": exp});
        let good = key.sign(&claims(now + 10, "api".into()));
        assert_eq!(
            a.verify(&good, "https://l", &aud).await.unwrap().unwrap()["sub"],
            "u1"
        );
        let list = key.sign(&claims(now + 10, serde_json::json!(["x", "api"])));
        assert!(a.verify(&list, "https://l", &aud).await.unwrap().is_ok());
        for (bad, why) in [
            (key.sign(&claims(now + 10, "other".into())), "aud"),
            (
                key.sign(&claims(now + 10, serde_json::json!(["x", "y"]))),
                "aud",
            ),
            (key.sign(&claims(now - 61, "api".into())), "expired"),
            (
                SigningKey::generate().sign(&claims(now + 10, "api".into())),
                "unknown kid",
            ),
        ] {
            let refused = a
                .verify(&bad, "https://l", &aud)
                .await
                .unwrap()
                .unwrap_err();
            assert!(refused.contains(why), "{refused}");
        }
        // Within the skew, still accepted; another issuer never.
        let skewed = key.sign(&claims(now - 30, "api".into()));
        assert!(a.verify(&skewed, "https://l", &aud).await.unwrap().is_ok());
        assert!(a
            .verify(&good, "https://other", &aud)
            .await
            .unwrap()
            .is_err());

        // The secret is rotated: the stored key opens only through previous_secrets.
        let new_secret = b"rotated-unit-test-secret-0123456789abcdef".as_slice();
        let clock = {
            let time = time.clone();
            Clock::new(move || time.load(Ordering::SeqCst))
        };
        let without = KeyRing::with_clock(
            store.clone(),
            new_secret,
            Duration::from_secs(100),
            Duration::from_secs(10),
            clock.clone(),
        );
        assert!(matches!(
            without.current().await,
            Err(KeyError::Unusable(..))
        ));
        let with = KeyRing::with_clock(
            store.clone(),
            new_secret,
            Duration::from_secs(100),
            Duration::from_secs(10),
            clock,
        )
        .with_previous_secrets(&[SECRET]);
        assert_eq!(with.current().await.unwrap().kid(), key.kid());
    }

    #[tokio::test]
    async fn two_instances_share_one_key_per_slot_and_rotate() {
        let store = crate::store::open("memory://", None).await.unwrap();
        let time = Arc::new(AtomicI64::new(1_000_000_000));
        let a = ring(store.clone(), time.clone(), 100, 10).await;
        let b = ring(store.clone(), time.clone(), 100, 10).await;
        let (ka, kb) = tokio::join!(a.current(), b.current());
        assert_eq!(ka.unwrap().kid(), kb.unwrap().kid(), "one key per slot");
        let first = a.current().await.unwrap().kid().to_string();
        // The JWKS already lists the next slot's key.
        let listed = kids(&a.jwks().await.unwrap());
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&first));
        assert_eq!(listed, kids(&b.jwks().await.unwrap()));

        // The next slot: a new key signs; the old one is still published.
        time.fetch_add(100_000, Ordering::SeqCst);
        let second = b.current().await.unwrap().kid().to_string();
        assert_ne!(first, second);
        assert!(listed.contains(&second), "pre-published");
        let listed = kids(&a.jwks().await.unwrap());
        assert!(listed.contains(&first) && listed.contains(&second));
        assert_eq!(listed.len(), 3);

        // The private key in the store is sealed, and opens with the secret only.
        let members = store.set_members(INDEX).await.unwrap();
        let bytes = store.get(&members[0]).await.unwrap().unwrap();
        let record: KeyRecord = serde_json::from_slice(&bytes).unwrap();
        assert!(record.private_key.starts_with("v1."));
        assert!(open(
            &[b"another secret".as_slice()],
            PURPOSE,
            &record.private_key
        )
        .is_none());
    }

    #[tokio::test]
    async fn records_live_until_their_last_token_expires_and_the_cache_keeps_two_slots_back() {
        let store = crate::store::open("memory://", None).await.unwrap();
        // Slot 10_000 of 100 s, 10 s access tokens, 30 s into the slot.
        let time = Arc::new(AtomicI64::new(1_000_030_000));
        let a = ring(store.clone(), time.clone(), 100, 10).await;
        assert_eq!(a.slot_now(), 10_000);
        // Retires at 1_000_100_000; its last token expires 10 s later, plus the skew.
        assert_eq!(
            a.record_ttl(10_000),
            Duration::from_millis(70_000 + 10_000 + 60_000)
        );
        assert_eq!(
            a.record_ttl(10_001),
            Duration::from_millis(170_000 + 10_000 + 60_000)
        );
        // Two periods, the access TTL and the skew.
        assert_eq!(a.index_ttl(), Duration::from_secs(200 + 10 + 60));
        let kid = a.current().await.unwrap().kid().to_string();
        let bytes = store.get(&a.record_key(10_000)).await.unwrap().unwrap();
        let record: KeyRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record.kid, kid);
        assert_eq!(
            (record.not_before, record.retires_at),
            (1_000_000_000, 1_000_100_000)
        );
        assert_eq!(a.clock().unix_ms(), 1_000_030_000);
        let cached = |ring: &KeyRing| {
            let mut slots: Vec<i64> = ring.cache.lock().unwrap().keys().copied().collect();
            slots.sort_unstable();
            slots
        };
        a.jwks().await.unwrap();
        assert_eq!(cached(&a), [10_000, 10_001]);
        time.fetch_add(300_000, Ordering::SeqCst);
        a.current().await.unwrap();
        assert_eq!(cached(&a), [10_001, 10_003]);
    }
}
