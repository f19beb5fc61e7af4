//! The audit log (SPEC §5, `[audit] file`): every event driven against a real latch (two
//! in-process instances on one SQLite store, and the admin commands as child processes, all
//! appending to one file), each line checked for its name and fields, and no line holding
//! any cookie value, token, code, state or secret that the run saw.
use crate::support::browser::{location, query_param, Browser};
use crate::support::dev::{approve, sign_in_with_dev, start_signin};
use crate::support::flows::{csrf_token, session, sign_out, user_id};
use crate::support::latch::{Setup, TestApp, SECRET};
use crate::support::latch_bin::{command, LatchProcess};
use crate::support::redis::RedisServer;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const UA: &str = "AuditTest/1.0 (X11; Linux x86_64) Firefox/133.0";
const COOKIES: [&str; 4] = [
    "latch.session-token",
    "latch.refresh-token",
    "latch.flow",
    "latch.csrf-token",
];

/// Everything secret the run has seen, to be looked for in the audit file.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn add(&mut self, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= 8 && !self.0.contains(&value) {
            self.0.push(value);
        }
    }

    /// The browser's current cookie values.
    fn cookies(&mut self, browser: &Browser) {
        for name in COOKIES {
            if let Some(c) = browser.cookie(name) {
                self.add(c.value);
            }
        }
    }
}

/// Signs in at `provider` as `email` (a CSRF-checked start, so a signed-in browser links):
/// the new session's store id and the callback URL (spent).
async fn sign_in(
    app: &TestApp,
    browser: &Browser,
    provider: &str,
    email: &str,
    seen: &mut Seen,
) -> (String, String) {
    let start = start_signin(app, browser, provider, "/account").await;
    seen.cookies(browser);
    let callback = approve(browser, &location(&start, StatusCode::FOUND), email).await;
    for param in ["state", "code"] {
        seen.add(query_param(&callback, param).unwrap());
    }
    let done = browser.get(&callback).await;
    assert_eq!(location(&done, StatusCode::FOUND), app.url("/account"));
    seen.cookies(browser);
    let token = browser.cookie("latch.session-token").unwrap().value;
    (latch::session::session_id(&token), callback)
}

/// The audit file's lines so far.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits (at most 10 s) for a line that `wanted` accepts: the writer is asynchronous.
async fn line_where(path: &Path, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = lines(path).into_iter().find(|l| wanted(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no such audit line in:\n{}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is(event: &'static str) -> impl Fn(&Value) -> bool {
    move |l| l["event"] == event
}

/// A line written during one of this test's requests: the client, its agent, a request id.
fn from_request(line: &Value) {
    assert_eq!(line["ip"], "127.0.0.1", "{line}");
    assert_eq!(line["user_agent"], UA, "{line}");
    assert!(!line["request_id"].as_str().unwrap().is_empty(), "{line}");
}

/// `latch <args>` on the instances' store and audit file: its stdout (exit code 0).
async fn latch(config: &Path, args: &[&str]) -> String {
    let out = command(args, config)
        .env("RUST_LOG", "warn")
        .env("USER", "auditor")
        .env_remove("SUDO_USER")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "latch {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn setup(store_url: &str, audit: &Path) -> Setup {
    Setup::default()
        .store(store_url)
        .with_providers(format!(
            "[audit]\nfile = \"{}\"\n\n[tokens]\nrefresh_grace = \"1s\"\n\n\
             [providers.dev]\npreset = \"dev\"\n\n[providers.second]\npreset = \"dev\"\nname = \"Second login\"\n",
            audit.display()
        ))
}

#[tokio::test]
async fn every_security_event_is_one_line_with_its_fields_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("latch.db").display());
    every_event(dir.path(), &store_url).await;
}

/// The same on Redis, the store of more than one instance.
#[tokio::test]
async fn every_security_event_on_redis() {
    let redis = RedisServer::new();
    let dir = tempfile::tempdir().unwrap();
    every_event(dir.path(), &redis.url()).await;
}

async fn every_event(dir: &Path, store_url: &str) {
    let audit: PathBuf = dir.join("audit.log");
    let app = setup(store_url, &audit).spawn().await;
    // A second instance on the same store and file whose sessions end after a second: it
    // finds the first instance's sessions expired.
    let mut short = setup(store_url, &audit);
    short.session = "max_age = \"1s\"\nidle_timeout = \"1s\"\nupdate_age = \"500ms\"\n".into();
    let short = short.spawn().await;
    let cli = dir.join("cli.toml");
    std::fs::write(
        &cli,
        setup(store_url, &audit).toml("http://127.0.0.1:3000", "127.0.0.1:0"),
    )
    .unwrap();
    let mut seen = Seen::default();
    seen.add(SECRET);

    // signin.succeeded, then account.linked: the signed-in user signs in with another provider.
    let ada = Browser::with_user_agent(UA);
    let (first, callback) = sign_in(&app, &ada, "dev", "ada@example.com", &mut seen).await;
    let ada_id = user_id(&app, &ada).await;
    let line = line_where(&audit, |l| {
        l["event"] == "signin.succeeded" && l["session"] == first.as_str()
    })
    .await;
    from_request(&line);
    assert_eq!(
        (&line["user_id"], &line["provider"]),
        (&Value::from(ada_id.as_str()), &Value::from("dev"))
    );
    let (linked_session, _) = sign_in(&app, &ada, "second", "ada@example.com", &mut seen).await;
    let line = line_where(&audit, is("account.linked")).await;
    from_request(&line);
    assert_eq!(line["user_id"], ada_id.as_str());
    assert_eq!(line["provider"], "second");
    assert!(line["subject"].is_string(), "{line}");

    // signin.refused: the spent callback again, with the code and the precise reason.
    let replay = ada.get(&callback).await;
    assert!(location(&replay, StatusCode::SEE_OTHER).contains("error=InvalidState"));
    let line = line_where(&audit, is("signin.refused")).await;
    from_request(&line);
    assert_eq!(line["code"], "InvalidState");
    assert_eq!(line["provider"], "dev");
    assert!(
        line["reason"].as_str().unwrap().contains("already used"),
        "{line}"
    );

    // refresh.reuse_detected and session.ended by reuse-detection.
    let token = ada.post(&app.url("/token")).await;
    assert_eq!(token.status(), StatusCode::OK);
    let body: Value = token.json().await.unwrap();
    seen.add(body["access_token"].as_str().unwrap());
    seen.cookies(&ada);
    let r1 = ada.cookie("latch.refresh-token").unwrap().value;
    let refreshed = ada.post(&app.url("/refresh")).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    seen.add(body["access_token"].as_str().unwrap());
    seen.cookies(&ada);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reused = ada
        .client
        .post(app.url("/refresh"))
        .header(COOKIE, format!("latch.refresh-token={r1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let line = line_where(&audit, is("refresh.reuse_detected")).await;
    from_request(&line);
    assert_eq!(
        (&line["user_id"], &line["session"]),
        (
            &Value::from(ada_id.as_str()),
            &Value::from(linked_session.as_str())
        )
    );
    assert!(line["family"].is_string(), "{line}");
    let line = line_where(&audit, |l| {
        l["event"] == "session.ended" && l["by"] == "reuse-detection"
    })
    .await;
    from_request(&line);
    assert_eq!(line["session"], linked_session.as_str());

    // session.ended by user: one session from the account page, then every other one.
    let [b, c, d] = [(); 3].map(|()| Browser::with_user_agent(UA));
    let (b_id, _) = sign_in(&app, &b, "dev", "bob@example.com", &mut seen).await;
    let (c_id, _) = sign_in(&app, &c, "dev", "bob@example.com", &mut seen).await;
    let (d_id, _) = sign_in(&app, &d, "dev", "bob@example.com", &mut seen).await;
    let bob_id = user_id(&app, &b).await;
    let end = |form: Vec<(&'static str, String)>| {
        let b = &b;
        let app = &app;
        async move {
            let csrf = csrf_token(app, b).await;
            let mut all = vec![("csrfToken", csrf.as_str())];
            all.extend(form.iter().map(|(k, v)| (*k, v.as_str())));
            b.post_form(&app.url("/account/sessions"), &all).await
        }
    };
    assert_eq!(
        end(vec![("session", c_id.clone())]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        end(vec![("others", "1".into())]).await.status(),
        StatusCode::SEE_OTHER
    );
    seen.cookies(&b);
    for ended in [&c_id, &d_id] {
        let line = line_where(&audit, |l| {
            l["event"] == "session.ended" && l["session"] == ended.as_str()
        })
        .await;
        from_request(&line);
        assert_eq!(
            (&line["by"], &line["user_id"]),
            (&Value::from("user"), &Value::from(bob_id.as_str()))
        );
        assert_eq!(line["from_session"], b_id.as_str());
    }

    // signout, here and everywhere.
    let e = Browser::with_user_agent(UA);
    let (e_id, _) = sign_in(&app, &e, "dev", "eve@example.com", &mut seen).await;
    assert_eq!(sign_out(&app, &e, &[]).await.status(), StatusCode::FOUND);
    let line = line_where(&audit, |l| {
        l["event"] == "signout" && l["session"] == e_id.as_str()
    })
    .await;
    from_request(&line);
    assert_eq!(
        (&line["everywhere"], &line["provider"]),
        (&Value::from(false), &Value::from("dev"))
    );
    assert_eq!(
        sign_out(&app, &b, &[("everywhere", "1")]).await.status(),
        StatusCode::FOUND
    );
    let line = line_where(&audit, |l| {
        l["event"] == "signout" && l["session"] == b_id.as_str()
    })
    .await;
    from_request(&line);
    assert_eq!(
        (&line["everywhere"], &line["sessions"]),
        (&Value::from(true), &Value::from(1))
    );
    assert_eq!(line["user_id"], bob_id.as_str());

    // POST /revoke with the session cookie is a sign-out too.
    let r = Browser::with_user_agent(UA);
    let (r_id, _) = sign_in(&app, &r, "dev", "rae@example.com", &mut seen).await;
    assert_eq!(r.post(&app.url("/revoke")).await.status(), StatusCode::OK);
    let line = line_where(&audit, |l| {
        l["event"] == "signout" && l["session"] == r_id.as_str()
    })
    .await;
    from_request(&line);
    assert_eq!(line["route"], "revoke");

    // session.ended by expiry: found past its (shorter) limit by the second instance.
    let f = Browser::with_user_agent(UA);
    let (f_id, _) = sign_in(&app, &f, "dev", "fay@example.com", &mut seen).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(session(&short.url(""), &f).await, serde_json::json!({}));
    let line = line_where(&audit, |l| {
        l["event"] == "session.ended" && l["session"] == f_id.as_str()
    })
    .await;
    from_request(&line);
    assert_eq!(
        (&line["by"], &line["provider"]),
        (&Value::from("expiry"), &Value::from("dev"))
    );
    assert!(
        ["absolute", "idle"].contains(&line["limit"].as_str().unwrap()),
        "{line}"
    );

    // The admin commands: unlink, revoke, export, delete.
    let g = Browser::with_user_agent(UA);
    sign_in(&app, &g, "dev", "grace@example.com", &mut seen).await;
    let (g_second, _) = sign_in(&app, &g, "second", "grace@example.com", &mut seen).await;
    let grace = user_id(&app, &g).await;
    latch(&cli, &["users", "unlink", &grace, "second"]).await;
    let line = line_where(&audit, is("account.unlinked")).await;
    assert_eq!(
        (&line["user_id"], &line["provider"]),
        (&Value::from(grace.as_str()), &Value::from("second"))
    );
    let line = line_where(&audit, is("admin.account_unlinked")).await;
    assert_eq!(
        (&line["accounts"], &line["remaining"]),
        (&Value::from(1), &Value::from(1))
    );
    assert_eq!(line["os_user"], "auditor");
    latch(&cli, &["sessions", "revoke", "--user", &grace]).await;
    let line = line_where(&audit, |l| {
        l["event"] == "session.ended" && l["by"] == "admin"
    })
    .await;
    assert_eq!(
        (&line["session"], &line["user_id"]),
        (
            &Value::from(g_second.as_str()),
            &Value::from(grace.as_str())
        )
    );
    assert_eq!(line["ip"], Value::Null);
    let line = line_where(&audit, is("admin.sessions_revoked")).await;
    assert_eq!(
        (&line["sessions"], &line["user_id"]),
        (&Value::from(1), &Value::from(grace.as_str()))
    );

    let (g_again, _) = sign_in(&app, &g, "dev", "grace@example.com", &mut seen).await;
    let exported = latch(&cli, &["users", "export", "grace@example.com"]).await;
    for secret in &seen.0 {
        assert!(
            !exported.contains(secret.as_str()),
            "{secret} exported:\n{exported}"
        );
    }
    let export: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(export["user"]["id"], grace.as_str());
    assert_eq!(export["user"]["email"], "grace@example.com");
    assert_eq!(export["accounts"].as_array().unwrap().len(), 1, "{export}");
    assert_eq!(export["accounts"][0]["provider"], "dev");
    let sessions = export["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{export}");
    assert_eq!(sessions[0]["id"], g_again.as_str());
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[0]["device"], "Firefox on Linux");
    assert!(sessions[0]["started"].as_str().unwrap().ends_with('Z'));
    assert_eq!(export["audit"]["source"], audit.display().to_string());
    let events: Vec<&str> = export["audit"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["user_id"], grace.as_str(), "only this user's events: {e}");
            e["event"].as_str().unwrap()
        })
        .collect();
    for wanted in [
        "signin.succeeded",
        "account.linked",
        "account.unlinked",
        "admin.sessions_revoked",
    ] {
        assert!(events.contains(&wanted), "{wanted} missing from {events:?}");
    }
    line_where(&audit, |l| {
        l["event"] == "admin.user_exported" && l["user_id"] == grace.as_str()
    })
    .await;

    latch(&cli, &["users", "delete", &grace]).await;
    let line = line_where(&audit, is("user.deleted")).await;
    assert_eq!(line["user_id"], grace.as_str());
    let line = line_where(&audit, is("admin.user_deleted")).await;
    assert_eq!(
        (&line["accounts"], &line["sessions"]),
        (&Value::from(1), &Value::from(1))
    );
    line_where(&audit, |l| {
        l["event"] == "session.ended" && l["session"] == g_again.as_str() && l["by"] == "admin"
    })
    .await;
    assert_eq!(session(&app, &g).await, serde_json::json!({}));

    // sessions revoke --all: a session.ended per session, then the command.
    let h = Browser::with_user_agent(UA);
    let (h_id, _) = sign_in(&app, &h, "dev", "hal@example.com", &mut seen).await;
    latch(&cli, &["sessions", "revoke", "--all"]).await;
    let line = line_where(&audit, |l| {
        l["event"] == "session.ended" && l["session"] == h_id.as_str()
    })
    .await;
    assert_eq!(line["by"], "admin");
    let line = line_where(&audit, |l| {
        l["event"] == "admin.sessions_revoked" && l["all"] == true
    })
    .await;
    assert!(line["sessions"].as_u64().unwrap() >= 1, "{line}");

    app.stop().await;
    short.stop().await;

    // Every line: the common fields, a known name; none holds anything secret.
    let text = std::fs::read_to_string(&audit).unwrap();
    let all = lines(&audit);
    let known = [
        "signin.succeeded",
        "signin.refused",
        "signout",
        "session.ended",
        "refresh.reuse_detected",
        "account.linked",
        "account.unlinked",
        "user.deleted",
        "admin.sessions_revoked",
        "admin.user_deleted",
        "admin.account_unlinked",
        "admin.user_exported",
    ];
    for name in known {
        assert!(all.iter().any(|l| l["event"] == name), "no {name} line");
    }
    for line in &all {
        let object = line.as_object().unwrap();
        for key in [
            "time",
            "event",
            "user_id",
            "provider",
            "ip",
            "user_agent",
            "request_id",
        ] {
            assert!(object.contains_key(key), "{key} missing: {line}");
        }
        assert!(known.contains(&line["event"].as_str().unwrap()), "{line}");
        let time = line["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'));
        assert_eq!(time.len(), "2026-01-01T00:00:00.000Z".len(), "{time}");
    }
    assert!(seen.0.len() > 20, "{}", seen.0.len());
    for secret in &seen.0 {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} is in the audit file:\n{text}"
        );
    }
}

/// A write error never fails a request: with every write failing (`/dev/full` answers
/// ENOSPC), sign-ins work and latch logs the failure once, not once per line.
#[tokio::test]
async fn an_audit_file_that_cannot_be_written_never_fails_a_request() {
    let process = LatchProcess::start(|_| {
        "[store]\nurl = \"memory://\"\n\n[audit]\nfile = \"/dev/full\"\n\n[providers.dev]\npreset = \"dev\"\n".into()
    })
    .await;
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        let browser = Browser::with_user_agent(UA);
        sign_in_with_dev(&process, &browser, email, "/account").await;
        assert_eq!(session(&process, &browser).await["user"]["email"], email);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log().contains("audit log write failed") {
        assert!(Instant::now() < deadline, "{}", process.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = process.stop().await;
    assert_eq!(log.matches("audit log write failed").count(), 1, "{log}");
}

/// logrotate: the file renamed, then `SIGHUP` (here with a configuration that is refused,
/// which keeps the running one): the next line goes to a new file at the configured path.
#[tokio::test]
async fn sighup_reopens_the_audit_file_for_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let rest = format!(
        "[store]\nurl = \"memory://\"\n\n[audit]\nfile = \"{}\"\n\n[providers.dev]\npreset = \"dev\"\n",
        audit.display()
    );
    let process = LatchProcess::start(|_| rest.clone()).await;
    let browser = Browser::with_user_agent(UA);
    sign_in_with_dev(&process, &browser, "ada@example.com", "/account").await;
    line_where(&audit, is("signin.succeeded")).await;
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    process.rewrite_config("[store]\nurl = 3\n");
    process.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process.log().contains("reload refused") {
        assert!(Instant::now() < deadline, "{}", process.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sign_out(&process, &browser, &[]).await.status(),
        StatusCode::FOUND
    );
    let line = line_where(&audit, is("signout")).await;
    from_request(&line);
    assert_eq!(
        lines(&rotated).len(),
        1,
        "the rotated file keeps its line only"
    );
    assert_eq!(lines(&audit).len(), 1);
    process.stop().await;
}

/// `latch check` says where the audit log goes.
#[tokio::test]
async fn latch_check_names_the_audit_log() {
    use crate::support::latch_bin::{check, config_with_store};
    let plain = config_with_store("memory://");
    let (code, out, _) = check(&plain).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("audit log: off\n"), "{out}");
    let (code, out, _) = check(&format!("{plain}\n[audit]\nfile = \"stderr\"\n")).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("audit log: stderr\n"), "{out}");
    let (code, _, err) = check(&format!("{plain}\n[audit]\nfile = \"\"\n")).await;
    assert_eq!(code, Some(2));
    assert!(err.contains(":13: audit.file: empty"), "{err}");
}

/// A back-channel logout: `session.ended` by `backchannel` for the session of that provider
/// session, from the provider's request (its address, no browser); the Logout Token is
/// nowhere in the file.
#[tokio::test]
async fn a_back_channel_logout_is_a_session_ended_by_backchannel() {
    use crate::support::flows::through_provider;
    use crate::support::hostile::{Behavior, Hostile, Signing};
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let hostile = Hostile::start().await;
    hostile.set(Behavior {
        claims: Box::new(|c| c["sid"] = serde_json::json!("bc-1")),
        ..Behavior::default()
    });
    let app = Setup::default()
        .with_providers(format!(
            "[audit]\nfile = \"{}\"\n\n{}",
            audit.display(),
            hostile.provider_toml()
        ))
        .spawn()
        .await;
    let browser = Browser::with_user_agent(UA);
    let done = through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let token = browser.cookie("latch.session-token").unwrap().value;
    let id = latch::session::session_id(&token);
    let logout = hostile.logout_token(Signing::Good, |c| c["sid"] = serde_json::json!("bc-1"));
    let answer = Browser::with_user_agent("provider-backchannel/1")
        .post_form(
            &app.url("/backchannel-logout/hostile"),
            &[("logout_token", logout.as_str())],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let line = line_where(&audit, |l| {
        l["event"] == "session.ended" && l["session"] == id.as_str()
    })
    .await;
    assert_eq!(line["by"], "backchannel");
    assert_eq!(line["provider"], "hostile");
    assert_eq!(line["user_agent"], "provider-backchannel/1");
    assert!(line["user_id"].is_string(), "{line}");
    app.stop().await;
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [logout.as_str(), token.as_str()] {
        assert!(!text.contains(secret), "{text}");
    }
}
