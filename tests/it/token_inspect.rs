//! `latch token inspect`: the real binary, against a running latch's SQLite store (`--config`)
//! and against the hostile provider's JWKS (`--issuer`), one verdict at a time.
use crate::support::browser::Browser;
use crate::support::dev;
use crate::support::flows::{access_token, refresh_with, session, sign_out};
use crate::support::hostile::{Hostile, Signing, CLIENT_ID};
use crate::support::latch::{Setup, TestApp};
use crate::support::latch_bin::command;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Exit code `code`, no panic; stdout for 0 and 1, stderr for 2.
    fn expect(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        if code == 2 {
            &self.stderr
        } else {
            &self.stdout
        }
    }
}

/// `latch token inspect <args> --config <config>`, with `stdin` piped in when given.
async fn inspect(config: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut all = vec!["token", "inspect"];
    all.extend_from_slice(args);
    let mut child = command(&all, config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A providers.toml for the CLI naming the running instance's public URL and store.
fn cli_config(dir: &Path, app: &TestApp, store_url: &str) -> PathBuf {
    let path = dir.join("providers.toml");
    let text = Setup::default()
        .store(store_url)
        .toml(&app.origin, "127.0.0.1:0");
    std::fs::write(&path, text).unwrap();
    path
}

/// The store's current signing key, as the running instance has it (same config, same
/// secret): for tokens the test shapes itself (expired, another audience).
async fn current_key(config: &Path) -> std::sync::Arc<latch::jws::SigningKey> {
    let config = latch::config::load(config).unwrap();
    let store = latch::store::open(&config.store.url, config.store.sqlite_path().as_deref())
        .await
        .unwrap();
    let t = &config.tokens;
    latch::tokens::keys::KeyRing::new(
        store,
        config.server.secret.expose(),
        t.key_rotation,
        t.access_ttl,
    )
    .current()
    .await
    .unwrap()
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn inspect_explains_each_verdict_against_a_running_latch() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("latch.db").display());
    let app = Setup::default().store(store_url.clone()).spawn().await;
    let config = cli_config(dir.path(), &app, &store_url);

    let browser: Browser = dev::signed_in(&app, "ada@example.com").await;
    let s = session(&app, &browser).await;
    assert_eq!(s["user"]["email"], "ada@example.com", "{s}");
    let token = access_token(&app, &browser, "/token", &[]).await;
    let claims = payload(&token);
    let sid = claims["sid"].as_str().unwrap().to_string();
    let kid = {
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_string()
    };
    let session_cookie = browser.cookie("latch.session-token").unwrap().value;
    let refresh_cookie = browser.cookie("latch.refresh-token").unwrap().value;

    // A valid token of the current key, its session live: exit 0, in words.
    let out = inspect(&config, &[&token], None).await;
    let text = out.expect(0);
    println!("valid token:\n{text}");
    assert!(
        text.contains("kind:      latch access token (JWT, ES256)"),
        "{text}"
    );
    assert!(text.contains("\"sub\""), "claims shown: {text}");
    assert!(text.contains("ok    expiry     expires in "), "{text}");
    assert!(
        text.contains(&format!(
            "ok    key        kid `{kid}`: the current signing key"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("verified with latch's key `{kid}`")),
        "{text}"
    );
    assert!(text.contains("`aud` is `api`"), "{text}");
    assert!(text.contains(&format!("session {sid} is live")), "{text}");
    assert!(text.contains("verdict:   valid"), "{text}");
    assert!(!text.contains(&token), "the token itself is never printed");
    // The same from stdin.
    let out = inspect(&config, &["-"], Some(&format!("{token}\n"))).await;
    assert!(out.expect(0).contains("verdict:   valid"));

    // Expired 4 minutes ago, signed with the current key.
    let key = current_key(&config).await;
    let mut shaped = claims.clone();
    shaped["iat"] = json!(now() - 540);
    shaped["exp"] = json!(now() - 240);
    let out = inspect(&config, &[&key.sign(&shaped)], None).await;
    let text = out.expect(1);
    println!("expired token:\n{text}");
    assert!(
        text.contains("FAIL  expiry     expired 4 min ago"),
        "{text}"
    );
    assert!(
        text.contains("verdict:   INVALID: expired 4 min ago"),
        "{text}"
    );
    assert!(
        text.contains(&format!("verified with latch's key `{kid}`")),
        "{text}"
    );

    // Another audience: what it is and what is expected.
    let mut shaped = claims.clone();
    shaped["aud"] = json!("web");
    let text = inspect(&config, &[&key.sign(&shaped)], None).await;
    let text = text.expect(1);
    assert!(
        text.contains("FAIL  audience   `aud` is `web`, expected one of `api`"),
        "{text}"
    );

    // A key latch never had.
    let stranger = latch::jws::SigningKey::generate();
    let text = inspect(&config, &[&stranger.sign(&claims)], None).await;
    let text = text.expect(1);
    assert!(text.contains("signed with an unknown key"), "{text}");
    assert!(
        text.contains(&format!("kid `{}`", stranger.kid())),
        "{text}"
    );

    // Tampered: another subject under the original signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut forged = claims.clone();
    forged["sub"] = json!("someone-else");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    let text = inspect(&config, &[&parts.join(".")], None).await;
    let text = text.expect(1);
    assert!(text.contains("FAIL  signature  bad signature"), "{text}");

    // alg none.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let text = inspect(&config, &[&none], None).await;
    assert!(text.expect(1).contains("alg none refused"));

    // The session cookie value: live, shown as a prefix with its session id.
    let out = inspect(
        &config,
        &[&format!("latch.session-token={session_cookie}")],
        None,
    )
    .await;
    let text = out.expect(0);
    assert!(
        text.contains(&format!("value:     {}… (43 chars)", &session_cookie[..6])),
        "{text}"
    );
    assert!(text.contains(&format!("session {sid} is live")), "{text}");
    assert!(!text.contains(&session_cookie), "{text}");
    // Without the cookie name it is found too.
    assert!(inspect(&config, &[&session_cookie], None)
        .await
        .expect(0)
        .contains(&format!("maps to:   session id {sid}")));

    // The refresh cookie value: only a prefix, the family and its session.
    let text = inspect(&config, &[&refresh_cookie], None).await;
    let text = text.expect(0);
    println!("refresh cookie:\n{text}");
    assert!(
        text.contains("is:         a refresh token") || text.contains("a refresh token"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}… (43 chars)", &refresh_cookie[..6])),
        "{text}"
    );
    assert!(text.contains("the family's current token"), "{text}");
    assert!(text.contains(&format!("of session {sid}")), "{text}");
    assert!(
        !text.contains(&refresh_cookie),
        "never the full refresh token: {text}"
    );

    // Rotated by a /refresh: the old value is a superseded token now.
    let rotated = refresh_with(&app, &refresh_cookie).await;
    assert!(rotated.status().is_success(), "{}", rotated.status());
    let text = inspect(&config, &[&refresh_cookie], None).await;
    let text = text.expect(1);
    assert!(text.contains("FAIL  rotation   already rotated"), "{text}");

    // Signed out: the token's session and the session cookie are dead.
    let done = sign_out(&app, &browser, &[]).await;
    assert!(done.status().is_redirection() || done.status().is_success());
    let text = inspect(&config, &[&token], None).await;
    let text = text.expect(1);
    println!("after sign-out:\n{text}");
    assert!(
        text.contains(&format!("FAIL  session    session {sid} has ended")),
        "{text}"
    );
    let text = inspect(
        &config,
        &[&format!("latch.session-token={session_cookie}")],
        None,
    )
    .await;
    assert!(text.expect(1).contains("no live session has this token"));

    // Garbage, from stdin: exit 2, the input not echoed.
    let out = inspect(&config, &["-"], Some("hunter2 is my password\n")).await;
    let text = out.expect(2);
    assert!(
        text.contains("not a JWT and not a latch cookie value"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(out.stdout.is_empty());

    app.stop().await;
}

#[tokio::test]
async fn inspect_verifies_a_provider_token_against_its_jwks() {
    let hostile = Hostile::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The CLI reads a real config (and its store) beside --issuer.
    let store_url = format!("sqlite://{}", dir.path().join("latch.db").display());
    let app = Setup::default().store(store_url.clone()).spawn().await;
    let config = cli_config(dir.path(), &app, &store_url);
    // Once latch answers, it has created its SQLite file (which the CLI opens, not creates).
    let answered = crate::support::browser::http_client()
        .get(app.url("/session"))
        .send()
        .await
        .unwrap();
    assert!(answered.status().is_success());
    let exp = now() + 600;
    let args = |token: &str| {
        vec![
            token.to_string(),
            "--issuer".to_string(),
            hostile.issuer.clone(),
            "--audience".to_string(),
            CLIENT_ID.to_string(),
        ]
    };
    let run = |token: String| {
        let config = config.clone();
        let args = args(&token);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            inspect(&config, &args, None).await
        }
    };

    let good = hostile.logout_token(Signing::Good, |c| c["exp"] = json!(exp));
    let out = run(good).await;
    let text = out.expect(0);
    assert!(text.contains("JWT from an OpenID provider"), "{text}");
    assert!(
        text.contains("verified with the provider's key `main`"),
        "{text}"
    );
    assert!(text.contains(&format!("`aud` is `{CLIENT_ID}`")), "{text}");

    let wrong = hostile.logout_token(Signing::WrongKey, |c| c["exp"] = json!(exp));
    assert!(run(wrong).await.expect(1).contains("bad signature"));

    let unknown = hostile.logout_token(Signing::SecondKey, |c| c["exp"] = json!(exp));
    assert!(run(unknown)
        .await
        .expect(1)
        .contains("signed with an unknown key: kid `second`"));

    let none = hostile.logout_token(Signing::AlgNone, |c| c["exp"] = json!(exp));
    assert!(run(none).await.expect(1).contains("alg none refused"));

    let hs = hostile.logout_token(Signing::Hs256WithPublicKey, |c| c["exp"] = json!(exp));
    assert!(run(hs).await.expect(1).contains("alg HS256 refused"));

    let expired = hostile.logout_token(Signing::Good, |c| c["exp"] = json!(now() - 240));
    assert!(run(expired).await.expect(1).contains("expired 4 min ago"));

    // A plain-http issuer off loopback is refused before anything is fetched.
    let good = hostile.logout_token(Signing::Good, |c| c["exp"] = json!(exp));
    let out = inspect(&config, &[&good, "--issuer", "http://example.com"], None).await;
    assert!(out.expect(2).contains("is not https"));
    app.stop().await;
}
