//! The validated configuration: what `load` returns and the rest of latch reads.

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::connections::ConnectionLimits;
use super::limits::{IpNet, LimitsConfig};
use super::origin::OriginPattern;

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub limits: LimitsConfig,
    /// `[audit]`: where the audit log goes (`None`: no audit log).
    pub audit: Option<AuditTarget>,
    /// In the order of the file.
    pub providers: Vec<ProviderConfig>,
    /// `[[policies]]`, in the order of the file: `/verify` applies the first that matches.
    pub policies: Vec<PolicyConfig>,
}

/// One `[[policies]]` entry (`crate::policy` applies it). Hosts, emails and domains are
/// lowercased; every list but `hosts` may be empty (no restriction of that kind).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Its place in the file (0-based), for log lines.
    pub index: usize,
    /// Exact host names, or `*.domain` (one or more labels before `.domain`).
    pub hosts: Vec<String>,
    /// Path prefixes, or patterns with `*` (any characters) that must match the whole path.
    pub paths: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub allowed_emails: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub allowed_providers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// A socket address (`IP:port`); `LATCH_LISTEN` overrides the file.
    pub listen: String,
    /// Origin only, path `/` (e.g. `http://localhost:3000/`).
    pub public_url: url::Url,
    /// `""` or `/segment[/segment...]`, no trailing `/`.
    pub base_path: String,
    pub secret: Secret,
    /// Earlier values of `secret`, still accepted for opening sealed records (never for
    /// sealing new ones), so a rotated secret keeps stored records readable.
    pub previous_secrets: Vec<Secret>,
    pub trusted_origins: Vec<OriginPattern>,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies); empty: none.
    pub trusted_proxies: Vec<IpNet>,
    /// Template override directory, absolute (resolved against the config file's directory).
    pub templates: Option<PathBuf>,
    /// Timeouts and caps of the accept loop.
    pub connections: ConnectionLimits,
    /// A second listener that alone serves `/metrics` (the main one answers 404 for it).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where refused callbacks send the browser instead of `{base_path}/error`.
    pub error_url: Option<url::Url>,
}

impl ServerConfig {
    /// The secrets that may open a sealed record: the current one first, then the previous
    /// ones. New records are always sealed with the first.
    pub fn keyring(&self) -> Vec<&[u8]> {
        std::iter::once(&self.secret)
            .chain(&self.previous_secrets)
            .map(Secret::expose)
            .collect()
    }
}

/// Secret bytes. `Debug` prints `Secret(redacted)`; there is no `Display`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// `[audit] file`: the audit log's destination (`crate::audit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditTarget {
    /// `file = "stderr"`: with the process's log.
    Stderr,
    /// A file appended to; relative paths are relative to the config file's directory.
    File(PathBuf),
}

#[derive(Clone)]
pub struct StoreConfig {
    /// As written (after `${ENV}` expansion); the scheme is one of
    /// sqlite, redis, rediss, redis+sentinel, redis+cluster, memory.
    pub url: String,
    /// The config file's directory (absolute), for relative sqlite paths.
    pub base_dir: PathBuf,
    /// At most this many session records kept in memory on a `redis://` store, kept exact by
    /// Redis's invalidations (`store::cache`); 0: off.
    pub session_cache: usize,
}

impl StoreConfig {
    /// The URL's scheme (`sqlite`, `redis`, ...).
    pub fn scheme(&self) -> &str {
        self.url.split_once("://").map_or("", |(s, _)| s)
    }

    /// For `sqlite://` URLs, the database file: `sqlite://latch.db` is relative
    /// to the config file's directory, `sqlite:///var/lib/latch.db` is absolute.
    /// A `?query` is not part of the path.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.url.strip_prefix("sqlite://")?;
        let file = rest.split('?').next().unwrap_or(rest);
        if file.is_empty() {
            return None;
        }
        Some(self.base_dir.join(file))
    }
}

impl StoreConfig {
    /// The URL with any password hidden (`redis://:pw@host` -> `redis://:***@host`), for
    /// printing.
    pub fn redacted_url(&self) -> String {
        // The store's own redaction: it covers every URL form, parseable or not.
        crate::store::redact_url(&self.url)
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.redacted_url())
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub max_age: Duration,
    pub idle_timeout: Duration,
    pub update_age: Duration,
    /// Lowercase, as written (a leading `.` is kept); `""` in the file gives `None`.
    pub cookie_domain: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TokensConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub audience: Vec<String>,
    /// How long one signing key signs before the next one takes over.
    pub key_rotation: Duration,
    /// How long a just-rotated refresh token may still be presented (racing requests from
    /// one browser) before its reuse counts as theft.
    pub refresh_grace: Duration,
    /// The audience `/provider-token` requires (never one of `audience`, so a token minted
    /// for an API cannot fetch the user's provider tokens).
    pub provider_token_audience: String,
    /// HTTP Basic clients of `POST /introspect`: (client id, secret).
    pub introspection_clients: Vec<(String, Secret)>,
}

impl TokensConfig {
    /// Every audience `/token` may mint for: the configured ones and the provider-token one.
    pub fn mintable_audiences(&self) -> impl Iterator<Item = &str> {
        self.audience
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.provider_token_audience.as_str()))
    }
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The table key; `[a-z0-9][a-z0-9_-]*`.
    pub id: String,
    pub name: String,
    /// The preset this provider was built from (`"github"`, `"apple"`, ...);
    /// `None` for `type = "oidc"` / `type = "oauth2"`.
    pub preset: Option<String>,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub link_by_email: bool,
    /// `GET /provider-token/<id>` hands the user's provider access token to apps; provider
    /// tokens are only kept (sealed) when this is on.
    pub expose_tokens: bool,
    /// `POST /signout` then sends the browser to the provider's `end_session_endpoint`.
    pub federated_signout: bool,
    /// The claim that lists the user's groups (default `groups`).
    pub groups_claim: String,
    pub timeout: Duration,
    /// The most latch reads of any answer from this provider (bytes).
    pub max_response_bytes: usize,
    /// Key `token_endpoint_auth_method`.
    pub token_auth: TokenAuth,
    /// Key `response_mode`.
    pub response_mode: ResponseMode,
    /// Who may sign in through this provider.
    pub access: AccessRules,
    /// A preset's logo id (the preset id); key `logo` may name another preset's
    /// logo. `None` shows a letter badge.
    pub logo: Option<String>,
    /// Extra query parameters on the authorization request (preset defaults
    /// first, then the file's `authorization_params`, which override by name).
    pub authorization_params: Vec<(String, String)>,
    /// What the preset validated of its own keys (GitHub's API root, Apple's signing key),
    /// read back by its hooks.
    pub own: Own,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAuth {
    /// `client_secret_basic` (the default): HTTP Basic authentication.
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `none`: a public client; only `client_id` is sent.
    None,
}

/// How the provider returns the authorization response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// `query` (the default): a GET to the callback.
    Query,
    /// `form_post`: a POST of a form to the callback.
    FormPost,
}

/// Sign-in restrictions; empty lists restrict nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// Lowercase domain names, no leading `@`.
    pub allowed_email_domains: Vec<String>,
    /// Lowercase email addresses.
    pub allowed_emails: Vec<String>,
    /// Organisation logins (presets that check membership: github).
    pub allowed_orgs: Vec<String>,
}

// Built once at start-up: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum ProviderKind {
    /// OpenID Connect: discovery from `issuer` (https, or http on a loopback host).
    Oidc {
        issuer: url::Url,
        issuer_rule: IssuerRule,
    },
    /// Plain OAuth 2.0: explicit endpoints, profile from the userinfo JSON.
    OAuth2(OAuth2Endpoints),
    /// `preset = "dev"`: the development OpenID provider inside latch; only
    /// allowed when `server.public_url` is a loopback address.
    Dev,
}

/// A plain OAuth 2.0 provider's endpoints and profile mapping.
#[derive(Clone, Debug)]
pub struct OAuth2Endpoints {
    pub authorization_url: url::Url,
    pub token_url: url::Url,
    pub userinfo_url: url::Url,
    pub profile: ProfileMapping,
    /// The RFC 9207 `iss` the callback must carry, if the provider sends one.
    pub issuer: Option<String>,
}

/// How an ID token's `iss` is checked against the configured issuer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerRule {
    /// `iss` must equal the issuer.
    Exact,
    /// Microsoft Entra ID multi-tenant endpoints (`common`, `organizations`,
    /// `consumers`): the discovered issuer contains `{tenantid}`, which is
    /// replaced by the token's `tid` claim before comparing.
    EntraTenantFromTid,
}

/// Where the profile fields are in the userinfo JSON: dotted paths such as
/// `"data.user.id"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileMapping {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Settings of a preset's own keys, for its hooks to read back ([`Own::get`]); empty for
/// presets without keys of their own and for `type = "oidc"` / `"oauth2"`.
#[derive(Clone, Default)]
pub struct Own(Option<Arc<dyn OwnSettings>>);

/// What [`Own`] may hold: any settings type of a preset.
pub trait OwnSettings: Any + std::fmt::Debug + Send + Sync {}
impl<T: Any + std::fmt::Debug + Send + Sync> OwnSettings for T {}

impl Own {
    pub fn new(settings: impl OwnSettings) -> Own {
        Own(Some(Arc::new(settings)))
    }

    /// The settings, if they are a `T`.
    pub fn get<T: OwnSettings>(&self) -> Option<&T> {
        let settings: &dyn Any = self.0.as_deref()?;
        settings.downcast_ref()
    }

    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Debug for Own {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(settings) => settings.fmt(f),
            None => f.write_str("None"),
        }
    }
}
