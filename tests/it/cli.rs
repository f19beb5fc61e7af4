//! The `latch` binary: configuration mistakes are reported before anything listens.
use std::process::Command;

fn latch(args: &[&str], config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_latch"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .env_remove("LATCH_LISTEN")
        .env_remove("LATCH_SECRET")
        .output()
        .unwrap()
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
fn check_prints_callback_urls() {
    let out = latch(&["check"], GOOD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("http://localhost:3000/callback/dev"),
        "{stdout}"
    );
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
