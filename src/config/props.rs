//! Property tests: config loading never panics on arbitrary, TOML-shaped input, and every
//! error it reports says where (a line, or the key that is missing).
use super::*;
use proptest::prelude::*;
use std::path::Path;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn env(name: &str) -> Option<String> {
    (name == "LATCH_SECRET").then(|| SECRET.to_string())
}

/// Keys latch knows (so validation past the syntax is reached) and a few it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "listen",
            "public_url",
            "base_path",
            "secret",
            "trusted_origins",
            "trusted_proxies",
            "previous_secrets",
            "templates",
            "url",
            "max_age",
            "idle_timeout",
            "update_age",
            "cookie_domain",
            "access_ttl",
            "refresh_ttl",
            "audience",
            "key_rotation",
            "refresh_grace",
            "signin",
            "callback",
            "token",
            "refresh",
            "preset",
            "type",
            "name",
            "issuer",
            "client_id",
            "client_secret",
            "scopes",
            "timeout",
            "response_mode",
            "token_endpoint_auth_method",
            "link_by_email",
            "allowed_emails",
            "authorization_url",
            "token_url",
            "userinfo_url",
            "tenant",
            "team_id",
            "private_key_file",
            "id",
            "email",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,12}",
        "\"[^\"\n]{0,8}\"",
    ]
}

fn value() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "http://localhost:3000",
            "https://a.example",
            "https://*.example.com",
            "memory://",
            "sqlite://x.db",
            "redis://127.0.0.1:1",
            "redis+sentinel://h:1/m",
            "10s",
            "0s",
            "30d",
            "1ms",
            "google",
            "github",
            "dev",
            "oidc",
            "oauth2",
            "apple",
            "form_post",
            "none",
            "${LATCH_SECRET}",
            "${UNSET}",
            "$${x}",
            "${",
            "30/min",
            "off",
            "/api/auth",
            "::1",
            "10.0.0.0/8",
            "\u{0}",
            "é",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,24}",
    ];
    prop_oneof![
        text.clone()
            .prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::collection::vec(text, 0..3).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_string()),
        Just("\"unterminated".to_string()),
        "[ -~]{0,16}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec![
            "[server]", "[store]", "[session]", "[tokens]", "[limits]", "[providers.x]",
            "[providers.x.profile]", "[providers.y]", "[[policies]]", "[server]\n[server]",
            "[providers]", "[nope]", "[",
        ])
        .prop_map(str::to_string),
        1 => "[^\n]{0,30}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        Just(String::new()),
        Just("[server]\nsecret = \"${LATCH_SECRET}\"\n".to_string()),
        Just(include_str!("../../providers.toml").to_string()),
    ];
    (base, prop::collection::vec(line(), 0..12)).prop_map(|(base, lines)| {
        let mut doc = base;
        doc.push_str(&lines.join("\n"));
        doc
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn loading_never_panics_and_every_error_says_where(text in document()) {
        if let Err(errors) = load_str(Path::new("providers.toml"), &text, &env) {
            prop_assert!(!errors.0.is_empty());
            for e in &errors.0 {
                // A line, or else the key that is missing from the file.
                prop_assert!(e.line.is_some() || !e.key.is_empty(), "{e}\n--\n{text}");
                if let Some(line) = e.line {
                    prop_assert!(line >= 1 && line <= text.lines().count().max(1), "{e}\n--\n{text}");
                }
                prop_assert!(e.to_string().starts_with("providers.toml"), "{e}");
                prop_assert!(!e.message.trim().is_empty(), "{e}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,200}") {
        let _ = load_str(Path::new("providers.toml"), &text, &env);
    }
}
