//! `[providers.<id>]` tables: presets, types and their validation.

use std::time::Duration;

use url::Url;

use super::raw::RawProvider;
use super::source::KeyPath;
use super::validate::{is_loopback, Ctx};
use super::{ProviderConfig, ProviderKind, Secret};

/// What kind of provider a preset makes. Later presets (google, github, ...) add
/// variants such as `Oidc { issuer }` or `OAuth2 { endpoints, profile }`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PresetKind {
    /// The development OpenID provider mounted inside latch.
    Dev,
}

/// A preset fills in defaults; any key set beside it in the file overrides them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: PresetKind,
    pub client_id: Option<&'static str>,
    pub scopes: &'static [&'static str],
}

/// The preset table. Add an entry here (and a `PresetKind` if needed) for a new preset.
pub(crate) const PRESETS: &[Preset] = &[Preset {
    id: "dev",
    label: "Development login",
    kind: PresetKind::Dev,
    client_id: Some("latch-dev"),
    scopes: DEFAULT_SCOPES,
}];

/// Valid values of `type`.
pub(crate) const TYPES: &[&str] = &["oidc"];

const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn preset_names() -> String {
    PRESETS.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
}

fn type_names() -> String {
    TYPES.to_vec().join(", ")
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

enum Base {
    Preset(&'static Preset),
    Oidc,
}

pub(crate) fn provider(
    ctx: &mut Ctx,
    id: &str,
    raw: RawProvider,
    public_url: Option<&Url>,
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
        (Some(None), Some(Some(t))) => {
            if t == "oidc" {
                Some(Base::Oidc)
            } else {
                let msg = if t == "oauth2" {
                    format!(
                        "type \"oauth2\" is not supported yet; valid types: {}",
                        type_names()
                    )
                } else {
                    format!("unknown type \"{t}\"; valid types: {}", type_names())
                };
                ctx.err(&path.key("type"), msg);
                None
            }
        }
        (None, _) | (_, None) => None, // expansion error already reported
        (Some(None), Some(None)) => {
            ctx.err(
                &path,
                format!(
                    "a provider needs either `type = \"oidc\"` (with `issuer`) or `preset = \"<name>\"` (available presets: {})",
                    preset_names()
                ),
            );
            None
        }
    };
    let preset = match &base {
        Some(Base::Preset(p)) => Some(*p),
        _ => None,
    };

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

    let issuer = ctx.opt_string(&path.key("issuer"), raw.issuer.as_deref());
    let kind = match (&base, issuer) {
        (_, None) => None,
        (None, _) => None,
        (Some(Base::Preset(p)), Some(issuer)) => match p.kind {
            PresetKind::Dev => dev_kind(ctx, &path, issuer.is_some(), public_url),
        },
        (Some(Base::Oidc), Some(None)) => {
            ctx.err(
                &path,
                "`issuer` is required with type = \"oidc\": the URL that serves /.well-known/openid-configuration, e.g. \"https://accounts.example.com\"",
            );
            None
        }
        (Some(Base::Oidc), Some(Some(issuer))) => match parse_issuer(&issuer) {
            Ok(issuer) => Some(ProviderKind::Oidc { issuer }),
            Err(e) => {
                ctx.err(&path.key("issuer"), e);
                None
            }
        },
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
                if base.is_some() {
                    ctx.err(
                        &path,
                        "`client_id` is required: the client id registered at the provider",
                    );
                }
                None
            }
        },
        None => None,
    };

    let client_secret = match &raw.client_secret {
        None => Some(None),
        Some(s) => ctx
            .string(&path.key("client_secret"), &s.0)
            .map(|s| Some(Secret::new(s.into_bytes()))),
    };

    let scopes = match ctx.strings(&path.key("scopes"), raw.scopes.as_deref()) {
        Some(Some(s)) => Some(s),
        Some(None) => Some(
            preset
                .map(|p| p.scopes)
                .unwrap_or(DEFAULT_SCOPES)
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        None => None,
    };
    let scopes = scopes.and_then(|scopes| {
        let mut good = true;
        for (i, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                ctx.err(
                    &path.key("scopes").index(i),
                    format!("invalid scope \"{s}\": a scope is one word without spaces"),
                );
                good = false;
            }
        }
        // Every kind so far is OpenID Connect.
        if base.is_some() && !scopes.iter().any(|s| s == "openid") {
            ctx.err(
                &path.key("scopes"),
                "must contain \"openid\" for an OpenID Connect provider, e.g. [\"openid\", \"email\", \"profile\"]",
            );
            good = false;
        }
        good.then_some(scopes)
    });

    let timeout = ctx.duration(&path.key("timeout"), raw.timeout.as_ref(), DEFAULT_TIMEOUT);

    if !ok {
        return None;
    }
    Some(ProviderConfig {
        id: id.to_string(),
        name: name?,
        kind: kind?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes: scopes?,
        link_by_email: raw.link_by_email.unwrap_or(false),
        timeout: timeout?,
    })
}

fn dev_kind(
    ctx: &mut Ctx,
    path: &KeyPath,
    has_issuer: bool,
    public_url: Option<&Url>,
) -> Option<ProviderKind> {
    if has_issuer {
        ctx.err(
            &path.key("issuer"),
            "`issuer` does not apply to preset \"dev\": the dev provider is built into latch",
        );
        return None;
    }
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

fn parse_issuer(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| {
        format!("\"{s}\" is not a valid URL ({e}); expected e.g. \"https://accounts.example.com\"")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an issuer URL must not contain a user name or password".to_string());
    }
    let host = url.host().ok_or_else(|| format!("\"{s}\" has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "\"{s}\": the issuer must use https (http is allowed only for localhost, 127.0.0.0/8 and [::1])"
            ))
        }
        other => return Err(format!("\"{s}\": scheme must be https, not \"{other}\"")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("\"{s}\": an issuer has no query or fragment"));
    }
    Ok(url)
}
