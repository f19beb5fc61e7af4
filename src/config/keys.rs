//! The keys of a `[providers.<id>]` table: what it is made from (`preset` or `type`), which
//! keys there are (the shared ones of `RawProvider`, then each preset's own), which apply to
//! what, and which are required.

use std::sync::OnceLock;

use toml::de::DeValue;
use toml::Spanned;

use super::ctx::Ctx;
use super::raw::{keys_of, RawProvider, RawTable};
use super::source::KeyPath;
use crate::provider::presets::{self, Kind, Preset};

/// Valid values of `type`.
const TYPES: &[&str] = &["oidc", "oauth2"];

/// The keys only `type = "oauth2"` and the OAuth 2.0 presets take.
const OAUTH2_KEYS: &[&str] = &["authorization_url", "token_url", "userinfo_url", "profile"];

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
    presets::ALL
        .iter()
        .map(|&p| {
            let base = Base::Preset(p);
            let required = required_keys(&base);
            PresetInfo {
                id: p.entry().id,
                label: p.entry().label,
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

/// Every key a provider may have besides `preset` and `type`, in the order `latch presets`
/// lists them: the shared ones of [`RawProvider`], then each preset's own.
fn all_keys() -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let shared = keys_of::<RawProvider>()
            .iter()
            .copied()
            .filter(|k| !matches!(*k, "preset" | "type"));
        let own = presets::ALL
            .iter()
            .flat_map(|p| p.own_keys().iter().map(|k| k.name));
        shared.chain(own).collect()
    })
}

/// The preset whose own key `key` is.
fn owner(key: &str) -> Option<&'static dyn Preset> {
    presets::ALL
        .iter()
        .copied()
        .find(|p| p.own_keys().iter().any(|k| k.name == key))
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a provider is made from.
#[derive(Clone, Copy)]
pub(super) enum Base {
    Preset(&'static dyn Preset),
    Oidc,
    OAuth2,
}

impl Base {
    pub fn preset(&self) -> Option<&'static dyn Preset> {
        match self {
            Base::Preset(p) => Some(*p),
            _ => None,
        }
    }
    pub fn kind_name(&self) -> &'static str {
        match self {
            Base::Preset(p) => match p.entry().kind {
                Kind::Dev => "dev",
                Kind::Oidc { .. } => "oidc",
                Kind::OAuth2 { .. } => "oauth2",
            },
            Base::Oidc => "oidc",
            Base::OAuth2 => "oauth2",
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Base::Preset(p) => format!("preset \"{}\"", p.entry().id),
            Base::Oidc => "type \"oidc\"".to_string(),
            Base::OAuth2 => "type \"oauth2\"".to_string(),
        }
    }
}

/// `applies only to preset "x"` (or to one of several).
fn only(ids: &[&str]) -> String {
    match ids {
        [id] => format!("applies only to preset \"{id}\""),
        ids => format!("applies only to the presets {}", quoted(ids)),
    }
}

/// `Ok(())` when `key` applies to `base`, else where it does apply.
pub(super) fn key_scope(key: &str, base: &Base) -> Result<(), String> {
    if let Some(why) = base.preset().and_then(|p| p.refuses(key)) {
        return Err(why.to_string());
    }
    if OAUTH2_KEYS.contains(&key) {
        if base.kind_name() == "oauth2" {
            return Ok(());
        }
        let oauth2: Vec<_> = presets::ALL
            .iter()
            .filter(|p| matches!(p.entry().kind, Kind::OAuth2 { .. }))
            .map(|p| p.entry().id)
            .collect();
        return Err(format!(
            "applies only to type \"oauth2\" and the presets {} (an OpenID Connect provider's endpoints come from discovery)",
            quoted(&oauth2)
        ));
    }
    if key == "groups_claim" && base.kind_name() == "oauth2" {
        return Err(
            "applies only to OpenID Connect providers (type \"oidc\", the OpenID presets and dev): groups come from the ID token or userinfo"
                .to_string(),
        );
    }
    if key == "federated_signout" && base.kind_name() != "oidc" {
        return Err(
            "applies only to OpenID Connect providers (type \"oidc\" and the OpenID presets): the end-session endpoint comes from discovery"
                .to_string(),
        );
    }
    if key == "allowed_orgs" && base.preset().and_then(|p| p.orgs()).is_none() {
        return Err(only(&presets::org_presets()));
    }
    match owner(key) {
        Some(p) if base.preset().is_none_or(|b| b.entry().id != p.entry().id) => {
            Err(only(&[p.entry().id]))
        }
        _ => Ok(()),
    }
}

pub(super) fn valid_keys(base: &Base) -> Vec<&'static str> {
    all_keys()
        .iter()
        .copied()
        .filter(|k| key_scope(k, base).is_ok())
        .collect()
}

fn required_keys(base: &Base) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let entry = base.preset().map(|p| p.entry());
    if entry.and_then(|e| e.client_id).is_none() {
        keys.push("client_id");
    }
    if key_scope("client_secret", base).is_ok() {
        keys.push("client_secret");
    }
    match (base, entry.map(|e| e.kind)) {
        (Base::Oidc, _) | (_, Some(Kind::Oidc { issuer: None, .. })) => keys.push("issuer"),
        (Base::OAuth2, _) => keys.extend(OAUTH2_KEYS),
        _ => {}
    }
    if let Some(p) = base.preset() {
        keys.extend(p.own_keys().iter().filter(|k| k.required).map(|k| k.name));
    }
    keys
}

/// Reads `[providers.<id>]` as written, reporting every key that is no provider's and every
/// value of the wrong type; the rest is still read.
pub(crate) fn read<'i>(
    ctx: &mut Ctx<'_, 'i>,
    value: &Spanned<DeValue<'i>>,
    path: &KeyPath,
) -> Option<RawTable> {
    let mut value = value.clone();
    let mut present = Vec::new();
    let mut own = Vec::new();
    if let DeValue::Table(table) = value.get_mut() {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut drop = Vec::new();
        for (k, v) in entries {
            let key = k.get_ref().as_ref();
            let known = all_keys().iter().find(|&&known| known == key).copied();
            match (key, known, owner(key)) {
                ("preset" | "type", _, _) => continue,
                (_, None, _) => {
                    let expected = ["preset", "type"].iter().chain(all_keys());
                    let expected: Vec<_> = expected.map(|k| format!("`{k}`")).collect();
                    ctx.err(
                        &path.key(key),
                        format!(
                            "unknown field `{key}`, expected one of {}",
                            expected.join(", ")
                        ),
                    );
                    drop.push(key.to_string());
                    continue;
                }
                (_, Some(name), Some(_)) => {
                    if let Some(s) = ctx.lenient::<String>(v, &path.key(name)) {
                        own.push((name, s));
                    }
                    drop.push(key.to_string());
                }
                _ => {}
            }
            present.push(key.to_string());
        }
        for key in drop {
            table.remove(key.as_str());
        }
    }
    let raw = ctx.lenient::<RawProvider>(&value, path)?;
    Some(RawTable { raw, present, own })
}

/// `preset` or `type`: exactly one of them, naming a preset or a type.
pub(super) fn base(ctx: &mut Ctx, path: &KeyPath, raw: &RawProvider) -> Option<Base> {
    let preset_names = || {
        presets::ALL
            .iter()
            .map(|p| p.entry().id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let preset = ctx.opt_string(&path.key("preset"), raw.preset.as_deref());
    let kind = ctx.opt_string(&path.key("type"), raw.kind.as_deref());
    match (preset, kind) {
        (Some(Some(_)), Some(Some(_))) => {
            ctx.err(
                &path.key("type"),
                "set either `preset` or `type`, not both: a preset already determines the type",
            );
            None
        }
        (Some(Some(p)), Some(None)) => match presets::find(&p) {
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
                    format!("unknown type \"{t}\"; valid types: {}", TYPES.join(", ")),
                );
                None
            }
        },
        (None, _) | (_, None) => None, // expansion error already reported
        (Some(None), Some(None)) => {
            ctx.err(
                path,
                format!(
                    "a provider needs either `type = \"oidc\"` (with `issuer`), `type = \"oauth2\"` (with endpoints and a profile table) or `preset = \"<name>\"` (available presets: {})",
                    preset_names()
                ),
            );
            None
        }
    }
}
