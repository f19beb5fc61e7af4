//! `latch users …` and `latch sessions …`: the real binary against a running instance's store.
use crate::support::browser::Browser;
use crate::support::dev;
use crate::support::flows::session;
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::command;
use crate::support::redis::RedisServer;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        &self.stdout
    }

    /// A refusal: exit code 1, a message, never a panic.
    fn refused(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {} stderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(self.stderr.starts_with("latch: "), "{}", self.stderr);
        &self.stderr
    }
}

/// Runs `latch <args> --config <config>` (a child process, so the in-process server keeps
/// serving while it runs).
async fn latch(config: &Path, args: &[&str]) -> Out {
    let out = command(args, config)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A providers.toml for the CLI naming the same store as the running instance.
fn cli_config(dir: &Path, store_url: &str) -> PathBuf {
    let path = dir.join("providers.toml");
    let text = Setup::default()
        .store(store_url)
        .toml("http://127.0.0.1:3000", "127.0.0.1:0");
    std::fs::write(&path, text).unwrap();
    path
}

/// Signs in as `email` in a fresh browser; returns it and the user id.
async fn signed_in(app: &TestApp, email: &str) -> (Browser, String) {
    let browser = dev::signed_in(app, email).await;
    let s = session(app, &browser).await;
    assert_eq!(s["user"]["email"], email, "{s}");
    let id = s["user"]["id"].as_str().unwrap().to_string();
    (browser, id)
}

#[tokio::test]
async fn admin_commands_on_a_running_instance_with_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("latch.db").display());
    let app = Setup::default().store(store_url.clone()).spawn().await;
    let config = cli_config(dir.path(), &store_url);

    let (ada1, ada) = signed_in(&app, "ada@example.com").await;
    let (ada2, same) = signed_in(&app, "ada@example.com").await;
    assert_eq!(ada, same);
    let (bob_browser, bob) = signed_in(&app, "bob@example.com").await;

    // users list: one tab-separated line per user, oldest first; --json: JSON lines.
    let out = latch(&config, &["users", "list"]).await;
    let lines: Vec<Vec<&str>> = out.ok().lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for line in &lines {
        assert_eq!(line.len(), 4, "{line:?}");
        assert!(line[3].ends_with('Z'), "RFC 3339 created: {line:?}");
    }
    let ada_line = lines.iter().find(|l| l[0] == ada).expect("ada listed");
    assert_eq!(ada_line[1], "ada@example.com");
    assert!(lines
        .iter()
        .any(|l| l[0] == bob && l[1] == "bob@example.com"));
    let out = latch(&config, &["users", "list", "--json"]).await;
    let users: Vec<Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(users.len(), 2);
    assert!(users[0]["created_at"].as_i64() <= users[1]["created_at"].as_i64());
    assert!(users.iter().any(|u| u["id"] == ada.as_str()));

    // users show, by email and by id: the user, its account, its two sessions.
    let out = latch(&config, &["users", "show", "ADA@example.com"]).await;
    let text = out.ok();
    assert!(text.contains(&format!("id:       {ada}")), "{text}");
    assert!(text.contains("ada@example.com (verified)"), "{text}");
    assert!(text.contains("accounts: 1\n  dev\tdev-"), "{text}");
    assert!(text.contains("sessions: 2\n"), "{text}");
    assert!(text.contains("last seen"), "{text}");
    let out = latch(&config, &["users", "show", &ada, "--json"]).await;
    let shown: Value = serde_json::from_str(out.ok().trim()).unwrap();
    assert_eq!(shown["user"]["email"], "ada@example.com");
    assert_eq!(shown["accounts"][0]["provider"], "dev");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 2);

    // sessions list --user
    let out = latch(&config, &["sessions", "list", "--user", &ada]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines.iter().all(|l| l.split('\t').count() == 7),
        "{lines:?}"
    );
    assert_eq!(lines[0].split('\t').nth(1), Some("dev"));
    // Where it came from: no User-Agent from this client ("-"), the loopback address.
    assert_eq!(lines[0].split('\t').nth(5), Some("-"));
    assert_eq!(lines[0].split('\t').nth(6), Some("127.0.0.1"));

    // Unknown users: exit 1 with a clear message.
    let out = latch(&config, &["users", "show", "nobody@example.com"]).await;
    assert!(out
        .refused()
        .contains("no user with id or email nobody@example.com"));
    let out = latch(&config, &["sessions", "revoke", "--user", "nope"]).await;
    assert!(out.refused().contains("no user"));
    let out = latch(&config, &["users", "delete", "nope"]).await;
    assert!(out.refused().contains("no user"));

    // sessions revoke --user: both of ada's browsers are signed out, bob is not.
    let verified = ada1.get(&app.url("/verify")).await;
    assert_eq!(verified.status(), reqwest::StatusCode::OK);
    assert_eq!(verified.headers()["x-auth-request-user"], ada.as_str());
    let out = latch(&config, &["sessions", "revoke", "--user", &ada]).await;
    assert_eq!(out.ok(), format!("revoked 2 sessions of user {ada}\n"));
    assert_eq!(session(&app, &ada1).await, json!({}));
    assert_eq!(session(&app, &ada2).await, json!({}));
    let verified = ada1.get(&app.url("/verify")).await;
    assert_eq!(verified.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        session(&app, &bob_browser).await["user"]["id"],
        bob.as_str()
    );
    let out = latch(&config, &["sessions", "list", "--user", &ada]).await;
    assert_eq!(out.ok(), "");

    // unlink: the last account only with --force; an unknown provider account is refused.
    let out = latch(&config, &["users", "unlink", &bob, "dev"]).await;
    let err = out.refused();
    assert!(
        err.contains("last account") && err.contains("--force"),
        "{err}"
    );
    let out = latch(&config, &["users", "unlink", &bob, "github"]).await;
    assert!(out
        .refused()
        .contains("has no github account (accounts: dev:dev-"));
    assert_eq!(
        session(&app, &bob_browser).await["user"]["id"],
        bob.as_str()
    );

    // users delete: the user, its account and its sessions are gone.
    let out = latch(&config, &["users", "delete", &bob]).await;
    assert_eq!(
        out.ok(),
        format!("deleted user {bob} <bob@example.com>: 1 account, 1 session revoked\n")
    );
    assert_eq!(session(&app, &bob_browser).await, json!({}));
    let out = latch(&config, &["users", "show", &bob]).await;
    assert!(out.refused().contains("no user"));
    let out = latch(&config, &["users", "list"]).await;
    assert_eq!(out.ok().lines().count(), 1);
    // Signing in again with the deleted user's account makes a new user.
    let (bob_again, new_bob) = signed_in(&app, "bob@example.com").await;
    assert_ne!(new_bob, bob);

    // --force removes the last account: the next sign-in with it is a new user.
    let out = latch(&config, &["users", "unlink", &ada, "dev", "--force"]).await;
    let text = out.ok();
    assert!(text.contains("unlinked dev:dev-"), "{text}");
    assert!(text.contains("no accounts left"), "{text}");
    let out = latch(&config, &["users", "show", &ada]).await;
    assert!(out.ok().contains("accounts: 0\n"), "{}", out.stdout);
    let (carol, _) = signed_in(&app, "carol@example.com").await;

    // sessions revoke --all
    let out = latch(&config, &["sessions", "revoke", "--all"]).await;
    assert_eq!(out.ok(), "revoked 2 sessions\n");
    assert_eq!(session(&app, &bob_again).await, json!({}));
    assert_eq!(session(&app, &carol).await, json!({}));
    let out = latch(&config, &["sessions", "revoke", "--all"]).await;
    assert_eq!(out.ok(), "revoked 0 sessions\n");
    app.stop().await;
}

#[tokio::test]
async fn admin_commands_on_redis_and_an_unreachable_store() {
    let mut redis = RedisServer::new();
    let app = Setup::default().store(redis.url()).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &redis.url());

    let (grace, grace_id) = signed_in(&app, "grace@example.com").await;
    let (_, linus_id) = signed_in(&app, "linus@example.com").await;
    let (linus2, _) = signed_in(&app, "linus@example.com").await;

    let out = latch(&config, &["users", "list"]).await;
    assert_eq!(out.ok().lines().count(), 2, "{}", out.stdout);
    let out = latch(&config, &["users", "show", "linus@example.com"]).await;
    assert!(out.ok().contains("sessions: 2\n"), "{}", out.stdout);

    // A refresh token minted from the session ends with it.
    let token = linus2.post(&app.url("/token")).await;
    assert_eq!(token.status(), reqwest::StatusCode::OK);
    let refresh = linus2.post(&app.url("/refresh")).await;
    assert_eq!(
        refresh.status(),
        reqwest::StatusCode::OK,
        "the cookie reaches /refresh"
    );

    let out = latch(&config, &["users", "delete", "linus@example.com"]).await;
    assert_eq!(
        out.ok(),
        format!("deleted user {linus_id} <linus@example.com>: 1 account, 2 sessions revoked\n")
    );
    assert_eq!(session(&app, &linus2).await, json!({}));
    let refresh = linus2.post(&app.url("/refresh")).await;
    assert_eq!(refresh.status(), reqwest::StatusCode::UNAUTHORIZED);
    let keys = crate::support::redis::raw_command(redis.port(), "KEYS *").unwrap();
    assert!(!keys.contains(&linus_id), "{keys}");
    assert!(!keys.contains("email:linus@example.com"), "{keys}");

    let out = latch(&config, &["sessions", "revoke", "--all"]).await;
    assert_eq!(out.ok(), "revoked 1 session\n");
    assert_eq!(session(&app, &grace).await, json!({}));
    let out = latch(&config, &["users", "list"]).await;
    assert!(out.ok().starts_with(&grace_id), "{}", out.stdout);

    // Redis down: exit 1 with the reason, no panic.
    redis.stop();
    let out = latch(&config, &["users", "list"]).await;
    let err = out.refused();
    assert!(
        err.contains("cannot reach the store redis://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("unavailable"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn stores_the_cli_cannot_administer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here.db");
    let config = cli_config(dir.path(), &format!("sqlite://{}", missing.display()));
    let out = latch(&config, &["users", "list"]).await;
    assert!(
        out.refused().contains("no SQLite database at"),
        "{}",
        out.stderr
    );
    assert!(!missing.exists(), "must not create an empty database");

    let config = cli_config(dir.path(), "memory://");
    let out = latch(&config, &["sessions", "revoke", "--all"]).await;
    assert!(out.refused().contains("memory store"), "{}", out.stderr);

    std::fs::write(dir.path().join("providers.toml"), "[server]\nsecret = 1\n").unwrap();
    let out = latch(&dir.path().join("providers.toml"), &["users", "list"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("providers.toml"), "{}", out.stderr);
}

#[test]
fn a_user_id_that_starts_with_a_hyphen_is_an_id_not_a_flag() {
    // Ids made by earlier versions are base64url and may start with '-'.
    use clap::Parser;
    let cli = latch::cli::Cli::try_parse_from(["latch", "users", "show", "-v4XYZ"]);
    assert!(cli.is_ok(), "{:?}", cli.err());
    let cli = latch::cli::Cli::try_parse_from(["latch", "sessions", "revoke", "--user", "-abc"]);
    assert!(cli.is_ok(), "{:?}", cli.err());
}
