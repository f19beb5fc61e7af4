//! Local users and the provider accounts that sign in as them.
//! A provider account (provider id, subject) belongs to exactly one user; the first sign-in
//! creates the user, later ones refresh the profile fields.
use crate::crypto::random_token;
use crate::provider::Profile;
use crate::store::{Store, StoreError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct Users {
    store: Arc<dyn Store>,
}

fn user_key(id: &str) -> String {
    format!("user:{id}")
}

fn account_key(provider: &str, subject: &str) -> String {
    format!("account:{provider}:{subject}")
}

fn user_accounts_key(user_id: &str) -> String {
    format!("user_accounts:{user_id}")
}

impl Users {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Users { store }
    }

    pub async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        let Some(bytes) = self.store.get(&user_key(id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Backend(format!("unreadable user record {id}: {e}")))
    }

    async fn save(&self, user: &User) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(user).expect("users serialize");
        self.store.put(&user_key(&user.id), &bytes, None).await
    }

    /// The user owning this provider account, created on first sign-in; profile fields are
    /// refreshed from the provider each time. Two racing first sign-ins make one user.
    pub async fn sign_in(&self, provider: &str, profile: &Profile) -> Result<User, StoreError> {
        let account = account_key(provider, &profile.subject);
        if let Some(id) = self.store.get(&account).await? {
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(mut user) = self.get(&id).await? {
                if refresh(&mut user, profile) {
                    self.save(&user).await?;
                }
                return Ok(user);
            }
            // The account points at a deleted user: treat as a first sign-in.
            self.store.delete(&account).await?;
        }
        let now = Utc::now().timestamp();
        let user = User {
            id: random_token(16),
            name: profile.name.clone(),
            email: profile.email.clone(),
            email_verified: profile.email_verified,
            image: profile.image.clone(),
            created_at: now,
            updated_at: now,
        };
        self.save(&user).await?;
        if self
            .store
            .put_new(&account, user.id.as_bytes(), None)
            .await?
        {
            self.store
                .set_add(
                    &user_accounts_key(&user.id),
                    &format!("{provider}:{}", profile.subject),
                    None,
                )
                .await?;
            return Ok(user);
        }
        // Another request created this account first: use its user, drop ours.
        self.store.delete(&user_key(&user.id)).await?;
        let winner = self
            .store
            .get(&account)
            .await?
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .ok_or_else(|| StoreError::Backend("account vanished during sign-in".into()))?;
        self.get(&winner)
            .await?
            .ok_or_else(|| StoreError::Backend("account points at a missing user".into()))
    }
}

/// Copies changed profile fields onto the user; true when something changed.
fn refresh(user: &mut User, profile: &Profile) -> bool {
    let before = user.clone();
    if profile.name.is_some() {
        user.name = profile.name.clone();
    }
    if profile.email.is_some() {
        user.email = profile.email.clone();
        user.email_verified = profile.email_verified;
    }
    if profile.image.is_some() {
        user.image = profile.image.clone();
    }
    let changed = *user != before;
    if changed {
        user.updated_at = Utc::now().timestamp();
    }
    changed
}
