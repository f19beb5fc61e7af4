//! A [`Store`] that counts failed operations (`latch_store_errors_total{backend}`).
use super::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Wraps `inner`; every error it returns is counted under its backend name.
pub fn metered(inner: Arc<dyn Store>) -> Arc<dyn Store> {
    Arc::new(Metered { inner })
}

struct Metered {
    inner: Arc<dyn Store>,
}

impl Metered {
    fn count<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            crate::telemetry::store_error(self.inner.backend());
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for Metered {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count(self.inner.get(key).await)
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.count(self.inner.put(key, value, ttl).await)
    }
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.count(self.inner.put_new(key, value, ttl).await)
    }
    async fn put_existing(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.count(self.inner.put_existing(key, value, ttl).await)
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.count(self.inner.delete_if(key, expected).await)
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count(self.inner.take(key).await)
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.count(self.inner.delete(key).await)
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.count(self.inner.expire(key, ttl).await)
    }
    async fn set_add(
        &self,
        key: &str,
        member: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.count(self.inner.set_add(key, member, ttl).await)
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.count(self.inner.set_remove(key, member).await)
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.count(self.inner.set_members(key).await)
    }
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.count(self.inner.keys_with_prefix(prefix).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.count(self.inner.ping().await)
    }
}
