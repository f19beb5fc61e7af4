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

/// `providers.<id>.max_response_bytes`: 1 MiB by default, 1 KiB..64 MiB, reported with its line.
#[test]
fn max_response_bytes_default_and_bounds() {
    let file = |extra: &str| {
        format!(
            "[server]\nsecret = \"${{LATCH_SECRET}}\"\n\n[providers.corp]\ntype = \"oidc\"\nissuer = \"https://sso.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{extra}"
        )
    };
    let load = |text: &str| load_str(Path::new("providers.toml"), text, &env);
    let c = load(&file("")).unwrap();
    assert_eq!(c.providers[0].max_response_bytes, 1 << 20);
    let c = load(&file("max_response_bytes = 4194304\n")).unwrap();
    assert_eq!(c.providers[0].max_response_bytes, 4 << 20);
    for bad in ["0", "1023", "67108865", "-1"] {
        let e = load(&file(&format!("max_response_bytes = {bad}\n")))
            .unwrap_err()
            .0;
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert_eq!(e[0].key, "providers.corp.max_response_bytes");
        assert_eq!(e[0].line, Some(9), "{}", e[0]);
        assert!(e[0].message.contains("1024 to 67108864"), "{}", e[0]);
    }
    let e = load(&file("max_response_bytes = \"1MiB\"\n"))
        .unwrap_err()
        .0;
    assert_eq!(e[0].line, Some(9), "{}", e[0]);
}
