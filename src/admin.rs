//! Admin commands: `latch users …`, `latch sessions …` and `latch token inspect`.
//!
//! They open the store named by the same `providers.toml` as `latch serve`, so they act on a
//! running instance's Redis or SQLite file. Output goes to stdout (tab-separated text, or JSON
//! lines with `--json`); problems go to stderr with exit code 1 (2 for an invalid config file).
//!
//! `users export` is in `admin/export.rs`, `token inspect` in `admin/inspect.rs`.
//!
//! (Over 600 lines with its unit tests, which are the last 237: the tests stay beside
//! the code they pin down.)
use crate::audit::{Audit, EndedBy, Event, Name};
use crate::config::{self, AuditTarget, Config};
use crate::identity::{LinkedAccount, Unlink, User, Users};
use crate::session::{Session, Sessions};
use crate::store::{redact_url, Store, StoreError};
use chrono::{SecondsFormat, TimeZone, Utc};
use clap::Subcommand;
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

mod export;
mod inspect;

pub use inspect::{token, TokenCommand};

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// List every user, oldest first: id, email, name, created (tab-separated)
    List {
        /// One JSON object per line (the stored user record)
        #[arg(long)]
        json: bool,
    },
    /// Show a user (by id or email), its linked accounts and live sessions
    Show {
        /// User id or email
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// One JSON object per user: {"user","accounts","sessions"}
        #[arg(long)]
        json: bool,
    },
    /// Delete a user, its provider accounts and every session
    Delete {
        /// User id (or an email that exactly one user has)
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Print everything latch holds about a user as one JSON document: the user, its
    /// provider accounts (no token material), its live sessions and its audit events
    Export {
        /// User id (or an email that exactly one user has)
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Remove a user's account at a provider (the last account only with --force)
    Unlink {
        /// User id (or an email that exactly one user has)
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// Provider id, as in providers.toml
        provider: String,
        /// Also remove the user's last account (the user can then no longer sign in)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List a user's live sessions: id, provider, created, last seen, expires (tab-separated)
    List {
        /// User id (or an email that exactly one user has)
        #[arg(long, allow_hyphen_values = true)]
        user: String,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// End sessions (no confirmation); prints how many were revoked
    #[command(group(clap::ArgGroup::new("whose").required(true).args(["user", "all"])))]
    Revoke {
        /// End every session of this user (id, or an email that exactly one user has)
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// End every session of every user
        #[arg(long)]
        all: bool,
    },
}

/// Why a command failed: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(e.to_string())
    }
}

/// The store and the domain views on it.
pub struct Admin {
    pub users: Users,
    pub sessions: Sessions,
    /// Where the commands that change something are recorded (`[audit]`).
    audit: Audit,
    /// `[audit] file`, read by `users export`.
    audit_target: Option<AuditTarget>,
}

impl Admin {
    /// Without an audit log; see [`Admin::with_audit`].
    pub fn new(store: Arc<dyn Store>, config: &Config) -> Self {
        Admin {
            users: Users::new(store.clone()),
            sessions: Sessions::new(store, config.session.clone()),
            audit: Audit::off(),
            audit_target: None,
        }
    }

    /// Records what the commands change in the audit log `target` names (and reads it for
    /// `users export`).
    pub fn with_audit(self, target: Option<&AuditTarget>) -> std::io::Result<Self> {
        let audit = Audit::open(target)?;
        Ok(Admin {
            users: self.users.with_audit(audit.clone()),
            sessions: self.sessions.with_audit(audit.clone()),
            audit,
            audit_target: target.cloned(),
        })
    }

    /// Waits until the audit lines of the commands run so far are written.
    pub async fn flush(&self) {
        self.audit.flush().await;
    }

    /// Records an admin command's event (with the system user who ran it, when known).
    fn record(&self, build: impl FnOnce() -> Event) {
        self.audit.emit(|| match os_user() {
            Some(who) => build().with("os_user", who),
            None => build(),
        });
    }

    /// Ends the user's sessions, each one a `session.ended` by `admin`; how many were live.
    async fn end_sessions_of(&self, user_id: &str) -> Result<usize, StoreError> {
        let ended = self.sessions.end_user_sessions(user_id, None).await?;
        for id in &ended {
            self.record(|| Event::session_ended(EndedBy::Admin, id).user(user_id));
        }
        Ok(ended.len())
    }

    /// Loads `providers.toml` and opens its store, checking that it answers.
    pub async fn open(config_path: &Path) -> Result<Self, Failure> {
        let (config, store) = open_store(config_path).await?;
        Admin::new(store, &config)
            .with_audit(config.audit.as_ref())
            .map_err(|e| Failure::new(format!("cannot open the audit log: {e}")))
    }

    /// The user named by id, or by an email that exactly one user has.
    pub async fn resolve(&self, id_or_email: &str) -> Result<User, Failure> {
        let mut found = self.resolve_all(id_or_email).await?;
        if found.len() > 1 {
            let ids: Vec<&str> = found.iter().map(|u| u.id.as_str()).collect();
            return Err(Failure::new(format!(
                "{} users have the email {id_or_email}: {}; name one by id",
                found.len(),
                ids.join(", ")
            )));
        }
        Ok(found.remove(0))
    }

    /// The user with this id, or every user with this email; never empty.
    async fn resolve_all(&self, id_or_email: &str) -> Result<Vec<User>, Failure> {
        if let Some(user) = self.users.get(id_or_email).await? {
            return Ok(vec![user]);
        }
        if id_or_email.contains('@') {
            let found = self.users.find_by_email(id_or_email).await?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Err(Failure::new(format!(
            "no user with id or email {id_or_email}"
        )))
    }

    pub async fn users(&self, command: &UsersCommand) -> Result<String, Failure> {
        let mut out = String::new();
        match command {
            UsersCommand::List { json } => {
                for user in self.users.list().await? {
                    if *json {
                        let _ = writeln!(out, "{}", json!(user));
                    } else {
                        let _ = writeln!(
                            out,
                            "{}\t{}\t{}\t{}",
                            user.id,
                            user.email.as_deref().unwrap_or("-"),
                            user.name.as_deref().unwrap_or("-"),
                            time(user.created_at)
                        );
                    }
                }
            }
            UsersCommand::Show { user, json } => {
                for (i, user) in self.resolve_all(user).await?.into_iter().enumerate() {
                    let accounts = self.users.accounts(&user.id).await?;
                    let sessions = self.sessions.list_for_user(&user.id).await?;
                    if *json {
                        let sessions: Vec<_> = sessions.iter().map(session_json).collect();
                        let _ = writeln!(
                            out,
                            "{}",
                            json!({"user": user, "accounts": accounts, "sessions": sessions})
                        );
                    } else {
                        if i > 0 {
                            out.push('\n');
                        }
                        show_text(&mut out, &user, &accounts, &sessions);
                    }
                }
            }
            UsersCommand::Delete { user } => {
                let user = self.resolve(user).await?;
                let accounts = self.users.accounts(&user.id).await?;
                let mut revoked = self.end_sessions_of(&user.id).await?;
                self.users.delete(&user.id).await?;
                // A sign-in that raced the deletion may have added a session meanwhile.
                revoked += self.end_sessions_of(&user.id).await?;
                self.record(|| {
                    Event::new(Name::AdminUserDeleted)
                        .user(&user.id)
                        .with("accounts", accounts.len())
                        .with("sessions", revoked)
                });
                let _ = writeln!(
                    out,
                    "deleted user {}{}: {} account{}, {} session{} revoked",
                    user.id,
                    user.email
                        .as_deref()
                        .map(|e| format!(" <{e}>"))
                        .unwrap_or_default(),
                    accounts.len(),
                    plural(accounts.len()),
                    revoked,
                    plural(revoked)
                );
            }
            UsersCommand::Export { user } => {
                let user = self.resolve(user).await?;
                let document = self.export(&user).await?;
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&document).unwrap_or_default()
                );
            }
            UsersCommand::Unlink {
                user,
                provider,
                force,
            } => {
                let user = self.resolve(user).await?;
                match self.users.unlink(&user.id, provider, *force).await? {
                    Unlink::Unlinked { removed, remaining } => {
                        self.record(|| {
                            Event::new(Name::AdminAccountUnlinked)
                                .user(&user.id)
                                .provider(provider)
                                .with("accounts", removed.len())
                                .with("remaining", remaining.len())
                                .with("force", *force)
                        });
                        for a in &removed {
                            let _ = writeln!(
                                out,
                                "unlinked {}:{} from user {}",
                                a.provider, a.subject, user.id
                            );
                        }
                        if remaining.is_empty() {
                            let live = self.sessions.list_for_user(&user.id).await?.len();
                            let _ = writeln!(
                                out,
                                "user {} has no accounts left and cannot sign in; {live} live \
                                 session{} remain (`latch sessions revoke --user {}` ends them)",
                                user.id,
                                plural(live),
                                user.id
                            );
                        } else {
                            let _ = writeln!(
                                out,
                                "user {} still signs in with: {}",
                                user.id,
                                account_list(&remaining)
                            );
                        }
                    }
                    Unlink::NoSuchUser => {
                        return Err(Failure::new(format!("no user with id {}", user.id)))
                    }
                    Unlink::NotLinked { accounts } => {
                        return Err(Failure::new(format!(
                            "user {} has no {provider} account (accounts: {})",
                            user.id,
                            if accounts.is_empty() {
                                "none".to_string()
                            } else {
                                account_list(&accounts)
                            }
                        )))
                    }
                    Unlink::LastAccount { .. } => {
                        return Err(Failure::new(format!(
                            "refusing to unlink {provider}: it is the last account of user {}, \
                             who could then no longer sign in; pass --force to unlink it anyway, \
                             or `latch users delete {}` to remove the user",
                            user.id, user.id
                        )))
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn sessions(&self, command: &SessionsCommand) -> Result<String, Failure> {
        let mut out = String::new();
        match command {
            SessionsCommand::List { user, json } => {
                let user = self.resolve(user).await?;
                for s in self.sessions.list_for_user(&user.id).await? {
                    if *json {
                        let _ = writeln!(out, "{}", session_json(&s));
                    } else {
                        let _ = writeln!(out, "{}", session_line(&s));
                    }
                }
            }
            SessionsCommand::Revoke {
                user: Some(user), ..
            } => {
                let user = self.resolve(user).await?;
                let n = self.end_sessions_of(&user.id).await?;
                self.record(|| {
                    Event::new(Name::AdminSessionsRevoked)
                        .user(&user.id)
                        .with("sessions", n)
                });
                let _ = writeln!(out, "revoked {n} session{} of user {}", plural(n), user.id);
            }
            SessionsCommand::Revoke { user: None, all } => {
                if !*all {
                    return Err(Failure::new("name --user <id> or --all"));
                }
                let ended = self.sessions.end_all().await?;
                for (id, user_id) in &ended {
                    self.record(|| Event::session_ended(EndedBy::Admin, id).user(user_id));
                }
                let n = ended.len();
                self.record(|| {
                    Event::new(Name::AdminSessionsRevoked)
                        .with("all", true)
                        .with("sessions", n)
                });
                let _ = writeln!(out, "revoked {n} session{}", plural(n));
            }
        }
        Ok(out)
    }
}

/// Loads `providers.toml` (exit code 2 when invalid) and opens its store, checking that it
/// answers (exit code 1 when it does not).
pub async fn open_store(config_path: &Path) -> Result<(Config, Arc<dyn Store>), Failure> {
    let config = config::load(config_path).map_err(|errors| Failure {
        code: 2,
        message: format!("{errors}\nlatch: {} is not valid", config_path.display()),
    })?;
    let url = config.store.url.trim();
    if url.to_ascii_lowercase().starts_with("memory:") {
        return Err(Failure::new(format!(
            "store.url in {} is {url}: a memory store lives only inside the latch process \
             that opened it, so there is nothing to administer from here",
            config_path.display()
        )));
    }
    let sqlite_path = config.store.sqlite_path();
    if let Some(path) = &sqlite_path {
        // Opening would create an empty database: a mistyped path would look like "no users".
        if !path.exists() {
            return Err(Failure::new(format!(
                "cannot open the store: no SQLite database at {} (store.url {url} in {}); \
                 `latch serve` creates it on first start",
                path.display(),
                config_path.display()
            )));
        }
    }
    let unreachable = |e: StoreError| {
        Failure::new(format!(
            "cannot reach the store {}: {e}",
            redact_url(&config.store.url)
        ))
    };
    let store = crate::store::open(&config.store.url, sqlite_path.as_deref())
        .await
        .map_err(unreachable)?;
    store.ping().await.map_err(unreachable)?;
    Ok((config, store))
}

/// `latch users …`
pub async fn users(config_path: &Path, command: UsersCommand) -> ExitCode {
    match Admin::open(config_path).await {
        Ok(admin) => {
            let result = admin.users(&command).await;
            admin.flush().await;
            finish(result)
        }
        Err(f) => finish(Err(f)),
    }
}

/// `latch sessions …`
pub async fn sessions(config_path: &Path, command: SessionsCommand) -> ExitCode {
    match Admin::open(config_path).await {
        Ok(admin) => {
            let result = admin.sessions(&command).await;
            admin.flush().await;
            finish(result)
        }
        Err(f) => finish(Err(f)),
    }
}

/// The system user running an admin command (`sudo`'s caller first).
fn os_user() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .map(|u| crate::error::printable(&u, 64))
}

fn finish(result: Result<String, Failure>) -> ExitCode {
    match result {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a panic or a message.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("latch: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// RFC 3339 UTC, to the second.
fn time(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

fn account_list(accounts: &[LinkedAccount]) -> String {
    accounts
        .iter()
        .map(|a| format!("{}:{}", a.provider, a.subject))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Id, provider, started, last seen, expires, device, client address (`-` when unknown).
fn session_line(s: &Session) -> String {
    let origin = &s.record.origin;
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        s.id,
        s.record.provider,
        time(s.record.created_at),
        time(s.record.last_seen),
        s.expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        origin.device.map_or_else(|| "-".to_string(), |d| d.name()),
        origin
            .ip
            .map_or_else(|| "-".to_string(), |ip| ip.to_string()),
    )
}

fn session_json(s: &Session) -> serde_json::Value {
    json!({
        "id": s.id,
        "user_id": s.record.user_id,
        "provider": s.record.provider,
        "created_at": s.record.created_at,
        "last_seen": s.record.last_seen,
        "expires_at": s.expires.timestamp(),
        "device": s.record.origin.device.map(|d| d.name()),
        "ip": s.record.origin.ip.map(|ip| ip.to_string()),
        "provider_sid_hash": s.record.origin.provider_sid.map(hex::encode),
    })
}

fn show_text(out: &mut String, user: &User, accounts: &[LinkedAccount], sessions: &[Session]) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "id:       {}", user.id);
    let _ = writeln!(
        out,
        "email:    {}{}",
        or_dash(&user.email),
        if user.email.is_some() && user.email_verified {
            " (verified)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "name:     {}", or_dash(&user.name));
    let _ = writeln!(out, "image:    {}", or_dash(&user.image));
    let _ = writeln!(out, "created:  {}", time(user.created_at));
    let _ = writeln!(out, "updated:  {}", time(user.updated_at));
    let _ = writeln!(out, "accounts: {}", accounts.len());
    for a in accounts {
        let _ = writeln!(out, "  {}\t{}", a.provider, a.subject);
    }
    let _ = writeln!(out, "sessions: {}", sessions.len());
    for s in sessions {
        let _ = writeln!(
            out,
            "  {}\t{}\tcreated {}\tlast seen {}\texpires {}",
            s.id,
            s.record.provider,
            time(s.record.created_at),
            time(s.record.last_seen),
            s.expires.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Profile;

    async fn admin() -> (Admin, Arc<dyn Store>) {
        let store = crate::store::open("memory://", None).await.unwrap();
        let text = "[server]\npublic_url = \"http://localhost:3000\"\n\
                    secret = \"0123456789abcdef0123456789abcdef\"\n\
                    [store]\nurl = \"memory://\"\n[providers.dev]\npreset = \"dev\"\n";
        let config = config::load_str(Path::new("t.toml"), text, &|_| None).unwrap();
        (Admin::new(store.clone(), &config), store)
    }

    fn profile(subject: &str, email: &str) -> Profile {
        Profile {
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            name: Some(format!("Name {subject}")),
            image: None,
            sid: None,
            groups: Vec::new(),
        }
    }

    #[tokio::test]
    async fn list_find_accounts_and_delete() {
        let (admin, store) = admin().await;
        let a = admin
            .users
            .sign_in("dev", &profile("s1", "A@example.com"), None, false)
            .await
            .unwrap();
        let b = admin
            .users
            .sign_in("dev", &profile("s2", "b@example.com"), None, false)
            .await
            .unwrap();
        let ids: Vec<_> = admin
            .users
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&a.id) && ids.contains(&b.id));
        let found = admin.users.find_by_email("a@EXAMPLE.com").await.unwrap();
        assert_eq!(found, vec![a.clone()]);
        assert_eq!(
            admin.users.accounts(&a.id).await.unwrap(),
            vec![LinkedAccount {
                provider: "dev".into(),
                subject: "s1".into()
            }]
        );
        admin
            .sessions
            .create(&a, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        admin
            .sessions
            .create(&a, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        admin
            .sessions
            .create(&b, "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(admin.sessions.list_for_user(&a.id).await.unwrap().len(), 2);

        let out = admin
            .users(&UsersCommand::Delete {
                user: "a@example.com".into(),
            })
            .await
            .unwrap();
        assert!(out.contains("1 account, 2 sessions revoked"), "{out}");
        assert!(admin.users.get(&a.id).await.unwrap().is_none());
        assert!(store.get("account:dev:s1").await.unwrap().is_none());
        assert!(store
            .set_members(&crate::store::keys::user_accounts(&a.id))
            .await
            .unwrap()
            .is_empty());
        assert!(admin
            .sessions
            .list_for_user(&a.id)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(admin.sessions.list_for_user(&b.id).await.unwrap().len(), 1);
        // Signing in again with the same account makes a fresh user.
        let again = admin
            .users
            .sign_in("dev", &profile("s1", "a@example.com"), None, false)
            .await
            .unwrap();
        assert_ne!(again.id, a.id);
        // The deleted user's email index entry went too, so the new user holds the address.
        assert_eq!(
            store.get("email:a@example.com").await.unwrap(),
            Some(again.id.clone().into_bytes())
        );
        assert!(!admin.users.delete("nobody").await.unwrap());
    }

    #[tokio::test]
    async fn unlink_refuses_the_last_account_unless_forced() {
        let (admin, store) = admin().await;
        let u = admin
            .users
            .sign_in("dev", &profile("s1", "u@example.com"), None, false)
            .await
            .unwrap();
        // A second account, as linking would record it.
        store
            .put("account:corp:c1", u.id.as_bytes(), None)
            .await
            .unwrap();
        store
            .set_add(&crate::store::keys::user_accounts(&u.id), "corp:c1", None)
            .await
            .unwrap();
        match admin.users.unlink(&u.id, "corp", false).await.unwrap() {
            Unlink::Unlinked { removed, remaining } => {
                assert_eq!(removed[0].subject, "c1");
                assert_eq!(remaining[0].provider, "dev");
            }
            other => panic!("{other:?}"),
        }
        assert!(store.get("account:corp:c1").await.unwrap().is_none());
        assert!(matches!(
            admin.users.unlink(&u.id, "corp", false).await.unwrap(),
            Unlink::NotLinked { .. }
        ));
        let refused = admin
            .users(&UsersCommand::Unlink {
                user: u.id.clone(),
                provider: "dev".into(),
                force: false,
            })
            .await
            .unwrap_err();
        assert!(refused.message.contains("--force"), "{}", refused.message);
        assert!(store.get("account:dev:s1").await.unwrap().is_some());
        assert!(matches!(
            admin.users.unlink(&u.id, "dev", true).await.unwrap(),
            Unlink::Unlinked { .. }
        ));
        assert!(admin.users.accounts(&u.id).await.unwrap().is_empty());
        assert!(admin.users.get(&u.id).await.unwrap().is_some());
        assert_eq!(
            admin.users.unlink("nobody", "dev", true).await.unwrap(),
            Unlink::NoSuchUser
        );
    }

    #[tokio::test]
    async fn revoke_user_and_all_count_live_sessions() {
        let (admin, store) = admin().await;
        let user = |id: &str| User {
            id: id.into(),
            name: None,
            email: None,
            email_verified: false,
            image: None,
            created_at: 0,
            updated_at: 0,
        };
        let (t1, _) = admin
            .sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        admin
            .sessions
            .create(&user("u1"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        let (t3, _) = admin
            .sessions
            .create(&user("u2"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        admin
            .sessions
            .create(&user("u3"), "dev", Default::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(admin.sessions.revoke_user("u1").await.unwrap(), 2);
        assert!(admin.sessions.load(&t1).await.unwrap().is_none());
        assert!(admin.sessions.load(&t3).await.unwrap().is_some());
        assert_eq!(admin.sessions.revoke_user("u1").await.unwrap(), 0);
        assert_eq!(admin.sessions.revoke_all().await.unwrap(), 2);
        assert!(admin.sessions.load(&t3).await.unwrap().is_none());
        assert!(store.keys_with_prefix("session:").await.unwrap().is_empty());
        assert!(store
            .set_members("user_sessions:u2")
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn ambiguous_emails_are_refused_where_one_user_is_needed() {
        let (admin, _) = admin().await;
        // Unverified emails never link, so two accounts with one address make two users.
        for (provider, subject) in [("dev", "s1"), ("corp", "c1")] {
            let unverified = Profile {
                email_verified: false,
                ..profile(subject, "same@example.com")
            };
            admin
                .users
                .sign_in(provider, &unverified, None, false)
                .await
                .unwrap();
        }
        let err = admin.resolve("same@example.com").await.unwrap_err();
        assert!(err.message.contains("2 users"), "{}", err.message);
        let shown = admin
            .users(&UsersCommand::Show {
                user: "same@example.com".into(),
                json: true,
            })
            .await
            .unwrap();
        assert_eq!(shown.lines().count(), 2);
        let err = admin.resolve("nobody@example.com").await.unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.contains("no user"), "{}", err.message);
    }
}
