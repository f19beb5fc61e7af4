//! TEMPORARY STUB — replaced by the store branch.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
}
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> &'static str;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    async fn put_new(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, StoreError>;
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    async fn set_add(&self, key: &str, member: &str, ttl: Option<Duration>) -> Result<(), StoreError>;
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}
pub async fn open(_url: &str, _sqlite_path: Option<&Path>) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::Backend("stub".into()))
}
