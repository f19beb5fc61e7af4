//! Local users and the provider accounts that sign in as them.
//! A provider account (provider id, subject) belongs to exactly one user; the first sign-in
//! creates the user, later ones refresh the profile fields.
//!
//! (Over 600 lines with its unit tests, which are the last 196: the tests stay beside
//! the code they pin down.)
use crate::audit::{Audit, Event, Name};
use crate::provider::Profile;
use crate::store::{Store, StoreError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

mod pictures;

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
    pictures: pictures::Pictures,
    /// Told of accounts linked and unlinked and users deleted; off by default.
    audit: Audit,
}

// An account's kept provider tokens (`provider_tokens` writes them) go when the account does.
use crate::store::keys::{
    account as account_key, email as email_key, provider_tokens as provider_tokens_key,
    user as user_key, user_accounts as user_accounts_key,
};

impl Users {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Users {
            store,
            pictures: pictures::Pictures::default(),
            audit: Audit::off(),
        }
    }

    /// Reports links, unlinks and deletions to `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// The user's picture URL for `/session` (`Some(None)`: the user has none; `None`: no
    /// such user), read from the user record at most once per [`pictures::FRESH_FOR`].
    pub async fn picture(&self, id: &str) -> Result<Option<pictures::Picture>, StoreError> {
        let now = Instant::now();
        if let Some(picture) = self.pictures.get(id, now) {
            return Ok(Some(picture));
        }
        let epoch = self.pictures.epoch();
        let Some(user) = self.get(id).await? else {
            return Ok(None);
        };
        self.pictures.put(id, user.image.as_deref(), now, epoch);
        Ok(Some(user.image.map(Arc::from)))
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
        self.store.put(&user_key(&user.id), &bytes, None).await?;
        self.pictures.forget(&user.id);
        Ok(())
    }

    /// The user who signs in with this provider account (SPEC §4):
    /// - a known account signs in as its user (and refreshes the profile fields);
    /// - a signed-in user (`current`) who signs in with a new account gets it linked;
    /// - a new account whose *verified* email belongs to a user is linked only when the
    ///   provider allows `link_by_email`; otherwise, and always for an unverified email,
    ///   the sign-in is refused with `NotLinked`;
    /// - anything else creates a user. Racing first sign-ins of one account make one user.
    pub async fn sign_in(
        &self,
        provider: &str,
        profile: &Profile,
        current: Option<&str>,
        link_by_email: bool,
    ) -> Result<User, SignInError> {
        let account = account_key(provider, &profile.subject);
        if let Some(owner) = self.account_owner(&account).await? {
            if let Some(current) = current.filter(|c| *c != owner.id) {
                return Err(SignInError::NotLinked {
                    reason: format!(
                        "{provider} account already belongs to user {}, not the signed-in user {current}",
                        owner.id
                    ),
                    existing_user: owner.id,
                });
            }
            return Ok(self.refresh_profile(owner, profile).await?);
        }
        if let Some(current) = current {
            if let Some(user) = self.get(current).await? {
                return self.link(user, provider, profile).await;
            }
        }
        if let Some(existing) = self.by_verified_email(profile.email.as_deref()).await? {
            // A racing first sign-in of this same account may have just created the user
            // whose email we found: then this is simply that user signing in.
            if let Some(owner) = self.account_owner(&account).await? {
                return Ok(self.refresh_profile(owner, profile).await?);
            }
            if link_by_email && profile.email_verified {
                return self.link(existing, provider, profile).await;
            }
            let why = if profile.email_verified {
                "link_by_email is off for this provider"
            } else {
                "the provider's email is not verified"
            };
            return Err(SignInError::NotLinked {
                reason: format!(
                    "a new {provider} account has the email of user {}, and {why}",
                    existing.id
                ),
                existing_user: existing.id,
            });
        }
        self.create(provider, profile).await
    }

    /// The id of the user a provider account belongs to, if any (a back-channel logout names
    /// the account by its subject).
    pub async fn owner_of(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .get(&account_key(provider, subject))
            .await?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    async fn account_owner(&self, account: &str) -> Result<Option<User>, StoreError> {
        let Some(id) = self.store.get(account).await? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let user = self.get(&id).await?;
        if user.is_none() {
            // The account points at a deleted user: forget it, as for a first sign-in.
            self.store.delete(account).await?;
        }
        Ok(user)
    }

    async fn refresh_profile(&self, mut user: User, profile: &Profile) -> Result<User, StoreError> {
        let before = user.clone();
        if refresh(&mut user, profile) {
            self.save(&user).await?;
            // The index follows the email: an address the user no longer holds verified must
            // not keep pointing at them (it would block its next verified owner's entry).
            if let (Some(old), true) = (before.email.as_deref(), before.email_verified) {
                let kept = user.email_verified
                    && user
                        .email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(old));
                if !kept {
                    self.remove_if_owned(&email_key(old), &user.id).await?;
                }
            }
            self.index_email(&user).await?;
        }
        Ok(user)
    }

    /// The user whose verified email this is (emails are matched case-insensitively).
    async fn by_verified_email(&self, email: Option<&str>) -> Result<Option<User>, StoreError> {
        let Some(email) = email else { return Ok(None) };
        let Some(id) = self.store.get(&email_key(email)).await? else {
            return Ok(None);
        };
        let user = self.get(&String::from_utf8_lossy(&id)).await?;
        Ok(user.filter(|u| {
            u.email_verified
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    /// Records a verified email as this user's, unless another user holds it.
    async fn index_email(&self, user: &User) -> Result<(), StoreError> {
        if let (Some(email), true) = (&user.email, user.email_verified) {
            self.store
                .put_new(&email_key(email), user.id.as_bytes(), None)
                .await?;
        }
        Ok(())
    }

    /// Makes `user` the owner of the account unless it already has one; true if it did.
    async fn claim_account(
        &self,
        user: &User,
        provider: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        let account = account_key(provider, subject);
        if !self
            .store
            .put_new(&account, user.id.as_bytes(), None)
            .await?
        {
            return Ok(false);
        }
        self.store
            .set_add(
                &user_accounts_key(&user.id),
                &format!("{provider}:{subject}"),
                None,
            )
            .await?;
        Ok(true)
    }

    /// Attaches the account to `user`; if another request attached it first, that owner wins.
    async fn link(
        &self,
        user: User,
        provider: &str,
        profile: &Profile,
    ) -> Result<User, SignInError> {
        let account = account_key(provider, &profile.subject);
        if self
            .claim_account(&user, provider, &profile.subject)
            .await?
        {
            tracing::info!(user = %user.id, provider, "account linked");
            self.audit.emit(|| {
                Event::new(Name::AccountLinked)
                    .user(&user.id)
                    .provider(provider)
                    .with("subject", profile.subject.as_str())
            });
            return Ok(user);
        }
        let owner = self
            .account_owner(&account)
            .await?
            .ok_or_else(|| StoreError::Backend("account vanished while linking".into()))?;
        if owner.id != user.id {
            return Err(SignInError::NotLinked {
                reason: format!("{provider} account was just linked to user {}", owner.id),
                existing_user: owner.id,
            });
        }
        Ok(owner)
    }

    async fn create(&self, provider: &str, profile: &Profile) -> Result<User, SignInError> {
        let account = account_key(provider, &profile.subject);
        let now = Utc::now().timestamp();
        let user = User {
            id: new_user_id(),
            name: profile.name.clone(),
            email: profile.email.clone(),
            email_verified: profile.email_verified,
            image: profile.image.clone(),
            created_at: now,
            updated_at: now,
        };
        self.save(&user).await?;
        if self
            .claim_account(&user, provider, &profile.subject)
            .await?
        {
            self.index_email(&user).await?;
            return Ok(user);
        }
        // Another request created this account first: use its user, drop ours.
        self.store.delete(&user_key(&user.id)).await?;
        Ok(self
            .account_owner(&account)
            .await?
            .ok_or_else(|| StoreError::Backend("account vanished during sign-in".into()))?)
    }

    /// The providers a user can sign in with (for telling them which one to use).
    pub async fn providers_of(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let mut providers: Vec<String> = self
            .store
            .set_members(&user_accounts_key(user_id))
            .await?
            .into_iter()
            .filter_map(|a| a.split_once(':').map(|(p, _)| p.to_string()))
            .collect();
        providers.sort();
        providers.dedup();
        Ok(providers)
    }

    /// Every user, oldest first (ties by id). Scans the store: for admin use, not requests.
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for key in self
            .store
            .keys_with_prefix(crate::store::keys::USER_PREFIX)
            .await?
        {
            // A user deleted between the scan and the read is simply not listed.
            if let Some(user) = self
                .get(&key[crate::store::keys::USER_PREFIX.len()..])
                .await?
            {
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

    /// The user's account at `provider`: its subject there (the smallest, should the user
    /// have several accounts at one provider).
    pub async fn subject_at(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .accounts(user_id)
            .await?
            .into_iter()
            .find(|a| a.provider == provider)
            .map(|a| a.subject))
    }

    /// Removes the user, its provider accounts, its account index and its email index entry;
    /// false if there was no such user. Sessions are the caller's: end them with
    /// `Sessions::revoke_user` too (session records carry the profile, so they outlive the
    /// user otherwise). Index keys are removed only while they still point at this user.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let user = self.get(id).await?;
        for account in self.accounts(id).await? {
            self.remove_account_key(id, &account).await?;
        }
        if let Some(email) = user.as_ref().and_then(|u| u.email.as_deref()) {
            self.remove_if_owned(&email_key(email), id).await?;
        }
        self.store.delete(&user_accounts_key(id)).await?;
        let deleted = self.store.delete(&user_key(id)).await?;
        self.pictures.forget(id);
        if user.is_some() || deleted {
            self.audit.emit(|| Event::new(Name::UserDeleted).user(id));
        }
        // The two differ only when the record comes or goes between the read and the delete
        // (a read error returned above), so `&&` here could be told apart only by a race.
        Ok(user.is_some() || deleted)
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
            self.audit.emit(|| {
                Event::new(Name::AccountUnlinked)
                    .user(id)
                    .provider(&account.provider)
                    .with("subject", account.subject.as_str())
            });
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
        if self.remove_if_owned(&key, user_id).await? {
            // The account's provider tokens (if kept) go with it.
            let tokens = provider_tokens_key(&account.provider, &account.subject);
            self.store.delete(&tokens).await?;
        }
        Ok(())
    }

    /// Deletes an index key (value = a user id) if it points at `user_id`; true if it did.
    async fn remove_if_owned(&self, key: &str, user_id: &str) -> Result<bool, StoreError> {
        // Compared and deleted in one step: an entry another user took meanwhile stays.
        self.store.delete_if(key, user_id.as_bytes()).await
    }
}

/// Why a sign-in did not produce a user.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("account not linked: {reason}")]
    NotLinked {
        reason: String,
        existing_user: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// 128 random bits in hex: URL- and shell-safe, and never taken for a command-line flag.
fn new_user_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(subject: &str, email: &str, verified: bool) -> Profile {
        Profile {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: verified,
            name: Some("N".into()),
            image: None,
            sid: None,
            groups: Vec::new(),
        }
    }

    async fn users() -> (Users, Arc<dyn Store>) {
        let store = crate::store::open("memory://", None).await.unwrap();
        (Users::new(store.clone()), store)
    }

    #[tokio::test]
    async fn racing_first_sign_ins_make_one_user() {
        let (users, store) = users().await;
        let users = Arc::new(users);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let users = users.clone();
            tasks.push(tokio::spawn(async move {
                users
                    .sign_in("gh", &profile("42", "a@x.test", true), None, false)
                    .await
                    .unwrap()
                    .id
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(
            store
                .keys_with_prefix(crate::store::keys::USER_PREFIX)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn deleting_a_user_drops_its_accounts_and_kept_provider_tokens() {
        let (users, store) = users().await;
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        let tokens = provider_tokens_key("gh", "1");
        store.put(&tokens, b"v1.sealed", None).await.unwrap();
        assert!(users.delete(&ann.id).await.unwrap());
        assert!(store.get(&tokens).await.unwrap().is_none());
        assert!(store.get(&account_key("gh", "1")).await.unwrap().is_none());
        assert!(users.get(&ann.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn linking_rules() {
        let (users, _) = users().await;
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        // Same verified email on another provider without link_by_email: refused.
        let err = users
            .sign_in("google", &profile("g1", "Ann@X.test", true), None, false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SignInError::NotLinked { ref existing_user, .. } if *existing_user == ann.id)
        );
        // An unverified email never links, even with link_by_email.
        let err = users
            .sign_in("google", &profile("g1", "ann@x.test", false), None, true)
            .await
            .unwrap_err();
        assert!(matches!(err, SignInError::NotLinked { .. }));
        // Verified and allowed: linked.
        let linked = users
            .sign_in("google", &profile("g1", "ann@x.test", true), None, true)
            .await
            .unwrap();
        assert_eq!(linked.id, ann.id);
        assert_eq!(
            users.providers_of(&ann.id).await.unwrap(),
            vec!["gh", "google"]
        );
        // A signed-in user links a new account whatever its email.
        let other = users
            .sign_in(
                "gitlab",
                &profile("l1", "someone@else.test", true),
                Some(&ann.id),
                false,
            )
            .await
            .unwrap();
        assert_eq!(other.id, ann.id);
        // An account that belongs to someone else does not move to the signed-in user.
        let bob = users
            .sign_in("gh", &profile("2", "bob@x.test", true), None, false)
            .await
            .unwrap();
        let err = users
            .sign_in(
                "gh",
                &profile("2", "bob@x.test", true),
                Some(&ann.id),
                false,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, SignInError::NotLinked { ref existing_user, .. } if *existing_user == bob.id)
        );
        // An unverified email creates a separate user when nobody holds that address verified.
        let carl = users
            .sign_in("gh", &profile("3", "carl@x.test", false), None, false)
            .await
            .unwrap();
        let carl2 = users
            .sign_in("google", &profile("g3", "carl@x.test", false), None, true)
            .await
            .unwrap();
        assert_ne!(carl.id, carl2.id);
    }

    #[tokio::test]
    async fn the_email_index_follows_email_changes() {
        let (users, store) = users().await;
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        let owner = |email: &'static str| {
            let store = store.clone();
            async move { store.get(&email_key(email)).await.unwrap() }
        };
        assert_eq!(
            owner("ann@x.test").await.as_deref(),
            Some(ann.id.as_bytes())
        );
        // Ann's address changes at the provider: the old entry goes, the new one points at her.
        let again = users
            .sign_in("gh", &profile("1", "Ann@New.test", true), None, false)
            .await
            .unwrap();
        assert_eq!(again.id, ann.id);
        assert_eq!(owner("ann@x.test").await, None);
        assert_eq!(
            owner("ann@new.test").await.as_deref(),
            Some(ann.id.as_bytes())
        );
        // A case-only change keeps the entry.
        users
            .sign_in("gh", &profile("1", "ann@new.test", true), None, false)
            .await
            .unwrap();
        assert_eq!(
            owner("ann@new.test").await.as_deref(),
            Some(ann.id.as_bytes())
        );

        // The old address, now Bob's, is indexed for Bob, so a provider that may link by email
        // joins Bob, not a new user.
        let bob = users
            .sign_in("gitlab", &profile("b", "ann@x.test", true), None, false)
            .await
            .unwrap();
        assert_ne!(bob.id, ann.id);
        assert_eq!(
            owner("ann@x.test").await.as_deref(),
            Some(bob.id.as_bytes())
        );
        let linked = users
            .sign_in("google", &profile("g", "ann@x.test", true), None, true)
            .await
            .unwrap();
        assert_eq!(linked.id, bob.id);

        // An address that stops being verified leaves the index too.
        users
            .sign_in("gh", &profile("1", "ann@new.test", false), None, false)
            .await
            .unwrap();
        assert_eq!(owner("ann@new.test").await, None);
    }

    #[tokio::test]
    async fn admin_lookups_list_find_and_unlink() {
        let (users, store) = users().await;
        // Bob's unverified address first (it is not indexed), then Ann's verified one: two
        // users with one email.
        let bob = users
            .sign_in("gitlab", &profile("b", "Ann@X.test", false), None, false)
            .await
            .unwrap();
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        users
            .sign_in(
                "google",
                &profile("g2", "x@y.test", true),
                Some(&ann.id),
                false,
            )
            .await
            .unwrap();
        users
            .sign_in(
                "google",
                &profile("g1", "x@y.test", true),
                Some(&ann.id),
                false,
            )
            .await
            .unwrap();
        let ids = |list: Vec<User>| list.into_iter().map(|u| u.id).collect::<Vec<_>>();
        // Oldest first, ties (the same second) by id.
        let mut both = [&bob, &ann];
        both.sort_by_key(|u| (u.created_at, u.id.clone()));
        let both: Vec<String> = both.iter().map(|u| u.id.clone()).collect();
        assert_eq!(ids(users.list().await.unwrap()), both);
        assert_eq!(
            ids(users.find_by_email(" ANN@x.test ").await.unwrap()),
            both
        );
        assert!(users
            .find_by_email("nobody@x.test")
            .await
            .unwrap()
            .is_empty());
        let account = |p: &str, s: &str| LinkedAccount {
            provider: p.into(),
            subject: s.into(),
        };
        assert_eq!(
            users.accounts(&ann.id).await.unwrap(),
            [
                account("gh", "1"),
                account("google", "g1"),
                account("google", "g2")
            ]
        );
        assert_eq!(account("gh", "1").member(), "gh:1");
        assert_eq!(
            users
                .subject_at(&ann.id, "google")
                .await
                .unwrap()
                .as_deref(),
            Some("g1")
        );
        assert_eq!(users.subject_at(&ann.id, "gitlab").await.unwrap(), None);

        assert_eq!(
            users.unlink("nobody", "gh", false).await.unwrap(),
            Unlink::NoSuchUser
        );
        assert_eq!(
            users.unlink(&bob.id, "gh", false).await.unwrap(),
            Unlink::NotLinked {
                accounts: vec![account("gitlab", "b")]
            }
        );
        assert_eq!(
            users.unlink(&bob.id, "gitlab", false).await.unwrap(),
            Unlink::LastAccount {
                accounts: vec![account("gitlab", "b")]
            }
        );
        assert_eq!(
            users.unlink(&ann.id, "google", false).await.unwrap(),
            Unlink::Unlinked {
                removed: vec![account("google", "g1"), account("google", "g2")],
                remaining: vec![account("gh", "1")]
            }
        );
        assert!(store
            .get(&account_key("google", "g1"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(users.accounts(&ann.id).await.unwrap(), [account("gh", "1")]);
        assert_eq!(
            users.unlink(&bob.id, "gitlab", true).await.unwrap(),
            Unlink::Unlinked {
                removed: vec![account("gitlab", "b")],
                remaining: vec![]
            }
        );
        assert!(!users.delete("nobody").await.unwrap());
        assert!(users.delete(&bob.id).await.unwrap());
        assert!(!users.delete(&bob.id).await.unwrap());
    }

    #[tokio::test]
    async fn a_link_that_lost_a_race_keeps_the_winner() {
        let (users, _) = users().await;
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        let bob = users
            .sign_in("gh", &profile("2", "bob@x.test", true), None, false)
            .await
            .unwrap();
        // Ann's link of Bob's account arrives after Bob's sign-in claimed it.
        let err = users
            .link(ann.clone(), "gh", &profile("2", "bob@x.test", true))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SignInError::NotLinked { ref existing_user, .. } if *existing_user == bob.id)
        );
        // Bob's own racing link finds his claim: simply Bob.
        let again = users
            .link(bob.clone(), "gh", &profile("2", "bob@x.test", true))
            .await
            .unwrap();
        assert_eq!(again.id, bob.id);
    }

    #[tokio::test]
    async fn an_email_index_entry_counts_only_for_its_users_current_verified_email() {
        let (users, store) = users().await;
        let ann = users
            .sign_in("gh", &profile("1", "ann@x.test", true), None, false)
            .await
            .unwrap();
        // An entry left pointing at Ann for an address she no longer has.
        store
            .put(&email_key("old@x.test"), ann.id.as_bytes(), None)
            .await
            .unwrap();
        let other = users
            .sign_in("google", &profile("g", "old@x.test", true), None, true)
            .await
            .unwrap();
        assert_ne!(other.id, ann.id);
    }
}
