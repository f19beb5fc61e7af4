//! Presets, `type = "oauth2"` and the per-provider keys.

use std::path::Path;

use base64::Engine as _;

use super::*;
use crate::provider::presets::{apple, github};

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn env(name: &str) -> Option<String> {
    match name {
        "LATCH_SECRET" => Some(SECRET.to_string()),
        "GH_SECRET" => Some("github-client-secret".to_string()),
        _ => None,
    }
}

fn load_at(file: &Path, providers: &str) -> Result<Config, ConfigErrors> {
    let text = format!("[server]\nsecret = \"${{LATCH_SECRET}}\"\n{providers}");
    load_str(file, &text, &env)
}

/// The single provider of a valid file whose providers are `providers`
/// (line 3 onwards).
fn one(providers: &str) -> ProviderConfig {
    match load_at(Path::new("providers.toml"), providers) {
        Ok(mut c) => {
            assert_eq!(c.providers.len(), 1);
            c.providers.remove(0)
        }
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errs(providers: &str) -> Vec<ConfigError> {
    match load_at(Path::new("providers.toml"), providers) {
        Ok(_) => panic!("expected errors for:\n{providers}"),
        Err(e) => e.0,
    }
}

fn keys(e: &[ConfigError]) -> Vec<&str> {
    e.iter().map(|e| e.key.as_str()).collect()
}

fn preset(id: &str, extra: &str) -> String {
    format!(
        "[providers.p]\npreset = \"{id}\"\nclient_id = \"cid\"\nclient_secret = \"cs\"\n{extra}"
    )
}

fn oidc(p: &ProviderConfig) -> (&url::Url, IssuerRule) {
    match &p.kind {
        ProviderKind::Oidc {
            issuer,
            issuer_rule,
        } => (issuer, *issuer_rule),
        other => panic!("expected oidc, got {other:?}"),
    }
}

struct OAuth2<'a> {
    authorization_url: &'a str,
    token_url: &'a str,
    userinfo_url: &'a str,
    emails_url: Option<&'a str>,
    api_url: Option<&'a str>,
    profile: &'a ProfileMapping,
    issuer: Option<&'a str>,
}

fn oauth2(p: &ProviderConfig) -> OAuth2<'_> {
    let github = p.own.get::<github::Settings>();
    match &p.kind {
        ProviderKind::OAuth2(o) => OAuth2 {
            authorization_url: o.authorization_url.as_str(),
            token_url: o.token_url.as_str(),
            userinfo_url: o.userinfo_url.as_str(),
            emails_url: github.map(|g| g.emails_url.as_str()),
            api_url: github.map(|g| g.api_url.as_str()),
            profile: &o.profile,
            issuer: o.issuer.as_deref(),
        },
        other => panic!("expected oauth2, got {other:?}"),
    }
}

fn mapping(
    id: &str,
    email: Option<&str>,
    email_verified: Option<&str>,
    name: Option<&str>,
    image: Option<&str>,
) -> ProfileMapping {
    ProfileMapping {
        id: id.to_string(),
        email: email.map(str::to_string),
        email_verified: email_verified.map(str::to_string),
        name: name.map(str::to_string),
        image: image.map(str::to_string),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn oidc_preset_defaults() {
    let oidc_scopes = strings(&["openid", "email", "profile"]);
    for (id, label, issuer, scopes, auth) in [
        (
            "google",
            "Google",
            "https://accounts.google.com/",
            oidc_scopes.clone(),
            TokenAuth::ClientSecretBasic,
        ),
        (
            "gitlab",
            "GitLab",
            "https://gitlab.com/",
            oidc_scopes.clone(),
            TokenAuth::ClientSecretBasic,
        ),
        (
            "microsoft-entra-id",
            "Microsoft",
            "https://login.microsoftonline.com/common/v2.0",
            oidc_scopes.clone(),
            TokenAuth::ClientSecretBasic,
        ),
        (
            "slack",
            "Slack",
            "https://slack.com/",
            oidc_scopes.clone(),
            TokenAuth::ClientSecretBasic,
        ),
        (
            "linkedin",
            "LinkedIn",
            "https://www.linkedin.com/oauth",
            oidc_scopes.clone(),
            TokenAuth::ClientSecretPost,
        ),
        (
            "twitch",
            "Twitch",
            "https://id.twitch.tv/oauth2",
            strings(&["openid", "user:read:email"]),
            TokenAuth::ClientSecretPost,
        ),
    ] {
        let p = one(&preset(id, ""));
        assert_eq!(p.id, "p");
        assert_eq!(p.name, label, "{id}");
        assert_eq!(p.preset.as_deref(), Some(id));
        assert_eq!(oidc(&p).0.as_str(), issuer, "{id}");
        let rule = if id == "microsoft-entra-id" {
            IssuerRule::EntraTenantFromTid
        } else {
            IssuerRule::Exact
        };
        assert_eq!(oidc(&p).1, rule, "{id}");
        assert_eq!(p.scopes, scopes, "{id}");
        assert_eq!(p.token_auth, auth, "{id}");
        assert_eq!(p.response_mode, ResponseMode::Query, "{id}");
        assert_eq!(p.logo.as_deref(), Some(id));
        assert_eq!(p.client_id, "cid");
        assert_eq!(p.client_secret.as_ref().unwrap().expose(), b"cs");
        assert_eq!(p.access, AccessRules::default());
        assert!(apple::key(&p).is_none());
        assert!(!p.link_by_email);
        if id == "twitch" {
            assert_eq!(p.authorization_params.len(), 1);
            let (k, v) = &p.authorization_params[0];
            assert_eq!(k, "claims");
            let claims: serde_json::Value = serde_json::from_str(v).unwrap();
            for part in ["id_token", "userinfo"] {
                for claim in ["email", "email_verified", "preferred_username", "picture"] {
                    assert!(claims[part][claim].is_null());
                    assert!(claims[part].as_object().unwrap().contains_key(claim));
                }
            }
        } else {
            assert!(p.authorization_params.is_empty(), "{id}");
        }
    }
}

#[test]
fn issuer_required_presets() {
    for (id, label, example) in [
        ("okta", "Okta", "https://dev-123.okta.com"),
        ("auth0", "Auth0", "https://example.us.auth0.com"),
        (
            "keycloak",
            "Keycloak",
            "https://sso.example.com/realms/main",
        ),
    ] {
        let e = errs(&preset(id, ""));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, Some(3));
        assert!(e[0].message.contains("`issuer` is required"), "{}", e[0]);
        assert!(e[0].message.contains(example), "{}", e[0]);

        let p = one(&preset(id, &format!("issuer = \"{example}\"\n")));
        assert_eq!(p.name, label);
        assert_eq!(oidc(&p).0.as_str().trim_end_matches('/'), example);
        assert_eq!(oidc(&p).1, IssuerRule::Exact);
        assert_eq!(p.scopes, strings(&["openid", "email", "profile"]));
        assert_eq!(p.logo.as_deref(), Some(id));
    }
}

#[test]
fn github_defaults() {
    let p = one(&preset("github", ""));
    assert_eq!(p.name, "GitHub");
    assert_eq!(p.preset.as_deref(), Some("github"));
    let o = oauth2(&p);
    assert_eq!(
        o.authorization_url,
        "https://github.com/login/oauth/authorize"
    );
    assert_eq!(o.token_url, "https://github.com/login/oauth/access_token");
    assert_eq!(o.userinfo_url, "https://api.github.com/user");
    assert_eq!(o.emails_url, Some("https://api.github.com/user/emails"));
    assert_eq!(o.api_url, Some("https://api.github.com/"));
    assert_eq!(o.issuer, Some("https://github.com/login/oauth"));
    assert_eq!(
        *o.profile,
        mapping("id", None, None, Some("name"), Some("avatar_url"))
    );
    assert_eq!(p.scopes, strings(&["read:user", "user:email"]));
    assert_eq!(p.token_auth, TokenAuth::ClientSecretBasic);
    assert_eq!(p.response_mode, ResponseMode::Query);
    assert_eq!(p.logo.as_deref(), Some("github"));
}

#[test]
fn discord_and_facebook_defaults() {
    let p = one(&preset("discord", ""));
    assert_eq!(p.name, "Discord");
    let o = oauth2(&p);
    assert_eq!(o.authorization_url, "https://discord.com/oauth2/authorize");
    assert_eq!(o.token_url, "https://discord.com/api/oauth2/token");
    assert_eq!(o.userinfo_url, "https://discord.com/api/users/@me");
    assert_eq!(o.emails_url, None);
    assert_eq!(o.api_url, None);
    assert_eq!(o.issuer, None);
    assert_eq!(
        *o.profile,
        mapping(
            "id",
            Some("email"),
            Some("verified"),
            Some("global_name"),
            None
        )
    );
    assert_eq!(p.scopes, strings(&["identify", "email"]));
    assert_eq!(p.token_auth, TokenAuth::ClientSecretBasic);

    let p = one(&preset("facebook", ""));
    assert_eq!(p.name, "Facebook");
    let o = oauth2(&p);
    assert_eq!(
        o.authorization_url,
        "https://www.facebook.com/v21.0/dialog/oauth"
    );
    assert_eq!(
        o.token_url,
        "https://graph.facebook.com/v21.0/oauth/access_token"
    );
    assert_eq!(
        o.userinfo_url,
        "https://graph.facebook.com/me?fields=id,name,email,picture"
    );
    assert_eq!(
        *o.profile,
        mapping(
            "id",
            Some("email"),
            None,
            Some("name"),
            Some("picture.data.url")
        )
    );
    assert_eq!(p.scopes, strings(&["email", "public_profile"]));
    assert_eq!(p.token_auth, TokenAuth::ClientSecretPost);
    assert_eq!(p.logo.as_deref(), Some("facebook"));
}

#[test]
fn dev_preset_defaults() {
    let p = one("[providers.dev]\npreset = \"dev\"\n");
    assert!(matches!(p.kind, ProviderKind::Dev));
    assert_eq!(p.preset.as_deref(), Some("dev"));
    assert_eq!(p.client_id, "latch-dev");
    assert!(p.client_secret.is_none());
    assert_eq!(p.logo, None);
    assert_eq!(p.token_auth, TokenAuth::ClientSecretBasic);

    let e = errs(
        "[providers.dev]\npreset = \"dev\"\nclient_secret = \"x\"\nresponse_mode = \"form_post\"\n",
    );
    assert_eq!(
        keys(&e),
        ["providers.dev.client_secret", "providers.dev.response_mode"]
    );
}

#[test]
fn overrides_beside_a_preset() {
    let p = one(&preset(
        "google",
        "name = \"Google Workspace\"\nissuer = \"http://127.0.0.1:4444\"\nscopes = [\"openid\", \"email\"]\ntoken_endpoint_auth_method = \"client_secret_post\"\nresponse_mode = \"form_post\"\nlink_by_email = true\ntimeout = \"3s\"\nlogo = \"\"\n",
    ));
    assert_eq!(p.name, "Google Workspace");
    assert_eq!(oidc(&p).0.as_str(), "http://127.0.0.1:4444/");
    assert_eq!(p.scopes, strings(&["openid", "email"]));
    assert_eq!(p.token_auth, TokenAuth::ClientSecretPost);
    assert_eq!(p.response_mode, ResponseMode::FormPost);
    assert!(p.link_by_email);
    assert_eq!(p.timeout, std::time::Duration::from_secs(3));
    assert_eq!(p.logo, None);

    // OAuth 2.0 presets: endpoints, issuer and single profile fields.
    let p = one(&preset(
        "discord",
        "authorization_url = \"http://127.0.0.1:5555/authorize\"\ntoken_url = \"http://localhost:5555/token\"\nuserinfo_url = \"http://[::1]:5555/me\"\nissuer = \"http://127.0.0.1:5555\"\nscopes = [\"identify\"]\n[providers.p.profile]\nimage = \"avatar_url\"\nemail_verified = \"\"\n",
    ));
    let o = oauth2(&p);
    assert_eq!(o.authorization_url, "http://127.0.0.1:5555/authorize");
    assert_eq!(o.token_url, "http://localhost:5555/token");
    assert_eq!(o.userinfo_url, "http://[::1]:5555/me");
    assert_eq!(o.issuer, Some("http://127.0.0.1:5555"));
    assert_eq!(
        *o.profile,
        mapping(
            "id",
            Some("email"),
            None,
            Some("global_name"),
            Some("avatar_url")
        )
    );
    assert_eq!(p.scopes, strings(&["identify"]));

    let p = one(&preset(
        "github",
        "issuer = \"http://127.0.0.1:7777/login/oauth\"\ntoken_url = \"http://127.0.0.1:7777/token\"\n",
    ));
    let o = oauth2(&p);
    assert_eq!(o.issuer, Some("http://127.0.0.1:7777/login/oauth"));
    assert_eq!(o.token_url, "http://127.0.0.1:7777/token");
    assert_eq!(
        o.authorization_url,
        "https://github.com/login/oauth/authorize"
    );

    // http is only for loopback hosts
    let e = errs(&preset(
        "discord",
        "token_url = \"http://discord.example/token\"\n",
    ));
    assert_eq!(keys(&e), ["providers.p.token_url"]);
    assert!(e[0].message.contains("https"), "{}", e[0]);
    assert_eq!(e[0].line, Some(7));
}

#[test]
fn github_enterprise_server() {
    let p = one(&preset(
        "github",
        "base_url = \"https://github.corp.example/\"\n",
    ));
    let o = oauth2(&p);
    assert_eq!(
        o.authorization_url,
        "https://github.corp.example/login/oauth/authorize"
    );
    assert_eq!(
        o.token_url,
        "https://github.corp.example/login/oauth/access_token"
    );
    assert_eq!(o.userinfo_url, "https://github.corp.example/api/v3/user");
    assert_eq!(
        o.emails_url,
        Some("https://github.corp.example/api/v3/user/emails")
    );
    assert_eq!(o.api_url, Some("https://github.corp.example/api/v3"));
    assert_eq!(o.issuer, Some("https://github.corp.example/login/oauth"));

    // A fake on loopback, with its own API root.
    let p = one(&preset(
        "github",
        "base_url = \"http://127.0.0.1:9100\"\napi_url = \"http://127.0.0.1:9101/api/\"\n",
    ));
    let o = oauth2(&p);
    assert_eq!(
        o.authorization_url,
        "http://127.0.0.1:9100/login/oauth/authorize"
    );
    assert_eq!(o.userinfo_url, "http://127.0.0.1:9101/api/user");
    assert_eq!(o.emails_url, Some("http://127.0.0.1:9101/api/user/emails"));
    assert_eq!(o.api_url, Some("http://127.0.0.1:9101/api"));
    assert_eq!(o.issuer, Some("http://127.0.0.1:9100/login/oauth"));

    let e = errs(&preset(
        "github",
        "base_url = \"http://github.corp.example\"\n",
    ));
    assert_eq!(keys(&e), ["providers.p.base_url"]);
    let e = errs(&preset("google", "base_url = \"https://x.example\"\n"));
    assert_eq!(keys(&e), ["providers.p.base_url"]);
    assert!(
        e[0].message.contains("only to preset \"github\""),
        "{}",
        e[0]
    );
}

#[test]
fn github_allowed_orgs_adds_read_org() {
    let p = one(&preset(
        "github",
        "allowed_orgs = [\"my-org\", \"Other\"]\n",
    ));
    assert_eq!(p.scopes, strings(&["read:user", "user:email", "read:org"]));
    assert_eq!(p.access.allowed_orgs, strings(&["my-org", "Other"]));

    let p = one(&preset(
        "github",
        "allowed_orgs = [\"my-org\"]\nscopes = [\"read:org\", \"user:email\"]\n",
    ));
    assert_eq!(p.scopes, strings(&["read:org", "user:email"]));

    let e = errs(&preset(
        "github",
        "allowed_orgs = [\"my-org\"]\nscopes = [\"user:email\"]\n",
    ));
    assert_eq!(keys(&e), ["providers.p.scopes"]);
    assert!(e[0].message.contains("read:org"));

    let e = errs(&preset("github", "allowed_orgs = [\"-bad\", \"a b\"]\n"));
    assert_eq!(
        keys(&e),
        ["providers.p.allowed_orgs[0]", "providers.p.allowed_orgs[1]"]
    );
}

#[test]
fn allowed_orgs_only_on_github() {
    let e = errs(&preset("google", "allowed_orgs = [\"my-org\"]\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "providers.p.allowed_orgs");
    assert_eq!(e[0].line, Some(7));
    assert!(
        e[0].message.contains("only to preset \"github\""),
        "{}",
        e[0]
    );
    assert!(
        e[0].message.contains("valid keys for preset \"google\""),
        "{}",
        e[0]
    );
    assert!(!e[0].message.contains("base_url"), "{}", e[0]);

    let e = errs("[providers.c]\ntype = \"oidc\"\nissuer = \"https://sso.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\nallowed_orgs = [\"x\"]\n");
    assert_eq!(keys(&e), ["providers.c.allowed_orgs"]);
}

#[test]
fn entra_tenant_rule() {
    let entra = |extra: &str| one(&preset("microsoft-entra-id", extra));
    for multi in ["common", "organizations", "consumers"] {
        let p = entra(&format!("tenant = \"{multi}\"\n"));
        let (issuer, rule) = oidc(&p);
        assert_eq!(
            issuer.as_str(),
            format!("https://login.microsoftonline.com/{multi}/v2.0")
        );
        assert_eq!(rule, IssuerRule::EntraTenantFromTid);
    }
    for single in [
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "contoso.onmicrosoft.com",
    ] {
        let p = entra(&format!("tenant = \"{single}\"\n"));
        let (issuer, rule) = oidc(&p);
        assert_eq!(
            issuer.as_str(),
            format!("https://login.microsoftonline.com/{single}/v2.0")
        );
        assert_eq!(rule, IssuerRule::Exact);
    }
    // An issuer beside the preset overrides it (sovereign clouds, fakes).
    let p = entra("issuer = \"http://127.0.0.1:8000/organizations/v2.0\"\n");
    assert_eq!(oidc(&p).1, IssuerRule::EntraTenantFromTid);
    let p = entra("issuer = \"https://login.microsoftonline.us/abc/v2.0\"\n");
    assert_eq!(oidc(&p).1, IssuerRule::Exact);

    let e = errs(&preset(
        "microsoft-entra-id",
        "tenant = \"abc\"\nissuer = \"https://login.microsoftonline.com/abc/v2.0\"\n",
    ));
    assert_eq!(keys(&e), ["providers.p.tenant"]);
    let e = errs(&preset("microsoft-entra-id", "tenant = \"a/b\"\n"));
    assert_eq!(keys(&e), ["providers.p.tenant"]);
    assert!(e[0].message.contains("common"));
    let e = errs(&preset("google", "tenant = \"common\"\n"));
    assert_eq!(keys(&e), ["providers.p.tenant"]);
    assert!(e[0].message.contains("microsoft-entra-id"), "{}", e[0]);
}

/// A real P-256 PKCS#8 key, PEM-encoded as Apple's `.p8` downloads are.
fn p8_pem() -> String {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = key.to_pkcs8v1().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let body: Vec<_> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.join("\n")
    )
}

#[test]
fn apple() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("providers.toml");
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let pem = p8_pem();
    std::fs::write(dir.path().join("keys/AuthKey_XYZ9876543.p8"), &pem).unwrap();
    std::fs::write(
        dir.path().join("ec.pem"),
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let apple = |extra: &str| {
        load_at(
            &file,
            &format!(
                "[providers.apple]\npreset = \"apple\"\nclient_id = \"com.example.web\"\n{extra}"
            ),
        )
    };

    let c = apple("team_id = \"ABCDE12345\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"keys/AuthKey_XYZ9876543.p8\"\n").unwrap();
    let p = &c.providers[0];
    assert_eq!(p.name, "Apple");
    assert_eq!(oidc(p).0.as_str(), "https://appleid.apple.com/");
    assert_eq!(p.scopes, strings(&["openid", "name", "email"]));
    assert_eq!(p.response_mode, ResponseMode::FormPost);
    assert_eq!(p.token_auth, TokenAuth::ClientSecretPost);
    assert!(p.client_secret.is_none());
    let key = apple::key(p).unwrap();
    assert_eq!(key.team_id, "ABCDE12345");
    assert_eq!(key.key_id, "XYZ9876543");
    assert_eq!(key.private_key.expose(), pem.as_bytes());
    let dbg = format!("{p:?}");
    assert!(!dbg.contains(pem.lines().nth(1).unwrap()), "{dbg}");
    assert!(dbg.contains("Secret(redacted)"));

    // all three keys are required, and a client secret is refused
    let e = apple("client_secret = \"x\"\n").unwrap_err().0;
    assert_eq!(
        keys(&e),
        [
            "providers.apple.team_id",
            "providers.apple.key_id",
            "providers.apple.private_key_file",
            "providers.apple.client_secret",
        ],
        "{e:?}"
    );
    assert!(e[3].message.contains("latch mints"), "{}", e[3]);
    assert_eq!(e[3].line, Some(6));
    assert!(e[0].message.contains("Team ID"), "{}", e[0]);

    let e = apple(
        "team_id = \"ABCDE12345\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"missing.p8\"\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(keys(&e), ["providers.apple.private_key_file"]);
    assert!(e[0].message.contains("cannot read"), "{}", e[0]);
    assert!(e[0].message.contains("missing.p8"), "{}", e[0]);

    let e =
        apple("team_id = \"ABCDE12345\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"ec.pem\"\n")
            .unwrap_err()
            .0;
    assert_eq!(keys(&e), ["providers.apple.private_key_file"]);
    assert!(e[0].message.contains("openssl pkcs8"), "{}", e[0]);
    assert!(!e[0].message.contains("AAAA"), "{}", e[0]);

    let e = apple("team_id = \"ABC DE\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"keys/AuthKey_XYZ9876543.p8\"\n").unwrap_err().0;
    assert_eq!(keys(&e), ["providers.apple.team_id"]);

    let e = errs(&preset("google", "team_id = \"ABCDE12345\"\n"));
    assert_eq!(keys(&e), ["providers.p.team_id"]);
    assert!(e[0].message.contains("only to preset \"apple\""));
}

const OAUTH2: &str = "[providers.acme]\ntype = \"oauth2\"\nclient_id = \"c\"\nclient_secret = \"s\"\nauthorization_url = \"https://acme.example/oauth/authorize\"\ntoken_url = \"https://acme.example/oauth/token\"\nuserinfo_url = \"https://api.acme.example/v1/me?fields=all\"\n";

#[test]
fn oauth2_with_profile_mapping() {
    let p = one(&format!(
        "{OAUTH2}issuer = \"https://acme.example\"\n[providers.acme.profile]\nid = \"data.user.id\"\nemail = \"data.user.emails.primary\"\nemail_verified = \"data.user.email-verified\"\nname = \"data.user.display_name\"\nimage = \"data.user.@avatar\"\n"
    ));
    assert_eq!(p.name, "acme");
    assert_eq!(p.preset, None);
    assert_eq!(p.logo, None);
    assert!(p.scopes.is_empty());
    assert_eq!(p.token_auth, TokenAuth::ClientSecretBasic);
    let o = oauth2(&p);
    assert_eq!(o.authorization_url, "https://acme.example/oauth/authorize");
    assert_eq!(o.token_url, "https://acme.example/oauth/token");
    assert_eq!(o.userinfo_url, "https://api.acme.example/v1/me?fields=all");
    assert_eq!(o.emails_url, None);
    assert_eq!(o.api_url, None);
    assert_eq!(o.issuer, Some("https://acme.example"));
    assert_eq!(
        *o.profile,
        mapping(
            "data.user.id",
            Some("data.user.emails.primary"),
            Some("data.user.email-verified"),
            Some("data.user.display_name"),
            Some("data.user.@avatar")
        )
    );

    let p = one(&format!(
        "{OAUTH2}scopes = [\"profile:read\"]\n[providers.acme.profile]\nid = \"sub\"\n"
    ));
    assert_eq!(p.scopes, strings(&["profile:read"]));
    assert_eq!(*oauth2(&p).profile, mapping("sub", None, None, None, None));
    assert_eq!(oauth2(&p).issuer, None);
    // an OAuth 2.0 provider needs no "openid" scope, an OIDC one does
    let e = errs("[providers.c]\ntype = \"oidc\"\nissuer = \"https://sso.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\nscopes = [\"profile:read\"]\n");
    assert_eq!(keys(&e), ["providers.c.scopes"]);
}

#[test]
fn oauth2_profile_id_required() {
    let e = errs(&format!(
        "{OAUTH2}[providers.acme.profile]\nemail = \"email\"\n"
    ));
    assert_eq!(keys(&e), ["providers.acme.profile.id"], "{e:?}");
    assert_eq!(e[0].line, Some(10));
    assert!(e[0].message.contains("is required"), "{}", e[0]);

    let e = errs(OAUTH2);
    assert_eq!(keys(&e), ["providers.acme.profile"], "{e:?}");
    assert!(e[0].message.contains("[providers.<id>.profile]"));

    let e = errs(&format!("{OAUTH2}[providers.acme.profile]\nid = \"\"\n"));
    assert_eq!(keys(&e), ["providers.acme.profile.id"], "{e:?}");

    let e = errs(&format!(
        "{OAUTH2}[providers.acme.profile]\nid = \"id\"\npicture = \"x\"\n"
    ));
    assert_eq!(keys(&e), ["providers.acme.profile.picture"], "{e:?}");
    assert!(e[0].message.contains("`image`"), "{}", e[0]);
}

#[test]
fn bad_dotted_paths() {
    for bad in [".id", "id.", "a..b", "a b", "a.b[0]", "a/b", "é"] {
        let e = errs(&format!(
            "{OAUTH2}[providers.acme.profile]\nid = \"id\"\nname = \"{bad}\"\n"
        ));
        assert_eq!(keys(&e), ["providers.acme.profile.name"], "{bad}: {e:?}");
        assert_eq!(e[0].line, Some(12), "{bad}");
        assert!(e[0].message.contains("data.user.id"), "{}", e[0]);
    }
    for good in ["id", "data.user.id", "a_b-c@d.e1"] {
        assert!(endpoints::check_json_path(good).is_ok(), "{good}");
    }
    // profile only applies to OAuth 2.0
    let e = errs(&preset("google", "[providers.p.profile]\nid = \"sub\"\n"));
    assert_eq!(keys(&e), ["providers.p.profile"]);
    assert!(e[0].message.contains("type \"oauth2\""), "{}", e[0]);
    let e = errs(&preset(
        "google",
        "userinfo_url = \"https://x.example/me\"\n",
    ));
    assert_eq!(keys(&e), ["providers.p.userinfo_url"]);
}

#[test]
fn token_endpoint_auth_method_values() {
    for (v, want) in [
        ("client_secret_basic", TokenAuth::ClientSecretBasic),
        ("client_secret_post", TokenAuth::ClientSecretPost),
    ] {
        let p = one(&preset(
            "google",
            &format!("token_endpoint_auth_method = \"{v}\"\n"),
        ));
        assert_eq!(p.token_auth, want);
    }
    // a public client: no secret needed, and none allowed
    let p = one("[providers.c]\npreset = \"google\"\nclient_id = \"c\"\ntoken_endpoint_auth_method = \"none\"\n");
    assert_eq!(p.token_auth, TokenAuth::None);
    assert!(p.client_secret.is_none());
    let e = errs(&preset("google", "token_endpoint_auth_method = \"none\"\n"));
    assert_eq!(keys(&e), ["providers.p.client_secret"]);

    let e = errs(&preset(
        "google",
        "token_endpoint_auth_method = \"private_key_jwt\"\n",
    ));
    assert_eq!(keys(&e), ["providers.p.token_endpoint_auth_method"]);
    assert!(e[0].message.contains("client_secret_post"), "{}", e[0]);
    assert_eq!(e[0].line, Some(7));

    // without it, a secret is required
    let e = errs("[providers.c]\npreset = \"google\"\nclient_id = \"c\"\n");
    assert_eq!(keys(&e), ["providers.c.client_secret"]);
    assert!(e[0].message.contains("\"none\""), "{}", e[0]);

    let e = errs(&preset("google", "response_mode = \"fragment\"\n"));
    assert_eq!(keys(&e), ["providers.p.response_mode"]);
    assert!(e[0].message.contains("form_post"));
}

#[test]
fn authorization_params() {
    let p = one(&preset(
        "google",
        "authorization_params = { prompt = \"select_account\", hd = \"example.com\" }\n",
    ));
    assert_eq!(
        p.authorization_params,
        vec![
            ("hd".to_string(), "example.com".to_string()),
            ("prompt".to_string(), "select_account".to_string()),
        ]
    );

    // beside a preset's defaults: added, and same names override
    let p = one(&preset(
        "twitch",
        "[providers.p.authorization_params]\nforce_verify = \"true\"\nclaims = \"{}\"\n",
    ));
    assert_eq!(
        p.authorization_params,
        vec![
            ("claims".to_string(), "{}".to_string()),
            ("force_verify".to_string(), "true".to_string()),
        ]
    );

    let e = errs(&preset(
        "google",
        "authorization_params = { state = \"x\", scope = \"y\", ok = \"z\" }\n",
    ));
    assert_eq!(
        keys(&e),
        [
            "providers.p.authorization_params.scope",
            "providers.p.authorization_params.state"
        ]
    );
    assert!(e[0].message.contains("`scopes`"), "{}", e[0]);

    let e = errs(&preset(
        "google",
        "authorization_params = { max_age = 5 }\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].key.starts_with("providers.p.authorization_params"),
        "{e:?}"
    );
}

#[test]
fn access_rules_are_normalised() {
    let p = one(&preset(
        "google",
        "allowed_email_domains = [\"@Example.COM\", \"sub.example.org\"]\nallowed_emails = [\"Alice@Example.com\", \" bob@x.io \"]\n",
    ));
    assert_eq!(
        p.access.allowed_email_domains,
        strings(&["example.com", "sub.example.org"])
    );
    assert_eq!(
        p.access.allowed_emails,
        strings(&["alice@example.com", "bob@x.io"])
    );
    assert!(p.access.allowed_orgs.is_empty());

    let e = errs(&preset(
        "google",
        "allowed_email_domains = [\"example.com\", \"exa mple.com\", \"\"]\nallowed_emails = [\"alice\", \"@example.com\", \"ok@example.com\"]\n",
    ));
    assert_eq!(
        keys(&e),
        [
            "providers.p.allowed_email_domains[1]",
            "providers.p.allowed_email_domains[2]",
            "providers.p.allowed_emails[0]",
            "providers.p.allowed_emails[1]",
        ],
        "{e:?}"
    );
    // the dev provider takes them too, to try them out
    let p = one("[providers.dev]\npreset = \"dev\"\nallowed_email_domains = [\"example.com\"]\n");
    assert_eq!(p.access.allowed_email_domains, strings(&["example.com"]));
}

#[test]
fn logos() {
    let p = one("[providers.corp]\ntype = \"oidc\"\nissuer = \"https://sso.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\nlogo = \"keycloak\"\n");
    assert_eq!(p.logo.as_deref(), Some("keycloak"));
    let e = errs(&preset("google", "logo = \"myspace\"\n"));
    assert_eq!(keys(&e), ["providers.p.logo"]);
    assert!(e[0].message.contains("github"), "{}", e[0]);
    let e = errs(&preset("google", "logo = \"dev\"\n"));
    assert_eq!(keys(&e), ["providers.p.logo"]);
}

#[test]
fn every_mistake_in_a_provider_is_reported() {
    let e = errs("[providers.p]\npreset = \"github\"\nclient_secret = \"${GH_SECRET}\"\ntenant = \"x\"\nbase_url = \"ftp://x\"\nallowed_emails = [\"nope\"]\nresponse_mode = \"x\"\n");
    assert_eq!(
        keys(&e),
        [
            "providers.p.client_id",
            "providers.p.tenant",
            "providers.p.base_url",
            "providers.p.allowed_emails[0]",
            "providers.p.response_mode",
        ],
        "{e:?}"
    );
    for err in &e {
        assert!(err.line.is_some(), "{err}");
    }
}

#[test]
fn preset_list() {
    let list = presets();
    let ids: Vec<_> = list.iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [
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
            "dev"
        ]
    );
    let get = |id: &str| list.iter().find(|p| p.id == id).unwrap().clone();

    let g = get("google");
    assert_eq!(g.label, "Google");
    assert_eq!(g.kind, "oidc");
    assert_eq!(g.required_keys, ["client_id", "client_secret"]);
    assert!(g.optional_keys.contains(&"issuer"));
    assert!(!g.optional_keys.contains(&"allowed_orgs"));
    assert!(!g.optional_keys.contains(&"profile"));

    let gh = get("github");
    assert_eq!(gh.kind, "oauth2");
    for k in ["base_url", "api_url", "allowed_orgs", "profile", "issuer"] {
        assert!(gh.optional_keys.contains(&k), "{k}");
    }

    let a = get("apple");
    assert_eq!(
        a.required_keys,
        ["client_id", "team_id", "key_id", "private_key_file"]
    );
    assert!(!a.optional_keys.contains(&"client_secret"));

    assert!(get("okta").required_keys.contains(&"issuer"));
    assert!(get("microsoft-entra-id").optional_keys.contains(&"tenant"));

    let d = get("dev");
    assert_eq!(d.kind, "dev");
    assert!(d.required_keys.is_empty());
    assert!(!d.optional_keys.contains(&"issuer"));
    assert!(!d.optional_keys.contains(&"client_secret"));
}

#[test]
fn commented_examples_in_the_sample_file_load() {
    // Uncomment `# [providers...]` and `# [audit]` headers and `# key = value` lines.
    let text: String = include_str!("../../providers.toml")
        .lines()
        .map(|l| {
            let body = l.strip_prefix("# ").unwrap_or("");
            let key = body.split(" = ").next().unwrap_or("");
            let is_key = body.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if body.starts_with("[providers.") || body.starts_with("[audit]") || is_key {
                body
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = load_str(Path::new("providers.toml"), &text, &|name| {
        // Secrets must be long enough to pass validation.
        (name != "LATCH_LISTEN").then(|| {
            if name.contains("SECRET") {
                "s".repeat(48)
            } else {
                "value".to_string()
            }
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ids: Vec<_> = c.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["dev", "google", "github", "acme", "corp"]);
    assert_eq!(
        c.audit,
        Some(crate::config::AuditTarget::File(
            "/var/log/latch/audit.log".into()
        ))
    );
}
