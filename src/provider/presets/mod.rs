//! Presets: one file each, holding all latch knows of one provider: its table entry
//! (endpoints or issuer, scopes, label), the keys only it takes and their validation, and
//! its hooks into the sign-in (GitHub's email and organisation checks, Apple's client-secret
//! JWT and `user` field, Entra's tenant issuer, Discord's avatar, the dev provider).
//!
//! The config loader (`config::provider`) and the client (`provider::Provider`) loop over
//! [`ALL`] through the [`Preset`] trait and never name a preset. Adding a preset is a new file
//! here and one line in the `presets!` list below.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::http::Budget;
use super::oidc::OidcClient;
use super::profile::{CallbackExtras, Profile, TokenSet};
use crate::config::ctx::Ctx;
use crate::config::source::KeyPath;
use crate::config::types::{IssuerRule, Own, ProviderConfig, ResponseMode, Secret, TokenAuth};
use crate::error::{AuthError, ErrorCode};

macro_rules! presets {
    ($($module:ident :: $preset:ident,)*) => {
        $(pub mod $module;)*

        /// Every preset, in the order `latch presets` lists them.
        pub static ALL: &[&dyn Preset] = &[$(&$module::$preset),*];
    };
}

presets! {
    google::Google,
    github::GitHub,
    gitlab::GitLab,
    entra::Entra,
    apple::Apple,
    discord::Discord,
    slack::Slack,
    linkedin::LinkedIn,
    facebook::Facebook,
    twitch::Twitch,
    okta::Okta,
    auth0::Auth0,
    keycloak::Keycloak,
    dev::Dev,
}

/// The preset named `id`.
pub fn find(id: &str) -> Option<&'static dyn Preset> {
    ALL.iter().copied().find(|p| p.entry().id == id)
}

/// A preset's defaults; any key set beside `preset` in the file overrides them.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub client_id: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub token_auth: TokenAuth,
    pub response_mode: ResponseMode,
    pub authorization_params: &'static [(&'static str, &'static str)],
    /// Whether latch has a logo for this preset (its id).
    pub logo: bool,
}

/// What the entries start from (`..OIDC`): OpenID Connect with the usual scopes.
pub const OIDC: Entry = Entry {
    id: "",
    label: "",
    kind: Kind::Oidc {
        issuer: None,
        example: "",
    },
    client_id: None,
    scopes: &["openid", "email", "profile"],
    token_auth: TokenAuth::ClientSecretBasic,
    response_mode: ResponseMode::Query,
    authorization_params: &[],
    logo: true,
};

/// What kind of provider a preset makes.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// The development provider built into latch ([`Preset::built_in`]).
    Dev,
    /// OpenID Connect with discovery. `issuer: None`: the file must set `issuer`
    /// (`example` shows what it looks like).
    Oidc {
        issuer: Option<&'static str>,
        example: &'static str,
    },
    /// Plain OAuth 2.0 with fixed endpoints ([`Preset::endpoints`] may make them from own keys).
    OAuth2 {
        authorization_url: &'static str,
        token_url: &'static str,
        userinfo_url: &'static str,
        profile: StaticProfile,
        issuer: Option<&'static str>,
    },
}

impl Entry {
    /// An OpenID Connect preset; `issuer: None` makes the file set it.
    pub const fn oidc(
        id: &'static str,
        label: &'static str,
        issuer: Option<&'static str>,
    ) -> Entry {
        Entry {
            id,
            label,
            kind: Kind::Oidc {
                issuer,
                example: "",
            },
            ..OIDC
        }
    }

    /// An OpenID Connect preset whose `issuer` the file must set, as in `example`.
    pub const fn issuer_required(
        id: &'static str,
        label: &'static str,
        example: &'static str,
    ) -> Entry {
        Entry {
            kind: Kind::Oidc {
                issuer: None,
                example,
            },
            ..Entry::oidc(id, label, None)
        }
    }

    /// A plain OAuth 2.0 preset: its authorization, token and userinfo endpoints, its profile
    /// mapping, the RFC 9207 `iss` of its callbacks (if it sends one) and its scopes.
    pub const fn oauth2(
        id: &'static str,
        label: &'static str,
        [authorization_url, token_url, userinfo_url]: [&'static str; 3],
        profile: StaticProfile,
        issuer: Option<&'static str>,
        scopes: &'static [&'static str],
    ) -> Entry {
        Entry {
            id,
            label,
            kind: Kind::OAuth2 {
                authorization_url,
                token_url,
                userinfo_url,
                profile,
                issuer,
            },
            scopes,
            ..OIDC
        }
    }
}

/// A profile mapping in an entry: where the userinfo JSON has each field.
#[derive(Clone, Copy, Debug)]
pub struct StaticProfile {
    pub id: &'static str,
    pub email: Option<&'static str>,
    pub email_verified: Option<&'static str>,
    pub name: Option<&'static str>,
    pub image: Option<&'static str>,
}

impl StaticProfile {
    /// The fields of the id, email, email_verified, name and image.
    pub const fn new(
        id: &'static str,
        email: Option<&'static str>,
        email_verified: Option<&'static str>,
        name: Option<&'static str>,
        image: Option<&'static str>,
    ) -> StaticProfile {
        StaticProfile {
            id,
            email,
            email_verified,
            name,
            image,
        }
    }
}

/// A preset that is its entry alone: `entry_only!(Google, Entry::oidc(...))`.
macro_rules! entry_only {
    ($preset:ident, $entry:expr) => {
        pub struct $preset;

        impl $crate::provider::presets::Preset for $preset {
            fn entry(&self) -> &'static $crate::provider::presets::Entry {
                static ENTRY: $crate::provider::presets::Entry = $entry;
                &ENTRY
            }
        }
    };
}
pub(crate) use entry_only;

/// A key only one preset takes (a string).
#[derive(Clone, Copy, Debug)]
pub struct OwnKey {
    pub name: &'static str,
    /// Must the file set it?
    pub required: bool,
}

impl OwnKey {
    pub const fn optional(name: &'static str) -> OwnKey {
        OwnKey {
            name,
            required: false,
        }
    }

    pub const fn required(name: &'static str) -> OwnKey {
        OwnKey {
            name,
            required: true,
        }
    }
}

/// Organisation membership rules (`allowed_orgs`), for a preset that can check them.
pub struct Orgs {
    /// The scope the check needs; added to the default scopes when `allowed_orgs` is set.
    pub scope: &'static str,
    /// Is this an organisation login? `Err` says what one looks like.
    pub check: fn(&str) -> Result<(), String>,
}

/// A provider's table as a preset's validation sees it: its own keys, and where to report.
pub struct Table<'t, 'a, 'i> {
    pub(crate) ctx: &'t mut Ctx<'a, 'i>,
    /// `providers.<id>`.
    pub(crate) path: &'t KeyPath,
    /// The own keys written in the file, before `${ENV}` expansion.
    pub(crate) own: &'t [(&'static str, String)],
    pub(crate) public_url: Option<&'t Url>,
    /// The config file's directory, for relative paths.
    pub(crate) base_dir: &'t Path,
}

impl Table<'_, '_, '_> {
    /// An own key after `${ENV}` expansion: `Some(None)` when not written, `None` after an
    /// error (reported).
    pub fn string(&mut self, key: &str) -> Option<Option<String>> {
        let raw = self.own.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
        self.ctx
            .opt_string(&self.path.key(key), raw.map(String::as_str))
    }

    /// Reports `message` at `key` of this provider (its table when `key` is `""`).
    pub fn err(&mut self, key: &str, message: impl Into<String>) {
        let path = match key {
            "" => self.path.clone(),
            key => self.path.key(key),
        };
        self.ctx.err(&path, message);
    }
}

/// OAuth 2.0 endpoints a preset makes from its own keys (GitHub Enterprise's `base_url`).
pub struct Endpoints {
    /// Each default, and the key a mistake in it is reported at (`""`: the table).
    pub authorization_url: (String, &'static str),
    pub token_url: (String, &'static str),
    pub userinfo_url: (String, &'static str),
    pub issuer: Option<String>,
    /// The preset's settings of those keys, for its hooks.
    pub own: Own,
}

/// Where a built-in provider is served.
pub struct Mount<'a> {
    /// `public_url` + `base_path`, without a trailing `/`.
    pub public_base: String,
    pub base_path: &'a str,
    /// Where this process listens (its back channel).
    pub local_addr: SocketAddr,
    pub callback_url: &'a str,
}

/// A built-in provider: the client latch talks to it with, its secret, and itself.
pub struct BuiltIn {
    pub oidc: OidcClient,
    pub client_secret: Secret,
    pub dev: Arc<dev::DevProvider>,
}

/// A client secret made afresh for every call (Apple's JWT).
pub trait MintSecret: Send + Sync {
    fn mint(&self) -> String;
}

/// What a hook may use to call the provider.
pub struct Call<'a> {
    pub http: &'a reqwest::Client,
    pub budget: Budget,
    pub tokens: &'a TokenSet,
    pub own: &'a Own,
}

/// What a sign-in brought besides the profile: for the profile hook.
pub struct SignIn<'a> {
    pub call: Call<'a>,
    /// The userinfo JSON of an OAuth 2.0 provider.
    pub userinfo: Option<&'a Value>,
    pub callback: &'a CallbackExtras<'a>,
}

#[async_trait]
pub trait Preset: Sync {
    fn entry(&self) -> &'static Entry;

    // Configuration.

    /// Keys only this preset takes, in the order `latch presets` lists them.
    fn own_keys(&self) -> &'static [OwnKey] {
        // (cargo-mutants' `Vec::leak(Vec::new())` here is this same empty list.)
        &[]
    }

    /// Why a key every provider has does not apply to this preset, if it does not.
    fn refuses(&self, _key: &str) -> Option<&'static str> {
        None
    }

    /// Organisation rules, if the preset checks `allowed_orgs`.
    fn orgs(&self) -> Option<&'static Orgs> {
        None
    }

    /// A built-in provider's check of the server it runs in; `false` after reporting why not.
    fn check_server(&self, _t: &mut Table) -> bool {
        // Called only for a `Kind::Dev` entry (`config::provider`), and the dev preset has
        // its own: this default is never reached, so making it `false` changes nothing.
        true
    }

    /// OpenID Connect: the issuer made from own keys (Entra's `tenant`), unless `issuer` is
    /// `written`; `None` after an error.
    fn issuer(&self, _t: &mut Table, _written: bool) -> Option<Option<String>> {
        Some(None)
    }

    /// How ID tokens' `iss` is checked against `issuer`.
    fn issuer_rule(&self, _issuer: &Url) -> IssuerRule {
        IssuerRule::Exact
    }

    /// OAuth 2.0: endpoints made from own keys; `None` after an error.
    fn endpoints(&self, _t: &mut Table) -> Option<Option<Endpoints>> {
        Some(None)
    }

    /// The settings of own keys not covered above (Apple's key); `None` after an error.
    fn settings(&self, _t: &mut Table) -> Option<Own> {
        // (cargo-mutants' `Some(Default::default())` here is this same value.)
        Some(Own::default())
    }

    // Running.

    /// The client of the provider built into latch ([`Kind::Dev`]).
    fn built_in(
        &self,
        _pc: &ProviderConfig,
        _http: &reqwest::Client,
        _at: Mount,
    ) -> Option<BuiltIn> {
        None
    }

    /// A client secret minted for every call instead of a configured one.
    fn mint_secret(&self, _pc: &ProviderConfig) -> Result<Option<Box<dyn MintSecret>>, String> {
        Ok(None)
    }

    /// Completes the profile the ID token or the userinfo answer gave.
    async fn profile(
        &self,
        _profile: &mut Profile,
        _sign_in: &SignIn<'_>,
    ) -> Result<(), AuthError> {
        Ok(())
    }

    /// Is the user in one of `orgs`? (Only for presets with [`Preset::orgs`].)
    async fn check_orgs(&self, _orgs: &[String], _call: &Call<'_>) -> Result<(), AuthError> {
        Err(AuthError::new(
            ErrorCode::Configuration,
            format!(
                "allowed_orgs needs the {} preset",
                org_presets().join(" or ")
            ),
        ))
    }
}

/// The presets that check `allowed_orgs`.
pub fn org_presets() -> Vec<&'static str> {
    ALL.iter()
        .filter(|p| p.orgs().is_some())
        .map(|p| p.entry().id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_preset_without_organisation_rules_refuses_allowed_orgs() {
        // The config refuses `allowed_orgs` beside such a preset; should a provider reach
        // the check anyway, it fails closed, naming the presets that can check it.
        crate::install_crypto_provider();
        let tokens = TokenSet {
            access_token: "at".into(),
            id_token: None,
            refresh_token: None,
            expires_in: None,
            scope: None,
        };
        let call = Call {
            http: &reqwest::Client::new(),
            budget: Budget {
                timeout: Duration::from_secs(1),
                max_body: 1024,
            },
            tokens: &tokens,
            own: &Own::default(),
        };
        let google = find("google").unwrap();
        assert!(google.orgs().is_none());
        let e = google
            .check_orgs(&["acme".into()], &call)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Configuration);
        assert!(e.reason.contains("github"), "{}", e.reason);
    }
}
