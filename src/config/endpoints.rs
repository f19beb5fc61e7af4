//! What a provider table says about where the provider is: the issuer of an OpenID Connect
//! provider, the endpoints and profile mapping of a plain OAuth 2.0 one, each defaulting to
//! the preset's and to what its hooks make from its own keys.

use std::path::Path;

use url::Url;

use super::ctx::Ctx;
use super::raw::{RawProfile, RawTable};
use super::source::KeyPath;
use super::types::{IssuerRule, OAuth2Endpoints, Own, ProfileMapping, ProviderKind};
use super::urls::{parse_endpoint, parse_issuer};
use crate::provider::presets::{Entry, Kind, Preset, StaticProfile, Table};

/// What a preset's hooks see of the provider being validated besides its table's path.
pub(super) struct Site<'s> {
    pub own: &'s [(&'static str, String)],
    pub public_url: Option<&'s Url>,
    pub base_dir: &'s Path,
}

impl<'s> Site<'s> {
    pub fn table<'t, 'a, 'i>(
        &'t self,
        ctx: &'t mut Ctx<'a, 'i>,
        path: &'t KeyPath,
    ) -> Table<'t, 'a, 'i> {
        Table {
            ctx,
            path,
            own: self.own,
            public_url: self.public_url,
            base_dir: self.base_dir,
        }
    }
}

/// `type = "oidc"` (`preset: None`) or an OpenID Connect preset: the issuer, written or the
/// preset's.
pub(super) fn oidc_kind(
    ctx: &mut Ctx,
    path: &KeyPath,
    table: &RawTable,
    preset: Option<&'static dyn Preset>,
    site: &Site,
) -> Option<ProviderKind> {
    let issuer_path = path.key("issuer");
    let written = ctx.opt_string(&issuer_path, table.raw.issuer.as_deref())?;
    let made = match preset {
        Some(p) => p.issuer(&mut site.table(ctx, path), written.is_some())?,
        None => None,
    };
    let issuer = match (written.or(made), preset.map(|p| p.entry())) {
        (Some(i), _) => i,
        (
            None,
            Some(Entry {
                kind: Kind::Oidc {
                    issuer: Some(i), ..
                },
                ..
            }),
        ) => i.to_string(),
        (
            None,
            Some(Entry {
                id,
                kind: Kind::Oidc { example, .. },
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
    Some(ProviderKind::Oidc {
        issuer_rule: preset.map_or(IssuerRule::Exact, |p| p.issuer_rule(&issuer)),
        issuer,
    })
}

/// An endpoint key: written, else the default (reported against the key it is made from:
/// `""` for the table itself).
fn endpoint(
    ctx: &mut Ctx,
    path: &KeyPath,
    key: &str,
    written: Option<&str>,
    default: Option<(String, &str)>,
) -> Option<Url> {
    let key_path = path.key(key);
    let (value, report_at) = match ctx.opt_string(&key_path, written)? {
        Some(v) => (v, key_path),
        None => match default {
            Some((v, "")) => (v, path.clone()),
            Some((v, at)) => (v, path.key(at)),
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

/// `type = "oauth2"` (`preset: None`) or an OAuth 2.0 preset: the endpoints, the callback's
/// RFC 9207 issuer and the profile mapping, each written or the preset's. Also the settings
/// the preset made from its own keys.
pub(super) fn oauth2_kind(
    ctx: &mut Ctx,
    path: &KeyPath,
    table: &RawTable,
    preset: Option<&'static dyn Preset>,
    site: &Site,
) -> Option<(ProviderKind, Own)> {
    let raw = &table.raw;
    let defaults = match preset.map(|p| p.entry().kind) {
        Some(Kind::OAuth2 {
            authorization_url,
            token_url,
            userinfo_url,
            profile,
            issuer,
        }) => Some((authorization_url, token_url, userinfo_url, profile, issuer)),
        _ => None,
    };
    let made = match preset {
        Some(p) => p.endpoints(&mut site.table(ctx, path))?,
        None => None,
    };
    let mut own = Own::default();
    let (auth_default, token_default, userinfo_default, issuer_default) = match (made, defaults) {
        (Some(made), _) => {
            own = made.own;
            (
                Some(made.authorization_url),
                Some(made.token_url),
                Some(made.userinfo_url),
                made.issuer,
            )
        }
        (None, Some((a, t, u, _, i))) => (
            Some((a.to_string(), "")),
            Some((t.to_string(), "")),
            Some((u.to_string(), "")),
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

    let kind = ProviderKind::OAuth2(OAuth2Endpoints {
        authorization_url: authorization_url?,
        token_url: token_url?,
        userinfo_url: userinfo_url?,
        profile: profile?,
        issuer: issuer?,
    });
    Some((kind, own))
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
