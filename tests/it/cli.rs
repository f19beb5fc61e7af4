//! The `latch` binary: configuration mistakes are reported before anything listens.
use crate::support::latch_bin::{config_file, std_command};
use crate::support::stub;
use std::process::Command;

fn latch(args: &[&str], config: &str) -> std::process::Output {
    let file = config_file(config);
    std_command(args, &file.path).output().unwrap()
}

const GOOD: &str = r#"[server]
public_url = "http://localhost:3000"
secret = "0123456789abcdef0123456789abcdef"

[store]
url = "memory://"

[providers.dev]
preset = "dev"
"#;

#[test]
fn check_prints_the_urls_to_register() {
    // An OpenID provider also gets its back-channel logout URL; the dev provider and plain
    // OAuth 2.0 ones have none.
    let config = format!(
        "{GOOD}\n[providers.corp]\ntype = \"oidc\"\nissuer = \"https://sso.corp.test\"\nclient_id = \"id\"\nclient_secret = \"s\"\nfederated_signout = true\n"
    );
    let out = latch(&["check"], &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for url in [
        "callback URL: http://localhost:3000/callback/dev",
        "callback URL: http://localhost:3000/callback/corp",
        "back-channel logout URL: http://localhost:3000/backchannel-logout/corp",
        "post-logout redirect URI: http://localhost:3000/signout/done",
    ] {
        assert!(stdout.contains(url), "{url}: {stdout}");
    }
    assert!(!stdout.contains("backchannel-logout/dev"), "{stdout}");
}

#[test]
fn mistakes_are_reported_with_line_and_key_and_nothing_starts() {
    let bad = r#"[server]
public_url = "http://localhost:3000"
secret = "${LATCH_SECRET}"
listen = "127.0.0.1:0"

[session]
max_age = "30 days"
idel_timeout = "7d"

[providers.dev]
preset = "dev"
"#;
    for command in ["check", "serve"] {
        let out = latch(&[command], bad);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("providers.toml:3") && stderr.contains("LATCH_SECRET"),
            "{stderr}"
        );
        assert!(
            stderr.contains("providers.toml:7") && stderr.contains("max_age"),
            "{stderr}"
        );
        assert!(
            stderr.contains("providers.toml:8") && stderr.contains("idel_timeout"),
            "{stderr}"
        );
        assert!(
            stderr.contains("idle_timeout"),
            "names what would be valid: {stderr}"
        );
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[test]
fn the_secret_never_appears_in_errors() {
    let leaky = GOOD.replace(
        "secret = \"0123456789abcdef0123456789abcdef\"",
        "secret = \"short-but-secret\"",
    );
    let out = latch(&["check"], &leaky);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.secret"), "{stderr}");
    assert!(!stderr.contains("short-but-secret"), "{stderr}");
}

#[test]
fn the_dev_provider_is_refused_on_a_public_host() {
    let public = GOOD.replace("http://localhost:3000", "https://login.example.com");
    let out = latch(&["check"], &public);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("providers.dev"), "{stderr}");
}

/// Serves a discovery document for any issuer path under it (`/<name>/.well-known/...`).
async fn discovery_server() -> String {
    use axum::extract::Path;
    use axum::routing::get;
    let (listener, base) = stub::listen().await;
    let origin = base.clone();
    let app = axum::Router::new().route(
        "/{name}/.well-known/openid-configuration",
        get(move |Path(name): Path<String>| {
            let issuer = format!("{origin}/{name}");
            async move { axum::Json(stub::discovery(&issuer, "RS256")) }
        }),
    );
    stub::spawn(listener, app);
    base
}

#[tokio::test]
async fn check_discover_resolves_every_discovery_based_preset() {
    let base = discovery_server().await;
    let presets = [
        "google", "gitlab", "slack", "linkedin", "twitch", "okta", "auth0", "keycloak",
    ];
    let mut config = GOOD.to_string();
    for p in presets {
        config.push_str(&format!(
            "\n[providers.{p}]\npreset = \"{p}\"\nissuer = \"{base}/{p}\"\nclient_id = \"id\"\nclient_secret = \"secret\"\n"
        ));
    }
    let out = tokio::task::spawn_blocking(move || latch(&["check", "--discover"], &config))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in presets {
        assert!(
            stdout.contains(&format!("token_endpoint:         {base}/{p}/token")),
            "{p}: {stdout}"
        );
    }
}

#[tokio::test]
async fn check_discover_reports_a_missing_discovery_document() {
    let base = discovery_server().await;
    // The server has no document at its root.
    let config = format!(
        "{GOOD}\n[providers.corp]\ntype = \"oidc\"\nissuer = \"{base}\"\nclient_id = \"id\"\nclient_secret = \"s\"\n"
    );
    let out = tokio::task::spawn_blocking(move || latch(&["check", "--discover"], &config))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("discovery FAILED"), "{stdout}");
}

#[test]
fn presets_lists_every_preset_with_its_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .arg("presets")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for p in [
        "google",
        "github",
        "gitlab",
        "microsoft-entra-id",
        "apple",
        "discord",
        "slack",
        "linkedin",
        "facebook",
        "twitch",
        "okta",
        "auth0",
        "keycloak",
        "dev",
    ] {
        assert!(stdout.contains(p), "{p} missing: {stdout}");
    }
    assert!(
        stdout.contains("team_id"),
        "apple's required keys: {stdout}"
    );
}
