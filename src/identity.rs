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

    /// Every user, oldest first (ties by id). Scans the store: for admin use, not requests.
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for key in self.store.keys_with_prefix("user:").await? {
            // A user deleted between the scan and the read is simply not listed.
            if let Some(user) = self.get(&key["user:".len()..]).await? {
                users.push(user);
            }
        }
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    /// The users whose email is `email` (ASCII case-insensitive), oldest first. Emails are not
    /// unique: two provider accounts that are not linked may carry the same address. Scans
    /// the store: for admin use, not requests.
    pub async fn find_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        let email = email.trim();
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .collect())
    }

    /// The provider accounts that sign in as this user, sorted by provider then subject.
    pub async fn accounts(&self, id: &str) -> Result<Vec<LinkedAccount>, StoreError> {
        let mut accounts: Vec<LinkedAccount> = self
            .store
            .set_members(&user_accounts_key(id))
            .await?
            .iter()
            .filter_map(|m| LinkedAccount::parse(m))
            .collect();
        accounts.sort();
        Ok(accounts)
    }

    /// Removes the user, its provider accounts and its account index; false if there was no
    /// such user. Sessions are the caller's: end them with `Sessions::revoke_user` too.
    /// An account key is removed only while it still points at this user.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.get(id).await?.is_some();
        for account in self.accounts(id).await? {
            self.remove_account_key(id, &account).await?;
        }
        self.store.delete(&user_accounts_key(id)).await?;
        let deleted = self.store.delete(&user_key(id)).await?;
        Ok(existed || deleted)
    }

    /// Removes the user's accounts at `provider`. Refuses to remove the user's last account
    /// (who could then no longer sign in) unless `allow_last`.
    pub async fn unlink(
        &self,
        id: &str,
        provider: &str,
        allow_last: bool,
    ) -> Result<Unlink, StoreError> {
        if self.get(id).await?.is_none() {
            return Ok(Unlink::NoSuchUser);
        }
        let accounts = self.accounts(id).await?;
        let (gone, kept): (Vec<_>, Vec<_>) =
            accounts.into_iter().partition(|a| a.provider == provider);
        if gone.is_empty() {
            return Ok(Unlink::NotLinked { accounts: kept });
        }
        if kept.is_empty() && !allow_last {
            return Ok(Unlink::LastAccount { accounts: gone });
        }
        for account in &gone {
            self.remove_account_key(id, account).await?;
            self.store
                .set_remove(&user_accounts_key(id), &account.member())
                .await?;
        }
        Ok(Unlink::Unlinked {
            removed: gone,
            remaining: kept,
        })
    }

    /// Deletes `account:{provider}:{subject}` if it points at `user_id`.
    async fn remove_account_key(
        &self,
        user_id: &str,
        account: &LinkedAccount,
    ) -> Result<(), StoreError> {
        let key = account_key(&account.provider, &account.subject);
        if let Some(owner) = self.store.get(&key).await? {
            if owner == user_id.as_bytes() {
                self.store.delete(&key).await?;
            }
        }
        Ok(())
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

/// A provider account of a user: (provider id, subject at that provider).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LinkedAccount {
    pub provider: String,
    pub subject: String,
}

impl LinkedAccount {
    /// From a `user_accounts` set member, `"{provider}:{subject}"` (provider ids have no `:`).
    fn parse(member: &str) -> Option<Self> {
        let (provider, subject) = member.split_once(':')?;
        Some(LinkedAccount {
            provider: provider.to_string(),
            subject: subject.to_string(),
        })
    }

    fn member(&self) -> String {
        format!("{}:{}", self.provider, self.subject)
    }
}

/// What [`Users::unlink`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Unlink {
    /// The accounts at that provider are gone; `remaining` still sign in as the user.
    Unlinked {
        removed: Vec<LinkedAccount>,
        remaining: Vec<LinkedAccount>,
    },
    NoSuchUser,
    /// The user has no account at that provider; these are the accounts it has.
    NotLinked {
        accounts: Vec<LinkedAccount>,
    },
    /// Refused: these are the user's only accounts.
    LastAccount {
        accounts: Vec<LinkedAccount>,
    },
}
