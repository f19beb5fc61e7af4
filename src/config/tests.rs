use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn env(name: &str) -> Option<String> {
    match name {
        "LATCH_SECRET" => Some(SECRET.to_string()),
        "CORP_SECRET" => Some("corp-client-secret-value".to_string()),
        "HOST" => Some("login.example.com".to_string()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    load_str(Path::new("providers.toml"), text, env)
}

fn ok(text: &str) -> Config {
    match load_with(text, &env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match load_with(text, &env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// A minimal valid file plus `extra`.
fn with(extra: &str) -> String {
    format!("[server]\nsecret = \"${{LATCH_SECRET}}\"\n{extra}")
}

#[test]
fn sample_file_loads() {
    let c = load_with(include_str!("../../providers.toml"), &no_env).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:3000");
    assert_eq!(c.server.public_url.as_str(), "http://localhost:3000/");
    assert_eq!(c.server.base_path, "");
    assert_eq!(c.store.url, "sqlite://latch.db");
    assert_eq!(c.providers.len(), 1);
    assert_eq!(c.providers[0].id, "dev");
    assert!(matches!(c.providers[0].kind, ProviderKind::Dev));
    assert_eq!(c.providers[0].client_id, "latch-dev");
    assert_eq!(c.session.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(c.session.cookie_domain, None);
}

#[test]
fn sample_file_loads_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.toml");
    let c = load(&path).unwrap();
    assert_eq!(
        c.store.sqlite_path().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("latch.db")
    );
}

#[test]
fn defaults() {
    let c = ok(&with(""));
    assert_eq!(c.server.listen, "127.0.0.1:3000");
    assert_eq!(c.server.public_url.as_str(), "http://localhost:3000/");
    assert_eq!(c.server.base_path, "");
    assert_eq!(c.server.secret.expose(), SECRET.as_bytes());
    assert!(c.server.trusted_origins.is_empty());
    assert!(c.server.templates.is_none());
    assert_eq!(c.store.url, "sqlite://latch.db");
    assert_eq!(c.store.scheme(), "sqlite");
    assert_eq!(c.session.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(7 * 86_400));
    assert_eq!(c.session.update_age, Duration::from_secs(86_400));
    assert_eq!(c.tokens.access_ttl, Duration::from_secs(600));
    assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(c.tokens.audience, vec!["api"]);
    assert!(c.providers.is_empty());
}

#[test]
fn full_valid_file() {
    let text = r#"
[server]
listen = "0.0.0.0:8443"
public_url = "https://${HOST}/"
base_path = "/api/auth"
secret = "${LATCH_SECRET}"
trusted_origins = ["http://localhost:8080", "https://*.example.com"]

[store]
url = "redis://127.0.0.1:6379/0"

[session]
max_age = "14d"
idle_timeout = "2d"
update_age = "1h"
cookie_domain = ".Example.com"

[tokens]
access_ttl = "5m"
refresh_ttl = "7d"
audience = ["api", "admin"]

[providers.corp]
type = "oidc"
name = "Corp SSO"
issuer = "https://sso.corp.example"
client_id = "latch"
client_secret = "${CORP_SECRET}"
scopes = ["openid", "email"]
link_by_email = true
timeout = "3s"

[providers.another]
type = "oidc"
issuer = "http://127.0.0.1:9000/realms/x"
client_id = "x"
token_endpoint_auth_method = "none"
"#;
    let c = ok(text);
    assert_eq!(c.path, Path::new("providers.toml"));
    assert_eq!(c.server.listen, "0.0.0.0:8443");
    assert_eq!(c.server.public_url.as_str(), "https://login.example.com/");
    assert_eq!(c.server.base_path, "/api/auth");
    assert_eq!(c.server.trusted_origins.len(), 2);
    assert_eq!(c.store.url, "redis://127.0.0.1:6379/0");
    assert_eq!(c.store.sqlite_path(), None);
    assert_eq!(c.session.max_age, Duration::from_secs(14 * 86_400));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(2 * 86_400));
    assert_eq!(c.session.update_age, Duration::from_secs(3600));
    assert_eq!(c.session.cookie_domain.as_deref(), Some(".example.com"));
    assert_eq!(c.tokens.access_ttl, Duration::from_secs(300));
    assert_eq!(c.tokens.audience, vec!["api", "admin"]);

    // in the order of the file, not alphabetical
    let ids: Vec<_> = c.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["corp", "another"]);
    let corp = &c.providers[0];
    assert_eq!(corp.name, "Corp SSO");
    match &corp.kind {
        ProviderKind::Oidc { issuer, .. } => {
            assert_eq!(issuer.host_str(), Some("sso.corp.example"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(corp.client_id, "latch");
    assert_eq!(
        corp.client_secret.as_ref().unwrap().expose(),
        b"corp-client-secret-value"
    );
    assert_eq!(corp.scopes, vec!["openid", "email"]);
    assert!(corp.link_by_email);
    assert_eq!(corp.timeout, Duration::from_secs(3));
    let another = &c.providers[1];
    assert_eq!(another.name, "another");
    assert_eq!(another.scopes, vec!["openid", "email", "profile"]);
    assert!(!another.link_by_email);
    assert_eq!(another.timeout, Duration::from_secs(10));
    assert!(another.client_secret.is_none());
    assert_eq!(another.token_auth, TokenAuth::None);
    assert_eq!(corp.token_auth, TokenAuth::ClientSecretBasic);
    assert_eq!(corp.response_mode, ResponseMode::Query);
    assert_eq!(corp.preset, None);
    assert_eq!(corp.logo, None);
    assert!(corp.authorization_params.is_empty());
    assert!(crate::provider::presets::apple::key(corp).is_none());
    assert_eq!(corp.access, AccessRules::default());
}

#[test]
fn env_expansion_and_escape() {
    let c = ok(&with(
        "[tokens]\naudience = [\"$${X}\", \"${HOST}\", \"a$$b\"]\n[providers.c]\npreset = \"dev\"\nname = \"Dev $${HOST} on ${HOST}\"\n",
    ));
    assert_eq!(c.tokens.audience, vec!["${X}", "login.example.com", "a$$b"]);
    assert_eq!(c.providers[0].name, "Dev ${HOST} on login.example.com");
}

#[test]
fn every_bad_key_is_reported() {
    let text = "[server]\nsecret = \"${LATCH_SECRET}\"\nlisten = 3000\n[session]\nmax_age = \"1y\"\n[providers.x]\ntype = \"oidc\"\nissuer = \"http://sso.example.com\"\nlink_by_email = \"yes\"\nclient_id = \"c\"\nclient_secret = \"s\"\n[providers.y]\npreset = \"googel\"\n";
    let e = load_with(text, &env).unwrap_err();
    let lines: Vec<_> = e.0.iter().map(|e| e.line.unwrap()).collect();
    // the provider with a wrongly typed key is still validated: its http issuer is refused too
    assert_eq!(lines, [3, 5, 8, 9, 13], "{e}");
    assert_eq!(e.0[2].key, "providers.x.issuer");
    assert_eq!(e.to_string().lines().count(), 5);
    let e = load_with("[server\nx = 1\ny = = 2\n", &env).unwrap_err();
    assert!(e.0.len() >= 2, "{e}");
    assert_eq!(e.0[0].line, Some(1));
    assert!(e.0.iter().any(|e| e.line == Some(3)), "{e}");
}

#[test]
fn unset_variable_names_key_and_variable() {
    let e = errs("[server]\n\nsecret = \"${NOT_SET_ANYWHERE}\"\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "server.secret");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].message.contains("NOT_SET_ANYWHERE"), "{}", e[0]);
    assert_eq!(
        e[0].to_string(),
        "providers.toml:3: server.secret: environment variable NOT_SET_ANYWHERE is not set"
    );
}

#[test]
fn unterminated_variable() {
    let e = errs(&with("public_url = \"http://${HOST\"\n"));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "server.public_url");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].message.contains("unterminated"));
}

#[test]
fn unknown_key_with_line_and_expected_fields() {
    let e = errs(&with("\nlistne = \"127.0.0.1:3000\"\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(4));
    assert_eq!(e[0].key, "server.listne");
    assert!(e[0].message.contains("unknown field `listne`"), "{}", e[0]);
    assert!(e[0].message.contains("`listen`"), "{}", e[0]);
    assert!(e[0].message.contains("`public_url`"), "{}", e[0]);
}

#[test]
fn unknown_key_in_provider() {
    let e = errs("[server]\nsecret = \"${LATCH_SECRET}\"\n[providers.x]\npreset = \"dev\"\nclient_idd = \"a\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(5));
    assert_eq!(e[0].key, "providers.x.client_idd");
    assert!(e[0].message.contains("`client_id`"));
}

#[test]
fn unknown_top_level_key() {
    let e = errs(&format!("listen = \"x\"\n{}", with("")));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(1));
    assert_eq!(e[0].key, "listen");
    assert!(e[0].message.contains("`[server]`"));
}

#[test]
fn wrong_type() {
    let e = errs(&with("[tokens]\naudience = \"api\"\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].line, Some(4));
    assert_eq!(e[0].key, "tokens.audience");
    assert!(e[0].message.contains("invalid type"), "{}", e[0]);

    let e = errs(&with("[session]\nmax_age = 30\n"));
    assert_eq!(e[0].line, Some(4));
    assert_eq!(e[0].key, "session.max_age");
    assert!(e[0].message.contains("\"30d\""), "{}", e[0]);

    let e = errs("server = 5\n");
    assert!(e[0].message.contains("must be a table"));
}

#[test]
fn syntax_error_has_line() {
    let e = errs("[server]\nsecret = \"abc\n");
    assert!(!e.is_empty());
    assert_eq!(e[0].line, Some(2));
    assert!(
        e[0].to_string().starts_with("providers.toml:2: "),
        "{}",
        e[0]
    );
}

#[test]
fn errors_are_collected() {
    let text = "[server]\nsecret = \"${LATCH_SECRET}\"\npublic_url = \"ftp://x\"\n[session]\nmax_age = \"3 weeks\"\n";
    let e = errs(text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].key, "server.public_url");
    assert_eq!(e[0].line, Some(3));
    assert_eq!(e[1].key, "session.max_age");
    assert_eq!(e[1].line, Some(5));
    let shown = ConfigErrors(e).to_string();
    assert_eq!(shown.lines().count(), 2);
}

#[test]
fn errors_collected_across_sections_and_providers() {
    let text = r#"
[server]
secret = "short"
base_path = "/x/"
[store]
url = "postgres://db"
[tokens]
unknown = 1
[providers.a]
preset = "googel"
[providers.b]
type = "saml"
"#;
    let e = errs(text);
    let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.secret",
            "server.base_path",
            "store.url",
            "tokens.unknown",
            "providers.a.preset",
            "providers.b.type"
        ],
        "{e:?}"
    );
    assert!(e[2].message.contains(
        "sqlite://, redis://, rediss://, redis+sentinel://, redis+cluster://, rediss+cluster://, memory://"
    ));
    assert_eq!(
        e[4].message,
        "unknown preset \"googel\"; available: google, github, gitlab, microsoft-entra-id, apple, discord, slack, linkedin, facebook, twitch, okta, auth0, keycloak, dev"
    );
    assert!(
        e[5].message.contains("valid types: oidc, oauth2"),
        "{}",
        e[5]
    );
}

#[test]
fn dev_preset_refused_unless_loopback() {
    let e = errs(&with(
        "public_url = \"https://login.example.com\"\n[providers.dev]\npreset = \"dev\"\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "providers.dev.preset");
    assert_eq!(e[0].line, Some(5));
    assert!(e[0].message.contains("loopback"), "{}", e[0]);
    assert!(e[0].message.contains("anyone"), "{}", e[0]);

    for url in [
        "http://localhost:3000",
        "http://127.0.0.2:3000",
        "http://[::1]:3000",
    ] {
        let c = ok(&with(&format!(
            "public_url = \"{url}\"\n[providers.dev]\npreset = \"dev\"\nname = \"Dev\"\n"
        )));
        assert!(matches!(c.providers[0].kind, ProviderKind::Dev));
        assert_eq!(c.providers[0].name, "Dev");
    }
}

#[test]
fn provider_rules() {
    let e = errs(&with(
        "[providers.Corp]\ntype = \"oidc\"\nissuer = \"https://x\"\nclient_id = \"c\"\n",
    ));
    assert_eq!(e[0].key, "providers.Corp");
    assert!(e[0].message.contains("lowercase"));

    let e = errs(&with("[providers.c]\ntype = \"oidc\"\nclient_id = \"c\"\n"));
    assert_eq!(e[0].key, "providers.c");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].message.contains("`issuer` is required"));

    let e = errs(&with(
        "[providers.c]\ntype = \"oidc\"\nissuer = \"http://sso.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    ));
    assert_eq!(e[0].key, "providers.c.issuer");
    assert!(e[0].message.contains("https"));

    let e = errs(&with(
        "[providers.c]\ntype = \"oidc\"\nissuer = \"https://sso\"\n",
    ));
    assert!(e[0].message.contains("`client_id` is required"));

    let e = errs(&with("[providers.c]\ntype = \"oidc\"\nissuer = \"https://sso\"\nclient_id = \"c\"\nclient_secret = \"s\"\nscopes = [\"email\"]\n"));
    assert_eq!(e[0].key, "providers.c.scopes");
    assert!(e[0].message.contains("openid"));

    let e = errs(&with("[providers.c]\nclient_id = \"c\"\n"));
    assert!(e[0].message.contains("either `type"), "{}", e[0]);

    let e = errs(&with("[providers.c]\npreset = \"dev\"\ntype = \"oidc\"\n"));
    assert_eq!(e[0].key, "providers.c.type");

    let e = errs(&with("[providers.c]\ntype = \"oauth2\"\n"));
    let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "providers.c.authorization_url",
            "providers.c.token_url",
            "providers.c.userinfo_url",
            "providers.c.profile",
            "providers.c.client_id",
            "providers.c.client_secret"
        ],
        "{e:?}"
    );
    assert!(e.iter().all(|e| e.line == Some(3)), "{e:?}");
}

#[test]
fn base_path_validation() {
    for good in ["", "/auth", "/api/auth", "/a-b_c.d/e1"] {
        let c = ok(&with(&format!("base_path = \"{good}\"\n")));
        assert_eq!(c.server.base_path, good);
    }
    for bad in [
        "/", "auth", "/auth/", "/a b", "/a//b", "/a/../b", "/ä", "/a?b",
    ] {
        let e = errs(&with(&format!("base_path = \"{bad}\"\n")));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert_eq!(e[0].key, "server.base_path");
        assert_eq!(e[0].line, Some(3));
    }
}

#[test]
fn public_url_rules() {
    let c = ok(&with("public_url = \"HTTPS://Login.Example.com:443\"\n"));
    assert_eq!(c.server.public_url.as_str(), "https://login.example.com/");
    let c = ok(&with("public_url = \"http://localhost:8080/\"\n"));
    assert_eq!(c.server.public_url.as_str(), "http://localhost:8080/");
    for bad in [
        "login.example.com",
        "ftp://x.example",
        "https://x.example/app",
        "https://x.example/?a=b",
        "https://x.example/#f",
        "https://u:p@x.example/",
    ] {
        let e = errs(&with(&format!("public_url = \"{bad}\"\n")));
        assert_eq!(e[0].key, "server.public_url", "{bad}");
    }
}

#[test]
fn listen_rules() {
    let e = errs(&with("listen = \"localhost:3000\"\n"));
    assert_eq!(e[0].key, "server.listen");
    let over = |n: &str| match n {
        "LATCH_LISTEN" => Some("[::]:4000".to_string()),
        other => env(other),
    };
    let c = load_with(&with("listen = \"127.0.0.1:3000\"\n"), &over).unwrap();
    assert_eq!(c.server.listen, "[::]:4000");
    let bad = |n: &str| match n {
        "LATCH_LISTEN" => Some("nope".to_string()),
        other => env(other),
    };
    let e = load_with(&with(""), &bad).unwrap_err().0;
    assert!(e[0].message.contains("LATCH_LISTEN"));
}

#[test]
fn trusted_origins_errors_point_at_element() {
    let e = errs(&with(
        "trusted_origins = [\n  \"https://ok.example\",\n  \"https://*.com\",\n]\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "server.trusted_origins[1]");
    assert_eq!(e[0].line, Some(5));
}

#[test]
fn templates_directory() {
    let dir = std::env::temp_dir().join(format!("latch-config-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tpl")).unwrap();
    let file = dir.join("providers.toml");
    let c = load_str(&file, &with("templates = \"tpl\"\n"), &env).unwrap();
    assert_eq!(
        c.server.templates.as_deref(),
        Some(dir.join("tpl").as_path())
    );
    let e = load_str(&file, &with("templates = \"missing\"\n"), &env).unwrap_err();
    assert_eq!(e.0[0].key, "server.templates");
    assert!(e.0[0].message.contains("does not exist"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn session_rules() {
    let e = errs(&with(
        "[session]\nmax_age = \"1d\"\nidle_timeout = \"2d\"\nupdate_age = \"0s\"\n",
    ));
    let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["session.idle_timeout", "session.update_age"],
        "{e:?}"
    );

    let e = errs(&with("[session]\nupdate_age = \"7d\"\n"));
    assert_eq!(e[0].key, "session.update_age");

    let e = errs(&with(
        "public_url = \"https://login.example.com\"\n[session]\ncookie_domain = \".other.com\"\n",
    ));
    assert_eq!(e[0].key, "session.cookie_domain");
    let e = errs(&with(
        "public_url = \"https://login.example.com\"\n[session]\ncookie_domain = \"mple.com\"\n",
    ));
    assert_eq!(e[0].key, "session.cookie_domain");
    let c = ok(&with(
        "public_url = \"https://login.example.com\"\n[session]\ncookie_domain = \"example.com\"\n",
    ));
    assert_eq!(c.session.cookie_domain.as_deref(), Some("example.com"));
}

#[test]
fn store_rules() {
    let c = ok(&with(
        "[store]\nurl = \"sqlite:///var/lib/latch/latch.db\"\n",
    ));
    assert_eq!(
        c.store.sqlite_path().unwrap(),
        Path::new("/var/lib/latch/latch.db")
    );
    for good in [
        "memory://",
        "rediss://h:6380",
        "redis+sentinel://h:26379/mymaster",
        "redis+cluster://h:7000",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        "redis+sentinel://u:p@h1:26379,h2:26380,h3:26381/mymaster/2",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss+cluster://:p@h1:7000,h2:7001",
    ] {
        ok(&with(&format!("[store]\nurl = \"{good}\"\n")));
    }
    for url in [
        "redis://:hunter2hunter2@h:6379",
        "redis+sentinel://u:hunter2hunter2@h1:1,h2:2/mymaster",
        "redis+cluster://:hunter2hunter2@h1:1,h2:2",
    ] {
        let c = ok(&with(&format!("[store]\nurl = \"{url}\"\n")));
        assert!(!format!("{:?}", c.store).contains("hunter2"), "{url}");
        assert!(!c.store.redacted_url().contains("hunter2"), "{url}");
    }
    // The multi-host forms are parsed by the store's parser: a bad port is reported, and
    // the message hides the password.
    let e = errs(&with(
        "[store]\nurl = \"redis+cluster://:hunter2hunter2@h1:1,h2:x\"\n",
    ));
    assert_eq!(e[0].key, "store.url");
    assert!(e[0].message.contains("bad port"), "{}", e[0].message);
    assert!(!e[0].to_string().contains("hunter2"), "{}", e[0]);
    let e = errs(&with("[store]\nurl = \"latch.db\"\n"));
    assert_eq!(e[0].key, "store.url");

    // The session cache: 10,000 records unless told, 0 turns it off, nothing negative.
    assert_eq!(ok(&with("")).store.session_cache, 10_000);
    let c = ok(&with(
        "[store]\nurl = \"redis://h:6379\"\nsession_cache = 0\n",
    ));
    assert_eq!(c.store.session_cache, 0);
    for bad in ["-1", "1000001", "\"many\""] {
        let e = errs(&with(&format!("[store]\nsession_cache = {bad}\n")));
        assert_eq!(e[0].key, "store.session_cache", "{bad}");
    }
}

#[test]
fn secret_never_shown() {
    let c = ok(&with("[providers.c]\ntype = \"oidc\"\nissuer = \"https://sso\"\nclient_id = \"c\"\nclient_secret = \"${CORP_SECRET}\"\n"));
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(SECRET));
    assert!(!dbg.contains("corp-client-secret-value"));
    assert!(dbg.contains("Secret(redacted)"));
    assert_eq!(
        format!("{:?}", Secret::new(b"x".to_vec())),
        "Secret(redacted)"
    );

    let e = errs("[server]\nsecret = \"too-short-secret-value\"\n");
    assert_eq!(e[0].key, "server.secret");
    assert!(!e[0].to_string().contains("too-short-secret-value"));
    assert!(e[0].message.contains("32 bytes"));

    let e = errs("[server]\nsecret = 12345678901234567890\n");
    assert!(
        !e[0].to_string().contains("12345678901234567890"),
        "{}",
        e[0]
    );

    let e = errs("[server]\n");
    assert_eq!(e[0].key, "server.secret");
    assert_eq!(e[0].line, Some(1));
    assert!(e[0].message.contains("required"));

    let e = errs("");
    assert_eq!(e[0].key, "server.secret");
    assert_eq!(e[0].line, None);
    assert_eq!(
        e[0].to_string(),
        format!("providers.toml: server.secret: {}", e[0].message)
    );
}

#[test]
fn unreadable_file() {
    let e = load(Path::new("/nonexistent/latch/providers.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/latch/providers.toml: cannot read"));
}

#[test]
fn several_type_errors_in_one_section() {
    let e = errs(
        &with("listen = 1\nbase_path = 2\nsecret = true\n")
            .replace("secret = \"${LATCH_SECRET}\"\n", ""),
    );
    let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
    // no follow-on "secret is required" after its type error
    assert_eq!(
        keys,
        ["server.listen", "server.base_path", "server.secret"],
        "{e:?}"
    );
}

#[test]
fn token_rotation_keys() {
    let c = ok(&with(""));
    assert_eq!(c.tokens.key_rotation, Duration::from_secs(30 * 86_400));
    assert_eq!(c.tokens.refresh_grace, Duration::from_secs(10));
    let c = ok(&with(
        "[tokens]\nkey_rotation = \"12h\"\nrefresh_grace = \"2s\"\n",
    ));
    assert_eq!(c.tokens.key_rotation, Duration::from_secs(12 * 3600));
    assert_eq!(c.tokens.refresh_grace, Duration::from_secs(2));
    let e = errs(&with(
        "[tokens]\nkey_rotation = \"0s\"\nrefresh_grace = \"soon\"\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].key, "tokens.key_rotation");
    assert_eq!(e[0].line, Some(4));
    assert!(e[0].message.contains("greater than zero"), "{}", e[0]);
    assert_eq!(e[1].key, "tokens.refresh_grace");
    assert_eq!(e[1].line, Some(5));
}

#[test]
fn previous_secrets_are_checked_redacted_and_form_the_keyring() {
    let c = ok(&with(""));
    assert!(c.server.previous_secrets.is_empty());
    assert_eq!(c.server.keyring(), vec![SECRET.as_bytes()]);

    let old = "an-old-secret-that-is-long-enough-0123456789";
    let c = ok(&with(&format!(
        "previous_secrets = [\"{old}\", \"${{CORP_SECRET}}-padded-to-32-bytes\"]\n"
    )));
    let ring = c.server.keyring();
    assert_eq!(ring.len(), 3);
    assert_eq!(ring[0], SECRET.as_bytes(), "the current secret comes first");
    assert_eq!(ring[1], old.as_bytes());
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(old) && !dbg.contains("corp-client-secret-value"));

    let e = errs(&with(
        "previous_secrets = [\"an-old-secret-that-is-long-enough-0123456789\", \"short-old-secret\"]\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "server.previous_secrets[1]");
    assert_eq!(e[0].line, Some(3));
    assert!(e[0].message.contains("32 bytes"));
    assert!(!e[0].to_string().contains("short-old-secret"));

    let e = errs(&with("previous_secrets = [\"${MISSING_OLD}\"]\n"));
    assert_eq!(e[0].key, "server.previous_secrets[0]");
    assert!(e[0].message.contains("MISSING_OLD"), "{}", e[0]);

    let e = errs(&with(
        "previous_secrets = \"one-string-not-a-list-0123456789abcdef\"\n",
    ));
    assert_eq!(e[0].key, "server.previous_secrets");
    assert!(
        !e[0].to_string().contains("one-string-not-a-list"),
        "{}",
        e[0]
    );
}

#[test]
fn expose_tokens_applies_to_every_provider_kind() {
    let c = ok(&with(
        "[providers.dev]\npreset = \"dev\"\nexpose_tokens = true\n\
         [providers.corp]\ntype = \"oidc\"\nissuer = \"https://sso\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         [providers.gh]\npreset = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\nexpose_tokens = true\n",
    ));
    let exposed: Vec<_> = c.providers.iter().map(|p| p.expose_tokens).collect();
    assert_eq!(exposed, [true, false, true]);

    let e = errs(&with(
        "[providers.dev]\npreset = \"dev\"\nexpose_tokens = \"yes\"\n",
    ));
    assert_eq!(e[0].key, "providers.dev.expose_tokens");
    assert_eq!(e[0].line, Some(5));
    let e = errs(&with(
        "[providers.dev]\npreset = \"dev\"\nexpose_token = true\n",
    ));
    assert!(e[0].message.contains("expose_token"), "{}", e[0]);
}

#[test]
fn previous_secrets_of_the_wrong_type_are_not_echoed() {
    for bad in [
        "[\"ok-secret-long-enough-0123456789abcdef\", 123456789012345]",
        "{ a = \"table-secret-0123456789abcdefghij\" }",
    ] {
        let e = errs(&with(&format!("previous_secrets = {bad}\n")));
        let shown = e[0].to_string();
        assert!(e[0].key.starts_with("server.previous_secrets"), "{shown}");
        assert!(
            !shown.contains("123456789012345") && !shown.contains("table-secret"),
            "{shown}"
        );
    }
}

#[test]
fn limits_defaults_and_values() {
    let c = ok(&with(""));
    assert_eq!(c.limits, LimitsConfig::default());
    assert_eq!(c.limits.signin, Some(Rate::per_minute(30)));
    assert_eq!(c.limits.token, Some(Rate::per_minute(60)));
    assert!(c.server.trusted_proxies.is_empty());
    let c = ok(&with(
        "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[limits]\nsignin = \"5/s\"\ncallback = \"off\"\ntoken = \"100/h\"\nrefresh = \"10/15m\"\n",
    ));
    assert_eq!(
        c.limits.signin,
        Some(Rate {
            count: 5,
            per: Duration::from_secs(1)
        })
    );
    assert_eq!(c.limits.callback, None);
    assert_eq!(c.limits.token.unwrap().per, Duration::from_secs(3600));
    assert_eq!(c.limits.refresh.unwrap().per, Duration::from_secs(900));
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert!(c.server.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
    assert!(c.server.trusted_proxies[0].contains("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!c.server.trusted_proxies[0].contains("11.0.0.1".parse().unwrap()));
    assert!(c.server.trusted_proxies[1].contains("::1".parse().unwrap()));
    assert!(!c.server.trusted_proxies[1].contains("127.0.0.1".parse().unwrap()));
}

#[test]
fn limits_errors_have_lines_and_keys() {
    let e = errs(&with(
        "trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.0/33\",\n  \"proxy.local\",\n]\n[limits]\nsignin = \"0/min\"\ntoken = \"fast\"\nrefresh = \"3/fortnight\"\nburst = 3\n",
    ));
    let keys: Vec<_> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        keys,
        vec![
            (Some(5), "server.trusted_proxies[1]"),
            (Some(6), "server.trusted_proxies[2]"),
            (Some(9), "limits.signin"),
            (Some(10), "limits.token"),
            (Some(11), "limits.refresh"),
            (Some(12), "limits.burst"),
        ],
        "{e:?}"
    );
    assert!(e[0].message.contains("0 to 32"), "{}", e[0].message);
    assert!(e[2].message.contains("\"off\""), "{}", e[2].message);
}

#[test]
fn ip_networks() {
    assert!(IpNet::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    assert!(IpNet::parse("fd00::/8")
        .unwrap()
        .contains("fd12::1".parse().unwrap()));
    assert!(IpNet::parse("fd00::/129").is_err());
    assert!(IpNet::parse("").is_err());
}

#[test]
fn connection_limits_defaults_and_values() {
    let c = ok(&with(""));
    assert_eq!(c.server.connections, ConnectionLimits::default());
    assert_eq!(
        c.server.connections.header_read_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(c.server.connections.max_connections_per_ip, 256);
    assert_eq!(c.server.metrics_listen, None);
    let c = ok(&with(
        "header_read_timeout = \"2s\"\nrequest_timeout = \"90s\"\nkeep_alive_timeout = \"5m\"\nmax_connections = 50\nmax_connections_per_ip = 5\nmetrics_listen = \"127.0.0.1:9090\"\n",
    ));
    assert_eq!(
        c.server.connections,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(90),
            keep_alive_timeout: Duration::from_secs(300),
            max_connections: 50,
            max_connections_per_ip: 5,
        }
    );
    assert_eq!(
        c.server.metrics_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(
        ok(&with("metrics_listen = \"\"\n")).server.metrics_listen,
        None
    );
}

#[test]
fn connection_limit_errors_have_lines_and_keys() {
    let e = errs(&with(
        "header_read_timeout = \"0s\"\nkeep_alive_timeout = 60\nmax_connections = 0\nmax_connections_per_ip = \"9\"\nmetrics_listen = \"localhost:9090\"\n",
    ));
    let keys: Vec<_> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        keys,
        vec![
            (Some(3), "server.header_read_timeout"),
            (Some(4), "server.keep_alive_timeout"),
            (Some(5), "server.max_connections"),
            (Some(6), "server.max_connections_per_ip"),
            (Some(7), "server.metrics_listen"),
        ],
        "{e:?}"
    );
    assert!(
        e[0].message.contains("greater than zero"),
        "{}",
        e[0].message
    );
    assert!(e[2].message.contains("1 to 1000000"), "{}", e[2].message);
    let e = errs(&with(
        "listen = \"127.0.0.1:3000\"\nmax_connections = 10\nmax_connections_per_ip = 11\nmetrics_listen = \"127.0.0.1:3000\"\n",
    ));
    let keys: Vec<_> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        keys,
        vec![
            (Some(5), "server.max_connections_per_ip"),
            (Some(6), "server.metrics_listen"),
        ],
        "{e:?}"
    );
    assert!(e[0].message.contains("(10)"), "{}", e[0].message);
}

/// `federated_signout` is for OpenID providers only: the end-session endpoint comes from
/// discovery. On the dev provider or an OAuth 2.0 one it is an error naming the key.
#[test]
fn federated_signout_applies_to_openid_providers_only() {
    let c = ok(&with(
        "[providers.corp]\ntype = \"oidc\"\nissuer = \"https://sso\"\nclient_id = \"c\"\nclient_secret = \"s\"\nfederated_signout = true\n\
         [providers.google]\npreset = \"google\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
    ));
    let federated: Vec<_> = c.providers.iter().map(|p| p.federated_signout).collect();
    assert_eq!(federated, [true, false]);
    for table in [
        "[providers.dev]\npreset = \"dev\"\nfederated_signout = true\n",
        "[providers.gh]\npreset = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\nfederated_signout = true\n",
    ] {
        let e = errs(&with(table));
        assert!(e[0].key.ends_with(".federated_signout"), "{e:?}");
        assert!(e[0].message.contains("OpenID Connect"), "{e:?}");
    }
}

/// `[[policies]]`: loaded in order, lowercased; every mistake with its line and key (an
/// unknown key, a host with a scheme, a relative path, an unknown provider, no hosts).
#[test]
fn policies_load_in_order_and_every_mistake_names_its_key() {
    let c = ok(&with(
        "[providers.dev]\npreset = \"dev\"\n\
         [[policies]]\nhosts = [\"Admin.Example.com\"]\nallowed_groups = [\"admins\"]\n\
         [[policies]]\nhosts = [\"*.example.com\"]\npaths = [\"/reports\", \"/api/*/private\"]\nallowed_emails = [\"Ann@Example.com\"]\nallowed_email_domains = [\"@Example.com\"]\nallowed_providers = [\"dev\"]\n",
    ));
    assert_eq!(c.policies.len(), 2);
    assert_eq!(c.policies[0].hosts, ["admin.example.com"]);
    assert_eq!(c.policies[1].allowed_emails, ["ann@example.com"]);
    assert_eq!(c.policies[1].allowed_email_domains, ["example.com"]);
    assert_eq!(c.policies[1].index, 1);

    let e = errs(&with(
        "[providers.dev]\npreset = \"dev\"\n\
         [[policies]]\nhosts = [\"https://app.test\"]\nallowed_group = [\"x\"]\n\
         [[policies]]\nhosts = [\"app.test\"]\npaths = [\"reports\"]\nallowed_providers = [\"github\"]\n\
         [[policies]]\nallowed_groups = [\"a,b\"]\n",
    ));
    let keys: Vec<(&str, Option<usize>)> = e.iter().map(|e| (e.key.as_str(), e.line)).collect();
    for (key, line) in [
        ("policies[0].allowed_group", Some(7)),
        ("policies[1].paths[0]", Some(10)),
        ("policies[1].allowed_providers[0]", Some(11)),
        ("policies[2].hosts", Some(12)),
        ("policies[2].allowed_groups[0]", Some(13)),
    ] {
        assert!(
            keys.contains(&(key, line)),
            "{key} at {line:?} missing from {e:?}"
        );
    }
    // The host with a scheme (reported with the key, after the unknown key is dropped).
    assert!(
        e.iter()
            .any(|e| e.key == "policies[0].hosts[0]" && e.message.contains("host name")),
        "{e:?}"
    );
    let e = errs(&with("[policies]\nhosts = [\"a\"]\n"));
    assert!(e[0].message.contains("[[policies]]"), "{e:?}");
    // Patterns that could never match a normalised path, an empty list that would allow
    // everyone, a wildcard domain; a catch-all host is fine.
    let e = errs(&with(
        "[[policies]]\nhosts = [\"*\"]\npaths = [\"/a?b\", \"/a/../b\", \"/%61\", \"//x\"]\nallowed_groups = []\nallowed_email_domains = [\"*.example.com\"]\n",
    ));
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    for key in [
        "policies[0].paths[0]",
        "policies[0].paths[1]",
        "policies[0].paths[2]",
        "policies[0].paths[3]",
        "policies[0].allowed_groups",
        "policies[0].allowed_email_domains[0]",
    ] {
        assert!(keys.contains(&key), "{key} missing from {e:?}");
    }
    assert!(!keys.iter().any(|k| k.contains("hosts")), "{e:?}");
}

#[test]
fn audit_file_is_stderr_a_path_beside_the_config_or_absent() {
    assert_eq!(ok(&with("")).audit, None);
    assert_eq!(
        ok(&with("\n[audit]\nfile = \"stderr\"\n")).audit,
        Some(AuditTarget::Stderr)
    );
    let c = ok(&with("\n[audit]\nfile = \"/var/log/latch/audit.log\"\n"));
    assert_eq!(
        c.audit,
        Some(AuditTarget::File("/var/log/latch/audit.log".into()))
    );
    let relative = ok(&with("\n[audit]\nfile = \"audit.log\"\n"));
    match relative.audit {
        Some(AuditTarget::File(p)) => {
            assert!(p.is_absolute() && p.ends_with("audit.log"), "{p:?}")
        }
        other => panic!("{other:?}"),
    }
    // `[audit]` without `file`: no audit log either.
    assert_eq!(ok(&with("\n[audit]\n")).audit, None);
}

#[test]
fn audit_mistakes_name_file_line_and_key() {
    let e = errs(&with("\n[audit]\nfile = \"\"\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].key.as_str(), e[0].line), ("audit.file", Some(5)));
    assert!(e[0].message.contains("stderr"), "{}", e[0]);
    let e = errs(&with("\n[audit]\nfile = 3\n"));
    assert_eq!(
        (e[0].key.as_str(), e[0].line),
        ("audit.file", Some(5)),
        "{e:?}"
    );
    let e = errs(&with("\n[audit]\npath = \"a.log\"\n"));
    assert_eq!(
        (e[0].key.as_str(), e[0].line),
        ("audit.path", Some(5)),
        "{e:?}"
    );
    assert!(e[0].message.contains("`file`"), "{}", e[0]);
    let e = errs(&with("\n[audit]\nfile = \"/\"\n"));
    assert!(e[0].message.contains("is a directory"), "{}", e[0]);
    let e = errs(&with("\naudit = \"x\"\n"));
    assert!(e.iter().any(|e| e.key.contains("audit")), "{e:?}");
}
