//! `[providers.<id>]` tables: presets, types and their validation.

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::raw::{RawProfile, RawProvider};
use super::source::KeyPath;
use super::validate::{is_loopback, Ctx};
use super::{
    AccessRules, AppleKey, IssuerRule, ProfileMapping, ProviderConfig, ProviderKind, ResponseMode,
    Secret, TokenAuth,
};

/// A profile mapping in the preset table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StaticProfile {
    pub id: &'static str,
    pub email: Option<&'static str>,
    pub email_verified: Option<&'static str>,
    pub name: Option<&'static str>,
    pub image: Option<&'static str>,
}

/// What kind of provider a preset makes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PresetKind {
    /// The development OpenID provider mounted inside latch.
    Dev,
    /// OpenID Connect with discovery. `issuer: None`: the file must set `issuer`
    /// (`example` shows what it looks like).
    Oidc {
        issuer: Option<&'static str>,
        example: &'static str,
    },
    /// Plain OAuth 2.0 with fixed endpoints (github derives its own from `base_url`).
    OAuth2 {
        authorization_url: &'static str,
        token_url: &'static str,
        userinfo_url: &'static str,
        profile: StaticProfile,
        issuer: Option<&'static str>,
    },
}

/// A preset fills in defaults; any key set beside it in the file overrides them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: PresetKind,
    pub client_id: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub token_auth: TokenAuth,
    pub response_mode: ResponseMode,
    pub authorization_params: &'static [(&'static str, &'static str)],
    /// Whether latch has a logo for this preset (its id).
    pub logo: bool,
}

const GITHUB: &str = "github";
const APPLE: &str = "apple";
const ENTRA: &str = "microsoft-entra-id";
const DEV: &str = "dev";

const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const OIDC: Preset = Preset {
    id: "",
    label: "",
    kind: PresetKind::Oidc {
        issuer: None,
        example: "",
    },
    client_id: None,
    scopes: DEFAULT_SCOPES,
    token_auth: TokenAuth::ClientSecretBasic,
    response_mode: ResponseMode::Query,
    authorization_params: &[],
    logo: true,
};

const TWITCH_CLAIMS: &str = r#"{"id_token":{"email":null,"email_verified":null,"preferred_username":null,"picture":null},"userinfo":{"email":null,"email_verified":null,"preferred_username":null,"picture":null}}"#;

/// The preset table. Add an entry here for a new preset (and, for one with
/// keys of its own, the rules in [`key_scope`] and [`provider`]).
pub(crate) const PRESETS: &[Preset] = &[
    Preset {
        id: "google",
        label: "Google",
        kind: PresetKind::Oidc {
            issuer: Some("https://accounts.google.com"),
            example: "",
        },
        ..OIDC
    },
    Preset {
        id: GITHUB,
        label: "GitHub",
        kind: PresetKind::OAuth2 {
            authorization_url: "https://github.com/login/oauth/authorize",
            token_url: "https://github.com/login/oauth/access_token",
            userinfo_url: "https://api.github.com/user",
            profile: StaticProfile {
                id: "id",
                email: None,
                email_verified: None,
                name: Some("name"),
                image: Some("avatar_url"),
            },
            issuer: Some("https://github.com/login/oauth"),
        },
        scopes: &["read:user", "user:email"],
        ..OIDC
    },
    Preset {
        id: "gitlab",
        label: "GitLab",
        kind: PresetKind::Oidc {
            issuer: Some("https://gitlab.com"),
            example: "",
        },
        ..OIDC
    },
    Preset {
        id: ENTRA,
        label: "Microsoft",
        kind: PresetKind::Oidc {
            issuer: Some("https://login.microsoftonline.com/common/v2.0"),
            example: "",
        },
        ..OIDC
    },
    Preset {
        id: APPLE,
        label: "Apple",
        kind: PresetKind::Oidc {
            issuer: Some("https://appleid.apple.com"),
            example: "",
        },
        scopes: &["openid", "name", "email"],
        token_auth: TokenAuth::ClientSecretPost,
        response_mode: ResponseMode::FormPost,
        ..OIDC
    },
    Preset {
        id: "discord",
        label: "Discord",
        kind: PresetKind::OAuth2 {
            authorization_url: "https://discord.com/oauth2/authorize",
            token_url: "https://discord.com/api/oauth2/token",
            userinfo_url: "https://discord.com/api/users/@me",
            profile: StaticProfile {
                id: "id",
                email: Some("email"),
                email_verified: Some("verified"),
                name: Some("global_name"),
                image: None,
            },
            issuer: None,
        },
        scopes: &["identify", "email"],
        ..OIDC
    },
    Preset {
        id: "slack",
        label: "Slack",
        kind: PresetKind::Oidc {
            issuer: Some("https://slack.com"),
            example: "",
        },
        ..OIDC
    },
    Preset {
        id: "linkedin",
        label: "LinkedIn",
        kind: PresetKind::Oidc {
            issuer: Some("https://www.linkedin.com/oauth"),
            example: "",
        },
        token_auth: TokenAuth::ClientSecretPost,
        ..OIDC
    },
    Preset {
        id: "facebook",
        label: "Facebook",
        kind: PresetKind::OAuth2 {
            authorization_url: "https://www.facebook.com/v21.0/dialog/oauth",
            token_url: "https://graph.facebook.com/v21.0/oauth/access_token",
            userinfo_url: "https://graph.facebook.com/me?fields=id,name,email,picture",
            profile: StaticProfile {
                id: "id",
                email: Some("email"),
                email_verified: None,
                name: Some("name"),
                image: Some("picture.data.url"),
            },
            issuer: None,
        },
        scopes: &["email", "public_profile"],
        token_auth: TokenAuth::ClientSecretPost,
        ..OIDC
    },
    Preset {
        id: "twitch",
        label: "Twitch",
        kind: PresetKind::Oidc {
            issuer: Some("https://id.twitch.tv/oauth2"),
            example: "",
        },
        scopes: &["openid", "user:read:email"],
        token_auth: TokenAuth::ClientSecretPost,
        authorization_params: &[("claims", TWITCH_CLAIMS)],
        ..OIDC
    },
    Preset {
        id: "okta",
        label: "Okta",
        kind: PresetKind::Oidc {
            issuer: None,
            example: "https://dev-123.okta.com",
        },
        ..OIDC
    },
    Preset {
        id: "auth0",
        label: "Auth0",
        kind: PresetKind::Oidc {
            issuer: None,
            example: "https://example.us.auth0.com",
        },
        ..OIDC
    },
    Preset {
        id: "keycloak",
        label: "Keycloak",
        kind: PresetKind::Oidc {
            issuer: None,
            example: "https://sso.example.com/realms/main",
        },
        ..OIDC
    },
    Preset {
        id: DEV,
        label: "Development login",
        kind: PresetKind::Dev,
        client_id: Some("latch-dev"),
        logo: false,
        ..OIDC
    },
];

/// Valid values of `type`.
pub(crate) const TYPES: &[&str] = &["oidc", "oauth2"];

/// One preset, for `latch presets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetInfo {
    pub id: &'static str,
    pub label: &'static str,
    /// `"oidc"`, `"oauth2"` or `"dev"`.
    pub kind: &'static str,
    /// Keys the file must set beside `preset`.
    pub required_keys: Vec<&'static str>,
    /// Every other key the preset accepts.
    pub optional_keys: Vec<&'static str>,
}

/// Every preset, in the order of the table.
pub fn presets() -> Vec<PresetInfo> {
    PRESETS
        .iter()
        .map(|p| {
            let base = Base::Preset(p);
            let required = required_keys(&base);
            PresetInfo {
                id: p.id,
                label: p.label,
                kind: base.kind_name(),
                optional_keys: valid_keys(&base)
                    .into_iter()
                    .filter(|k| !required.contains(k))
                    .collect(),
                required_keys: required,
            }
        })
        .collect()
}

fn preset_names() -> String {
    PRESETS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
}

fn type_names() -> String {
    TYPES.to_vec().join(", ")
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[derive(Clone, Copy)]
enum Base {
    Preset(&'static Preset),
    Oidc,
    OAuth2,
}

impl Base {
    fn preset_id(&self) -> Option<&'static str> {
        match self {
            Base::Preset(p) => Some(p.id),
            _ => None,
        }
    }
    fn is(&self, id: &str) -> bool {
        self.preset_id() == Some(id)
    }
    fn kind_name(&self) -> &'static str {
        match self {
            Base::Preset(p) => match p.kind {
                PresetKind::Dev => "dev",
                PresetKind::Oidc { .. } => "oidc",
                PresetKind::OAuth2 { .. } => "oauth2",
            },
            Base::Oidc => "oidc",
            Base::OAuth2 => "oauth2",
        }
    }
    fn is_oauth2(&self) -> bool {
        self.kind_name() == "oauth2"
    }
    fn describe(&self) -> String {
        match self {
            Base::Preset(p) => format!("preset \"{}\"", p.id),
            Base::Oidc => "type \"oidc\"".to_string(),
            Base::OAuth2 => "type \"oauth2\"".to_string(),
        }
    }
}

/// Every provider key, in the order `latch presets` lists them.
const ALL_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "issuer",
    "name",
    "scopes",
    "link_by_email",
    "expose_tokens",
    "timeout",
    "max_response_bytes",
    "token_endpoint_auth_method",
    "response_mode",
    "allowed_email_domains",
    "allowed_emails",
    "allowed_orgs",
    "logo",
    "authorization_params",
    "authorization_url",
    "token_url",
    "userinfo_url",
    "profile",
    "base_url",
    "api_url",
    "tenant",
    "team_id",
    "key_id",
    "private_key_file",
];

/// `Ok(())` when `key` applies to `base`, else where it does apply.
fn key_scope(key: &str, base: &Base) -> Result<(), String> {
    let dev = base.is(DEV);
    let only = |preset: &str| format!("applies only to preset \"{preset}\"");
    match key {
        "name" | "client_id" | "scopes" | "link_by_email" | "expose_tokens" | "timeout"
        | "max_response_bytes" | "logo"
        | "allowed_email_domains" | "allowed_emails" => Ok(()),
        "client_secret" if dev => {
            Err("does not apply to preset \"dev\": the dev provider makes its own".to_string())
        }
        "client_secret" if base.is(APPLE) => Err(
            "must not be set for preset \"apple\": latch mints the client secret (a signed JWT) from team_id, key_id and private_key_file"
                .to_string(),
        ),
        "issuer" if dev => Err(
            "does not apply to preset \"dev\": the dev provider is built into latch".to_string(),
        ),
        "token_endpoint_auth_method" | "response_mode" | "authorization_params" if dev => Err(
            "does not apply to preset \"dev\": the dev provider is built into latch".to_string(),
        ),
        "client_secret" | "issuer" | "token_endpoint_auth_method" | "response_mode"
        | "authorization_params" => Ok(()),
        "authorization_url" | "token_url" | "userinfo_url" | "profile" => {
            if base.is_oauth2() {
                Ok(())
            } else {
                let oauth2: Vec<_> = PRESETS
                    .iter()
                    .filter(|p| matches!(p.kind, PresetKind::OAuth2 { .. }))
                    .map(|p| p.id)
                    .collect();
                Err(format!(
                    "applies only to type \"oauth2\" and the presets {} (an OpenID Connect provider's endpoints come from discovery)",
                    quoted(&oauth2)
                ))
            }
        }
        "base_url" | "api_url" | "allowed_orgs" if !base.is(GITHUB) => Err(only(GITHUB)),
        "tenant" if !base.is(ENTRA) => Err(only(ENTRA)),
        "team_id" | "key_id" | "private_key_file" if !base.is(APPLE) => Err(only(APPLE)),
        _ => Ok(()),
    }
}

fn valid_keys(base: &Base) -> Vec<&'static str> {
    ALL_KEYS
        .iter()
        .copied()
        .filter(|k| key_scope(k, base).is_ok())
        .collect()
}

fn required_keys(base: &Base) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if base.is(DEV) {
        return keys;
    }
    keys.push("client_id");
    if !base.is(APPLE) {
        keys.push("client_secret");
    }
    match base {
        Base::Oidc => keys.push("issuer"),
        Base::OAuth2 => keys.extend(["authorization_url", "token_url", "userinfo_url", "profile"]),
        Base::Preset(p) => {
            if let PresetKind::Oidc { issuer: None, .. } = p.kind {
                keys.push("issuer");
            }
            if p.id == APPLE {
                keys.extend(["team_id", "key_id", "private_key_file"]);
            }
        }
    }
    keys
}

pub(crate) fn provider(
    ctx: &mut Ctx,
    id: &str,
    raw: RawProvider,
    public_url: Option<&Url>,
    base_dir: &Path,
) -> Option<ProviderConfig> {
    let path = KeyPath::new(&["providers", id]);
    let mut ok = true;
    if !valid_id(id) {
        ctx.err(
            &path,
            format!(
                "invalid provider id \"{id}\": it appears in URLs, so use lowercase letters, digits, '_' and '-', starting with a letter or digit (e.g. \"corp\", \"my-sso\")"
            ),
        );
        ok = false;
    }

    let preset = ctx.opt_string(&path.key("preset"), raw.preset.as_deref());
    let kind = ctx.opt_string(&path.key("type"), raw.kind.as_deref());
    let base = match (preset, kind) {
        (Some(Some(_)), Some(Some(_))) => {
            ctx.err(
                &path.key("type"),
                "set either `preset` or `type`, not both: a preset already determines the type",
            );
            None
        }
        (Some(Some(p)), Some(None)) => match PRESETS.iter().find(|x| x.id == p) {
            Some(preset) => Some(Base::Preset(preset)),
            None => {
                ctx.err(
                    &path.key("preset"),
                    format!("unknown preset \"{p}\"; available: {}", preset_names()),
                );
                None
            }
        },
        (Some(None), Some(Some(t))) => match t.as_str() {
            "oidc" => Some(Base::Oidc),
            "oauth2" => Some(Base::OAuth2),
            _ => {
                ctx.err(
                    &path.key("type"),
                    format!("unknown type \"{t}\"; valid types: {}", type_names()),
                );
                None
            }
        },
        (None, _) | (_, None) => None, // expansion error already reported
        (Some(None), Some(None)) => {
            ctx.err(
                &path,
                format!(
                    "a provider needs either `type = \"oidc\"` (with `issuer`), `type = \"oauth2\"` (with endpoints and a profile table) or `preset = \"<name>\"` (available presets: {})",
                    preset_names()
                ),
            );
            None
        }
    };
    // Without a base only the keys every provider shares can be checked.
    let Some(base) = base else {
        check_common(ctx, &path, &raw);
        return None;
    };
    let preset = match base {
        Base::Preset(p) => Some(p),
        _ => None,
    };

    for key in raw.present_keys() {
        if let Err(why) = key_scope(key, &base) {
            ctx.err(
                &path.key(key),
                format!(
                    "`{key}` {why}; valid keys for {}: {}",
                    base.describe(),
                    valid_keys(&base).join(", ")
                ),
            );
            ok = false;
        }
    }
    // Keys refused above are not looked at again.
    let applies = |key: &str| key_scope(key, &base).is_ok();

    let name = match ctx.opt_string(&path.key("name"), raw.name.as_deref()) {
        Some(Some(n)) if n.trim().is_empty() => {
            ctx.err(&path.key("name"), "must not be empty");
            None
        }
        Some(Some(n)) => Some(n),
        Some(None) => Some(
            preset
                .map(|p| p.label.to_string())
                .unwrap_or_else(|| id.to_string()),
        ),
        None => None,
    };

    let access = access_rules(ctx, &path, &raw, applies("allowed_orgs"));
    let has_orgs = access.as_ref().is_some_and(|a| !a.allowed_orgs.is_empty());

    let kind = match base {
        Base::Preset(Preset {
            kind: PresetKind::Dev,
            ..
        }) => dev_kind(ctx, &path, public_url),
        Base::Oidc => oidc_kind(ctx, &path, &raw, None),
        Base::Preset(
            p @ Preset {
                kind: PresetKind::Oidc { .. },
                ..
            },
        ) => oidc_kind(ctx, &path, &raw, Some(p)),
        Base::OAuth2 => oauth2_kind(ctx, &path, &raw, None),
        Base::Preset(
            p @ Preset {
                kind: PresetKind::OAuth2 { .. },
                ..
            },
        ) => oauth2_kind(ctx, &path, &raw, Some(p)),
    };

    let client_id = match ctx.opt_string(&path.key("client_id"), raw.client_id.as_deref()) {
        Some(Some(c)) if c.is_empty() => {
            ctx.err(&path.key("client_id"), "must not be empty");
            None
        }
        Some(Some(c)) => Some(c),
        Some(None) => match preset.and_then(|p| p.client_id) {
            Some(c) => Some(c.to_string()),
            None => {
                ctx.err(
                    &path.key("client_id"),
                    "`client_id` is required: the client id registered at the provider",
                );
                None
            }
        },
        None => None,
    };

    let tam_path = path.key("token_endpoint_auth_method");
    let token_auth = match ctx.opt_string(&tam_path, raw.token_endpoint_auth_method.as_deref()) {
        None => None,
        Some(None) => Some(preset.map_or(TokenAuth::ClientSecretBasic, |p| p.token_auth)),
        Some(Some(v)) => match v.as_str() {
            "client_secret_basic" => Some(TokenAuth::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuth::ClientSecretPost),
            "none" => Some(TokenAuth::None),
            _ => {
                ctx.err(
                    &tam_path,
                    format!("unknown method \"{v}\"; valid: \"client_secret_basic\" (the default), \"client_secret_post\", \"none\" (a public client without a secret)"),
                );
                None
            }
        },
    };

    let secret_path = path.key("client_secret");
    let client_secret = match &raw.client_secret {
        Some(_) if !applies("client_secret") => None,
        None => {
            let needed = !base.is(DEV) && !base.is(APPLE) && token_auth != Some(TokenAuth::None);
            if needed && token_auth.is_some() {
                ctx.err(
                    &secret_path,
                    "`client_secret` is required: the client secret issued by the provider, e.g. client_secret = \"${MY_CLIENT_SECRET}\" (for a public client set token_endpoint_auth_method = \"none\")",
                );
                None
            } else {
                Some(None)
            }
        }
        Some(_) if token_auth == Some(TokenAuth::None) => {
            ctx.err(
                &secret_path,
                "is never sent with token_endpoint_auth_method = \"none\"; remove it, or use \"client_secret_basic\" or \"client_secret_post\"",
            );
            None
        }
        Some(s) => ctx
            .string(&secret_path, &s.0)
            .map(|s| Some(Secret::new(s.into_bytes()))),
    };

    let rm_path = path.key("response_mode");
    let response_mode = match ctx.opt_string(&rm_path, raw.response_mode.as_deref()) {
        None => None,
        Some(None) => Some(preset.map_or(ResponseMode::Query, |p| p.response_mode)),
        Some(Some(v)) => match v.as_str() {
            "query" => Some(ResponseMode::Query),
            "form_post" => Some(ResponseMode::FormPost),
            _ => {
                ctx.err(
                    &rm_path,
                    format!("unknown response mode \"{v}\"; valid: \"query\" (the default), \"form_post\""),
                );
                None
            }
        },
    };

    let scopes = scopes(ctx, &path, &raw, &base, has_orgs);

    let logo_path = path.key("logo");
    let logo = match ctx.opt_string(&logo_path, raw.logo.as_deref()) {
        None => None,
        Some(None) => Some(preset.filter(|p| p.logo).map(|p| p.id.to_string())),
        Some(Some(l)) if l.is_empty() => Some(None),
        Some(Some(l)) => {
            if PRESETS.iter().any(|p| p.logo && p.id == l) {
                Some(Some(l))
            } else {
                let logos: Vec<_> = PRESETS.iter().filter(|p| p.logo).map(|p| p.id).collect();
                ctx.err(
                    &logo_path,
                    format!(
                        "no logo \"{l}\"; valid: a preset's logo ({}), or \"\" for a letter badge",
                        logos.join(", ")
                    ),
                );
                None
            }
        }
    };

    let authorization_params = if applies("authorization_params") {
        authorization_params(ctx, &path, &raw, preset)
    } else {
        Some(Vec::new())
    };

    let apple = if base.is(APPLE) {
        apple_key(ctx, &path, &raw, base_dir).map(Some)
    } else {
        Some(None)
    };

    let timeout = ctx.duration(&path.key("timeout"), raw.timeout.as_ref(), DEFAULT_TIMEOUT);
    let max_response_bytes = max_response_bytes(ctx, &path, raw.max_response_bytes);

    if !ok {
        return None;
    }
    Some(ProviderConfig {
        id: id.to_string(),
        name: name?,
        preset: preset.map(|p| p.id.to_string()),
        kind: kind?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        link_by_email: raw.link_by_email.unwrap_or(false),
        expose_tokens: raw.expose_tokens.unwrap_or(false),
        timeout: timeout?,
        max_response_bytes: max_response_bytes?,
        token_auth: token_auth?,
        response_mode: response_mode?,
        access: access?,
        logo: logo?,
        authorization_params: authorization_params?,
        apple: apple?,
    })
}

/// The most latch reads of one answer from the provider: 1 MiB unless set, within 1 KiB..64 MiB.
fn max_response_bytes(ctx: &mut Ctx, path: &KeyPath, raw: Option<i64>) -> Option<usize> {
    const DEFAULT: i64 = 1 << 20;
    const RANGE: std::ops::RangeInclusive<i64> = 1024..=(64 << 20);
    let value = raw.unwrap_or(DEFAULT);
    if RANGE.contains(&value) {
        Some(value as usize)
    } else {
        ctx.err(
            &path.key("max_response_bytes"),
            format!(
                "must be a number of bytes from {} to {} (default {DEFAULT}, 1 MiB), not {value}",
                RANGE.start(),
                RANGE.end()
            ),
        );
        None
    }
}

/// Validate what can be without knowing the preset or type, so a file with a
/// bad `preset` still gets its other mistakes reported.
fn check_common(ctx: &mut Ctx, path: &KeyPath, raw: &RawProvider) {
    ctx.opt_string(&path.key("name"), raw.name.as_deref());
    ctx.opt_string(&path.key("client_id"), raw.client_id.as_deref());
    ctx.duration(&path.key("timeout"), raw.timeout.as_ref(), DEFAULT_TIMEOUT);
}

fn dev_kind(ctx: &mut Ctx, path: &KeyPath, public_url: Option<&Url>) -> Option<ProviderKind> {
    let url = public_url?; // an invalid public_url is reported on its own
    if !url.host().is_some_and(|h| is_loopback(&h)) {
        ctx.err(
            &path.key("preset"),
            format!(
                "preset \"dev\" lets anyone sign in as any user, so it is only allowed when server.public_url is a loopback address (localhost, 127.0.0.1, [::1]); server.public_url is \"{url}\". Remove this provider outside development."
            ),
        );
        return None;
    }
    Some(ProviderKind::Dev)
}

fn oidc_kind(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    preset: Option<&'static Preset>,
) -> Option<ProviderKind> {
    let issuer_path = path.key("issuer");
    let written = ctx.opt_string(&issuer_path, raw.issuer.as_deref())?;
    let entra = preset.is_some_and(|p| p.id == ENTRA);
    let tenant = if entra {
        let tenant_path = path.key("tenant");
        match ctx.opt_string(&tenant_path, raw.tenant.as_deref())? {
            Some(_) if written.is_some() => {
                ctx.err(
                    &tenant_path,
                    "set either `tenant` or `issuer`, not both: the issuer is made from the tenant (https://login.microsoftonline.com/{tenant}/v2.0)",
                );
                return None;
            }
            Some(t) if !valid_tenant(&t) => {
                ctx.err(
                    &tenant_path,
                    format!("\"{t}\" is not a tenant: expected \"common\" (the default), \"organizations\", \"consumers\", a tenant id (a GUID) or a domain such as \"contoso.onmicrosoft.com\""),
                );
                return None;
            }
            Some(t) => Some(t),
            None => None,
        }
    } else {
        None
    };

    let issuer = match (written, preset) {
        (Some(i), _) => i,
        (None, Some(_)) if entra => format!(
            "https://login.microsoftonline.com/{}/v2.0",
            tenant.as_deref().unwrap_or("common")
        ),
        (
            None,
            Some(Preset {
                kind: PresetKind::Oidc {
                    issuer: Some(i), ..
                },
                ..
            }),
        ) => i.to_string(),
        (
            None,
            Some(Preset {
                id,
                kind: PresetKind::Oidc { example, .. },
                ..
            }),
        ) => {
            ctx.err(
                path,
                format!(
                    "`issuer` is required with preset \"{id}\": your {id} issuer URL, e.g. issuer = \"{example}\""
                ),
            );
            return None;
        }
        (None, _) => {
            ctx.err(
                path,
                "`issuer` is required with type = \"oidc\": the URL that serves /.well-known/openid-configuration, e.g. \"https://accounts.example.com\"",
            );
            return None;
        }
    };
    let issuer = match parse_issuer(&issuer) {
        Ok(u) => u,
        Err(e) => {
            ctx.err(&issuer_path, e);
            return None;
        }
    };
    let multi_tenant = entra
        && issuer
            .path_segments()
            .and_then(|mut s| s.next())
            .is_some_and(|t| {
                ["common", "organizations", "consumers"]
                    .iter()
                    .any(|m| t.eq_ignore_ascii_case(m))
            });
    Some(ProviderKind::Oidc {
        issuer,
        issuer_rule: if multi_tenant {
            IssuerRule::EntraTenantFromTid
        } else {
            IssuerRule::Exact
        },
    })
}

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 253
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// An endpoint key: written, else the default (reported against `default_key`
/// when the default is made from another key).
fn endpoint(
    ctx: &mut Ctx,
    path: &KeyPath,
    key: &str,
    written: Option<&str>,
    default: Option<(String, &KeyPath)>,
) -> Option<Url> {
    let key_path = path.key(key);
    let (value, report_at) = match ctx.opt_string(&key_path, written)? {
        Some(v) => (v, key_path),
        None => match default {
            Some((v, at)) => (v, at.clone()),
            None => {
                ctx.err(
                    &key_path,
                    format!(
                        "`{key}` is required with type = \"oauth2\": an https URL, e.g. {key} = \"https://provider.example/{}\"",
                        match key {
                            "authorization_url" => "oauth/authorize",
                            "token_url" => "oauth/token",
                            _ => "api/me",
                        }
                    ),
                );
                return None;
            }
        },
    };
    match parse_endpoint(&value) {
        Ok(u) => Some(u),
        Err(e) => {
            ctx.err(&report_at, e);
            None
        }
    }
}

fn oauth2_kind(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    preset: Option<&'static Preset>,
) -> Option<ProviderKind> {
    let defaults = match preset.map(|p| p.kind) {
        Some(PresetKind::OAuth2 {
            authorization_url,
            token_url,
            userinfo_url,
            profile,
            issuer,
        }) => Some((authorization_url, token_url, userinfo_url, profile, issuer)),
        _ => None,
    };
    let github = preset.is_some_and(|p| p.id == GITHUB);

    // GitHub (and GitHub Enterprise Server): endpoints made from base_url / api_url.
    let mut emails_url = None;
    let mut api_url = None;
    let mut made: Option<(String, String, String, String, KeyPath, KeyPath)> = None;
    if github {
        let base_path = path.key("base_url");
        let base = match ctx.opt_string(&base_path, raw.base_url.as_deref())? {
            None => "https://github.com".to_string(),
            Some(b) => match parse_endpoint(&b) {
                Ok(u) if u.query().is_some() => {
                    ctx.err(
                        &base_path,
                        format!("\"{b}\": base_url has no query; expected e.g. \"https://github.example.com\""),
                    );
                    return None;
                }
                Ok(u) => u.as_str().trim_end_matches('/').to_string(),
                Err(e) => {
                    ctx.err(&base_path, e);
                    return None;
                }
            },
        };
        let api_path = path.key("api_url");
        let (api, api_at) = match ctx.opt_string(&api_path, raw.api_url.as_deref())? {
            Some(a) => (a, api_path.clone()),
            None if base == "https://github.com" => {
                ("https://api.github.com".to_string(), base_path.clone())
            }
            None => (format!("{base}/api/v3"), base_path.clone()),
        };
        let api = match parse_endpoint(&api) {
            Ok(u) if u.query().is_none() => u.as_str().trim_end_matches('/').to_string(),
            Ok(_) => {
                ctx.err(&api_at, format!("\"{api}\": the API root has no query"));
                return None;
            }
            Err(e) => {
                ctx.err(&api_at, e);
                return None;
            }
        };
        emails_url = Some(parse_endpoint(&format!("{api}/user/emails")).ok()?);
        api_url = Some(parse_endpoint(&api).ok()?);
        made = Some((
            format!("{base}/login/oauth/authorize"),
            format!("{base}/login/oauth/access_token"),
            format!("{api}/user"),
            format!("{base}/login/oauth"),
            base_path,
            api_at,
        ));
    }

    let (auth_default, token_default, userinfo_default, issuer_default) = match (&made, defaults) {
        (Some((a, t, u, i, base_at, api_at)), _) => (
            Some((a.clone(), base_at)),
            Some((t.clone(), base_at)),
            Some((u.clone(), api_at)),
            Some(i.clone()),
        ),
        (None, Some((a, t, u, _, i))) => (
            Some((a.to_string(), path)),
            Some((t.to_string(), path)),
            Some((u.to_string(), path)),
            i.map(str::to_string),
        ),
        (None, None) => (None, None, None, None),
    };
    let authorization_url = endpoint(
        ctx,
        path,
        "authorization_url",
        raw.authorization_url.as_deref(),
        auth_default,
    );
    let token_url = endpoint(
        ctx,
        path,
        "token_url",
        raw.token_url.as_deref(),
        token_default,
    );
    let userinfo_url = endpoint(
        ctx,
        path,
        "userinfo_url",
        raw.userinfo_url.as_deref(),
        userinfo_default,
    );

    let issuer_path = path.key("issuer");
    let issuer = match ctx.opt_string(&issuer_path, raw.issuer.as_deref()) {
        None => None,
        Some(None) => Some(issuer_default),
        Some(Some(i)) => match parse_issuer(&i) {
            Ok(_) => Some(Some(i)),
            Err(e) => {
                ctx.err(
                    &issuer_path,
                    format!("{e} (for type \"oauth2\" this is the RFC 9207 `iss` the provider adds to the callback)"),
                );
                None
            }
        },
    };

    let profile = profile(ctx, path, raw.profile.as_ref(), defaults.map(|d| d.3));

    Some(ProviderKind::OAuth2 {
        authorization_url: authorization_url?,
        token_url: token_url?,
        userinfo_url: userinfo_url?,
        emails_url,
        api_url,
        profile: profile?,
        issuer: issuer?,
    })
}

fn profile(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: Option<&RawProfile>,
    default: Option<StaticProfile>,
) -> Option<ProfileMapping> {
    let p = path.key("profile");
    let Some(raw) = raw else {
        return match default {
            Some(d) => Some(ProfileMapping {
                id: d.id.to_string(),
                email: d.email.map(str::to_string),
                email_verified: d.email_verified.map(str::to_string),
                name: d.name.map(str::to_string),
                image: d.image.map(str::to_string),
            }),
            None => {
                ctx.err(
                    &p,
                    "is required with type = \"oauth2\": a [providers.<id>.profile] table naming the userinfo JSON fields, at least `id` (e.g. id = \"id\", email = \"email\", name = \"name\", image = \"avatar_url\"; dotted paths such as \"data.user.id\" reach into nested objects)",
                );
                None
            }
        };
    };
    let mut ok = true;
    // A field written in the file overrides the preset's; "" removes it.
    let mut field = |key: &str, written: Option<&String>, default: Option<&'static str>| {
        let key_path = p.key(key);
        match written {
            None => default.map(str::to_string),
            Some(w) => match ctx.string(&key_path, w) {
                None => {
                    ok = false;
                    None
                }
                Some(v) if v.is_empty() && key != "id" => None,
                Some(v) => match check_json_path(&v) {
                    Ok(()) => Some(v),
                    Err(e) => {
                        ctx.err(&key_path, e);
                        ok = false;
                        None
                    }
                },
            },
        }
    };
    let id = field("id", raw.id.as_ref(), default.map(|d| d.id));
    let email = field("email", raw.email.as_ref(), default.and_then(|d| d.email));
    let email_verified = field(
        "email_verified",
        raw.email_verified.as_ref(),
        default.and_then(|d| d.email_verified),
    );
    let name = field("name", raw.name.as_ref(), default.and_then(|d| d.name));
    let image = field("image", raw.image.as_ref(), default.and_then(|d| d.image));
    if id.is_none() && ok {
        ctx.err(
            &p.key("id"),
            "is required: the dotted path of the user's stable id in the userinfo JSON, e.g. id = \"id\" or id = \"data.user.id\"",
        );
        return None;
    }
    if !ok {
        return None;
    }
    Some(ProfileMapping {
        id: id?,
        email,
        email_verified,
        name,
        image,
    })
}

/// `a.b.c`: non-empty segments of letters, digits, `_`, `-`, `@`, with dots between.
pub(crate) fn check_json_path(s: &str) -> Result<(), String> {
    let good = s.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@'))
    });
    if good {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a JSON path: expected field names of letters, digits, '_', '-' and '@' joined by dots, e.g. \"id\" or \"data.user.id\""
        ))
    }
}

fn scopes(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    base: &Base,
    has_orgs: bool,
) -> Option<Vec<String>> {
    let scopes_path = path.key("scopes");
    let written = ctx.strings(&scopes_path, raw.scopes.as_deref())?;
    let explicit = written.is_some();
    let mut scopes = match written {
        Some(s) => s,
        None => {
            let defaults: &[&str] = match base {
                Base::Preset(p) => p.scopes,
                Base::Oidc => DEFAULT_SCOPES,
                Base::OAuth2 => &[],
            };
            defaults.iter().map(|s| s.to_string()).collect()
        }
    };
    let mut good = true;
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(char::is_whitespace) {
            ctx.err(
                &scopes_path.index(i),
                format!("invalid scope \"{s}\": a scope is one word without spaces"),
            );
            good = false;
        }
    }
    if base.kind_name() != "oauth2" && !scopes.iter().any(|s| s == "openid") {
        ctx.err(
            &scopes_path,
            "must contain \"openid\" for an OpenID Connect provider, e.g. [\"openid\", \"email\", \"profile\"]",
        );
        good = false;
    }
    if has_orgs && !scopes.iter().any(|s| s == "read:org") {
        if explicit {
            ctx.err(
                &scopes_path,
                "must contain \"read:org\" when allowed_orgs is set: latch needs it to check organisation membership",
            );
            good = false;
        } else {
            scopes.push("read:org".to_string());
        }
    }
    good.then_some(scopes)
}

fn access_rules(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    orgs_apply: bool,
) -> Option<AccessRules> {
    let mut ok = true;

    let p = path.key("allowed_email_domains");
    let mut domains = Vec::new();
    match ctx.strings(&p, raw.allowed_email_domains.as_deref()) {
        None => ok = false,
        Some(list) => {
            for (i, d) in list.unwrap_or_default().into_iter().enumerate() {
                let lower = d.trim().to_ascii_lowercase();
                let bare = lower.strip_prefix('@').unwrap_or(&lower);
                if is_domain_name(bare) {
                    domains.push(bare.to_string());
                } else {
                    ctx.err(
                        &p.index(i),
                        format!("\"{d}\" is not a domain name; expected e.g. \"example.com\""),
                    );
                    ok = false;
                }
            }
        }
    }

    let p = path.key("allowed_emails");
    let mut emails = Vec::new();
    match ctx.strings(&p, raw.allowed_emails.as_deref()) {
        None => ok = false,
        Some(list) => {
            for (i, e) in list.unwrap_or_default().into_iter().enumerate() {
                let lower = e.trim().to_lowercase();
                let valid = lower
                    .rsplit_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && is_domain_name(domain))
                    && !lower.contains(char::is_whitespace);
                if valid {
                    emails.push(lower);
                } else {
                    ctx.err(
                        &p.index(i),
                        format!(
                            "\"{e}\" is not an email address; expected e.g. \"alice@example.com\""
                        ),
                    );
                    ok = false;
                }
            }
        }
    }

    let p = path.key("allowed_orgs");
    let mut orgs = Vec::new();
    if orgs_apply {
        match ctx.strings(&p, raw.allowed_orgs.as_deref()) {
            None => ok = false,
            Some(list) => {
                for (i, o) in list.unwrap_or_default().into_iter().enumerate() {
                    let valid = !o.is_empty()
                        && o.len() <= 39
                        && !o.starts_with('-')
                        && !o.ends_with('-')
                        && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                    if valid {
                        orgs.push(o);
                    } else {
                        ctx.err(
                            &p.index(i),
                            format!("\"{o}\" is not a GitHub organisation login: letters, digits and '-', e.g. \"my-org\" (as in https://github.com/my-org)"),
                        );
                        ok = false;
                    }
                }
            }
        }
    }

    ok.then_some(AccessRules {
        allowed_email_domains: domains,
        allowed_emails: emails,
        allowed_orgs: orgs,
    })
}

fn is_domain_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Query parameters latch sets itself on the authorization request.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

fn authorization_params(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    preset: Option<&'static Preset>,
) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = preset
        .map(|p| p.authorization_params)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Some(written) = &raw.authorization_params else {
        return Some(out);
    };
    let p = path.key("authorization_params");
    let mut ok = true;
    for (k, v) in written {
        let kp = p.key(k);
        if k.is_empty() {
            ctx.err(&kp, "a parameter name must not be empty");
            ok = false;
            continue;
        }
        if RESERVED_PARAMS.contains(&k.as_str()) {
            let hint = match k.as_str() {
                "scope" => " (set `scopes` instead)",
                "response_mode" => " (set the provider's `response_mode` key instead)",
                "client_id" => " (set `client_id` instead)",
                _ => "",
            };
            ctx.err(
                &kp,
                format!(
                    "\"{k}\" is set by latch and cannot be overridden{hint}; reserved: {}",
                    RESERVED_PARAMS.join(", ")
                ),
            );
            ok = false;
            continue;
        }
        let Some(v) = ctx.string(&kp, v) else {
            ok = false;
            continue;
        };
        match out.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k.clone(), v)),
        }
    }
    ok.then_some(out)
}

fn apple_key(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    base_dir: &Path,
) -> Option<AppleKey> {
    let mut id_key = |key: &str, written: Option<&str>, what: &str| -> Option<String> {
        let kp = path.key(key);
        match ctx.opt_string(&kp, written)? {
            None => {
                ctx.err(
                    &kp,
                    format!("`{key}` is required with preset \"apple\": {what}"),
                );
                None
            }
            Some(v) if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()) => {
                ctx.err(&kp, format!("\"{v}\" is not valid: {what}"));
                None
            }
            Some(v) => Some(v),
        }
    };
    let team_id = id_key(
        "team_id",
        raw.team_id.as_deref(),
        "your Apple Developer Team ID, 10 letters and digits such as \"ABCDE12345\" (top right of developer.apple.com/account)",
    );
    let key_id = id_key(
        "key_id",
        raw.key_id.as_deref(),
        "the Key ID of the Sign in with Apple private key, 10 letters and digits such as \"XYZ9876543\"",
    );

    let kp = path.key("private_key_file");
    let private_key = match ctx.opt_string(&kp, raw.private_key_file.as_deref()) {
        None => None,
        Some(None) => {
            ctx.err(
                &kp,
                "`private_key_file` is required with preset \"apple\": the .p8 key file downloaded from Apple (a path relative to this config file), e.g. private_key_file = \"AuthKey_XYZ9876543.p8\"",
            );
            None
        }
        Some(Some(f)) => {
            let file = base_dir.join(&f);
            match std::fs::read_to_string(&file) {
                Err(e) => {
                    ctx.err(
                        &kp,
                        format!(
                            "cannot read \"{}\": {e} (relative paths are resolved against the config file's directory)",
                            file.display()
                        ),
                    );
                    None
                }
                Ok(text) => match check_pkcs8_pem(&text) {
                    Ok(()) => Some(Secret::new(text.into_bytes())),
                    Err(why) => {
                        ctx.err(&kp, format!("\"{}\" {why}", file.display()));
                        None
                    }
                },
            }
        }
    };

    Some(AppleKey {
        team_id: team_id?,
        key_id: key_id?,
        private_key: private_key?,
    })
}

/// The file's text must be a PKCS#8 PEM private key (what Apple's `.p8` files are).
/// Messages never quote the file's content.
fn check_pkcs8_pem(text: &str) -> Result<(), String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let t = text.trim();
    if t.starts_with(BEGIN) && t.ends_with(END) && t.len() > BEGIN.len() + END.len() {
        return Ok(());
    }
    if t.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        return Err(format!(
            "is a SEC1 \"EC PRIVATE KEY\"; expected a PKCS#8 PEM (\"{BEGIN}\"), as Apple's .p8 download is; convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8`"
        ));
    }
    Err(format!(
        "is not a PKCS#8 PEM private key: expected the .p8 file from Apple, starting with \"{BEGIN}\" and ending with \"{END}\""
    ))
}

fn check_url(s: &str, what: &str, example: &str) -> Result<Url, String> {
    let url = Url::parse(s)
        .map_err(|e| format!("\"{s}\" is not a valid URL ({e}); expected e.g. \"{example}\""))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not contain a user name or password"));
    }
    let host = url.host().ok_or_else(|| format!("\"{s}\" has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "\"{s}\": {what} must use https (http is allowed only for localhost, 127.0.0.0/8 and [::1])"
            ))
        }
        other => return Err(format!("\"{s}\": scheme must be https, not \"{other}\"")),
    }
    if url.fragment().is_some() {
        return Err(format!("\"{s}\": {what} has no fragment"));
    }
    Ok(url)
}

fn parse_issuer(s: &str) -> Result<Url, String> {
    let url = check_url(s, "the issuer", "https://accounts.example.com")?;
    if url.query().is_some() {
        return Err(format!("\"{s}\": an issuer has no query or fragment"));
    }
    Ok(url)
}

/// An OAuth 2.0 endpoint (a query is allowed, e.g. Facebook's `?fields=`).
fn parse_endpoint(s: &str) -> Result<Url, String> {
    check_url(s, "an endpoint", "https://provider.example/oauth/token")
}
