//! `[providers.<id>]` tables: a preset or a type, the keys every provider has, and the
//! preset's own keys and rules, through the hooks of `provider::presets` (which this file
//! loops over and never names).

use std::path::Path;
use std::time::Duration;

use url::Url;

use super::ctx::Ctx;
use super::endpoints::{oauth2_kind, oidc_kind, Site};
use super::keys::{base, key_scope, valid_keys, Base};
use super::raw::{RawProvider, RawTable};
use super::rules::{access_rules, authorization_params, scopes};
use super::source::KeyPath;
use super::types::{Own, ProviderConfig, ProviderKind, ResponseMode, Secret, TokenAuth};
use crate::provider::presets::{self, Kind, OIDC};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(crate) fn provider(
    ctx: &mut Ctx,
    id: &str,
    table: RawTable,
    public_url: Option<&Url>,
    base_dir: &Path,
) -> Option<ProviderConfig> {
    let path = KeyPath::new(&["providers", id]);
    let raw = &table.raw;
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

    // Without a base only the keys every provider shares can be checked.
    let Some(base) = base(ctx, &path, raw) else {
        check_common(ctx, &path, raw);
        return None;
    };
    let preset = base.preset();
    let entry = preset.map_or(&OIDC, |p| p.entry());

    for key in &table.present {
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
    let site = Site {
        own: &table.own,
        public_url,
        base_dir,
    };

    let name = name(ctx, &path, raw, preset.map_or(id, |p| p.entry().label));

    let orgs = preset.and_then(|p| p.orgs());
    let access = access_rules(ctx, &path, raw, orgs);
    let has_orgs = access.as_ref().is_some_and(|a| !a.allowed_orgs.is_empty());

    let kind = match (base, entry.kind) {
        (Base::Preset(p), Kind::Dev) => p
            .check_server(&mut site.table(ctx, &path))
            .then_some((ProviderKind::Dev, Own::default())),
        (Base::OAuth2, _) | (Base::Preset(_), Kind::OAuth2 { .. }) => {
            oauth2_kind(ctx, &path, &table, preset, &site)
        }
        (Base::Oidc, _) | (Base::Preset(_), Kind::Oidc { .. }) => {
            oidc_kind(ctx, &path, &table, preset, &site).map(|k| (k, Own::default()))
        }
    };

    let client_id = client_id(ctx, &path, raw, entry.client_id);
    let token_auth = token_auth(ctx, &path, raw, entry.token_auth);
    let client_secret = match &raw.client_secret {
        Some(_) if !applies("client_secret") => None,
        None if !applies("client_secret") => Some(None),
        written => client_secret(ctx, &path, written.as_ref().map(|s| &s.0), token_auth),
    };
    let response_mode = response_mode(ctx, &path, raw, entry.response_mode);

    let defaults = match base {
        Base::OAuth2 => &[][..],
        _ => entry.scopes,
    };
    let needs_openid = base.kind_name() != "oauth2";
    let org_scope = orgs.filter(|_| has_orgs).map(|o| o.scope);
    let scopes = scopes(ctx, &path, raw, defaults, needs_openid, org_scope);

    let own_logo = preset.filter(|p| p.entry().logo).map(|p| p.entry().id);
    let logo = logo(ctx, &path, raw, own_logo);

    let authorization_params = if applies("authorization_params") {
        authorization_params(ctx, &path, raw, entry.authorization_params)
    } else {
        Some(Vec::new())
    };

    let settings = match preset {
        Some(p) => p.settings(&mut site.table(ctx, &path)),
        None => Some(Own::default()),
    };

    let groups_claim = match ctx.opt_string(&path.key("groups_claim"), raw.groups_claim.as_deref())
    {
        Some(Some(claim)) if claim.trim().is_empty() => {
            ctx.err(
                &path.key("groups_claim"),
                "must not be empty (leave it out for \"groups\")",
            );
            None
        }
        Some(claim) => Some(claim.unwrap_or_else(|| "groups".to_string())),
        None => None,
    };
    let timeout = ctx.duration(&path.key("timeout"), raw.timeout.as_ref(), DEFAULT_TIMEOUT);
    let max_response_bytes = max_response_bytes(ctx, &path, raw.max_response_bytes);

    if !ok {
        return None;
    }
    let (kind, kind_own) = kind?;
    let settings = settings?;
    Some(ProviderConfig {
        id: id.to_string(),
        name: name?,
        preset: preset.map(|p| p.entry().id.to_string()),
        kind,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        link_by_email: raw.link_by_email.unwrap_or(false),
        expose_tokens: raw.expose_tokens.unwrap_or(false),
        federated_signout: raw.federated_signout.unwrap_or(false),
        groups_claim: groups_claim?,
        timeout: timeout?,
        max_response_bytes: max_response_bytes?,
        token_auth: token_auth?,
        response_mode: response_mode?,
        access: access?,
        logo: logo?,
        authorization_params: authorization_params?,
        own: if kind_own.is_none() {
            settings
        } else {
            kind_own
        },
    })
}

/// `name`, else the preset's label (or the id).
fn name(ctx: &mut Ctx, path: &KeyPath, raw: &RawProvider, default: &str) -> Option<String> {
    match ctx.opt_string(&path.key("name"), raw.name.as_deref()) {
        Some(Some(n)) if n.trim().is_empty() => {
            ctx.err(&path.key("name"), "must not be empty");
            None
        }
        Some(Some(n)) => Some(n),
        Some(None) => Some(default.to_string()),
        None => None,
    }
}

fn client_id(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    default: Option<&str>,
) -> Option<String> {
    match ctx.opt_string(&path.key("client_id"), raw.client_id.as_deref()) {
        Some(Some(c)) if c.is_empty() => {
            ctx.err(&path.key("client_id"), "must not be empty");
            None
        }
        Some(Some(c)) => Some(c),
        Some(None) => match default {
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
    }
}

fn token_auth(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    default: TokenAuth,
) -> Option<TokenAuth> {
    let tam_path = path.key("token_endpoint_auth_method");
    match ctx.opt_string(&tam_path, raw.token_endpoint_auth_method.as_deref()) {
        None => None,
        Some(None) => Some(default),
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
    }
}

/// `client_secret` (for a provider it applies to), as `token_auth` needs it.
fn client_secret(
    ctx: &mut Ctx,
    path: &KeyPath,
    written: Option<&String>,
    token_auth: Option<TokenAuth>,
) -> Option<Option<Secret>> {
    let secret_path = path.key("client_secret");
    match written {
        None => {
            if token_auth.is_some_and(|a| a != TokenAuth::None) {
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
            .string(&secret_path, s)
            .map(|s| Some(Secret::new(s.into_bytes()))),
    }
}

fn response_mode(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    default: ResponseMode,
) -> Option<ResponseMode> {
    let rm_path = path.key("response_mode");
    match ctx.opt_string(&rm_path, raw.response_mode.as_deref()) {
        None => None,
        Some(None) => Some(default),
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
    }
}

/// `logo`: a preset's logo id, `""` for a letter badge; else the preset's own (`default`).
fn logo(
    ctx: &mut Ctx,
    path: &KeyPath,
    raw: &RawProvider,
    default: Option<&str>,
) -> Option<Option<String>> {
    let logo_path = path.key("logo");
    let logos = || {
        presets::ALL
            .iter()
            .filter(|p| p.entry().logo)
            .map(|p| p.entry().id)
    };
    match ctx.opt_string(&logo_path, raw.logo.as_deref()) {
        None => None,
        Some(None) => Some(default.map(str::to_string)),
        Some(Some(l)) if l.is_empty() => Some(None),
        Some(Some(l)) if logos().any(|id| id == l) => Some(Some(l)),
        Some(Some(l)) => {
            ctx.err(
                &logo_path,
                format!(
                    "no logo \"{l}\"; valid: a preset's logo ({}), or \"\" for a letter badge",
                    logos().collect::<Vec<_>>().join(", ")
                ),
            );
            None
        }
    }
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
