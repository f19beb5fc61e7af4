//! Configuration: load `providers.toml`, expand `${ENV}`, validate.
//!
//! Every mistake in the file is reported at once, each with the file, line and key
//! and what would be valid ([`ConfigErrors`]).

mod connections;
mod duration;
mod expand;
mod limits;
mod origin;
mod provider;
mod raw;
mod source;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use connections::ConnectionLimits;
pub use duration::parse_duration;
pub use limits::{IpNet, LimitsConfig, Rate};
pub use origin::OriginPattern;
pub use provider::{presets, PresetInfo};

use source::Source;

/// Read and validate the config file at `path`, taking `${NAME}` values (and
/// `LATCH_LISTEN`) from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    load_str(path, &text, &|name| std::env::var(name).ok())
}

/// Validate config `text` as if read from `path_for_messages` (which also anchors
/// relative paths), taking environment variables from `env`.
pub fn load_str(
    path_for_messages: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let file = path_for_messages;
    let (root, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let errors = syntax
            .into_iter()
            .map(|e| ConfigError {
                file: file.to_path_buf(),
                line: e.span().map(|s| source::line_of(text, s.start)),
                key: String::new(),
                message: format!("TOML syntax error: {}", e.message().trim()),
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    let src = Source::new(text, root.into_inner());
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut ctx = validate::Ctx::new(&src, env, file);
    match validate::validate(&mut ctx, file, base_dir) {
        Some(config) if ctx.errors.is_empty() => Ok(config),
        _ => {
            let mut errors = ctx.errors;
            if errors.is_empty() {
                // Every rejection reports its reason; this only guards against a bug.
                errors.push(ConfigError {
                    file: file.to_path_buf(),
                    line: None,
                    key: String::new(),
                    message: "the configuration was rejected without a reason (a bug in latch)"
                        .to_string(),
                });
            }
            errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
            Err(ConfigErrors(errors))
        }
    }
}

/// Every error found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One error: `providers.toml:12: providers.corp.issuer: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key path (`providers.corp.issuer`, `server.trusted_origins[1]`);
    /// empty for errors about the whole file (unreadable, TOML syntax).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub limits: LimitsConfig,
    /// In the order of the file.
    pub providers: Vec<ProviderConfig>,
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

#[derive(Clone)]
pub struct StoreConfig {
    /// As written (after `${ENV}` expansion); the scheme is one of
    /// sqlite, redis, rediss, redis+sentinel, redis+cluster, memory.
    pub url: String,
    /// The config file's directory (absolute), for relative sqlite paths.
    pub base_dir: PathBuf,
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
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.url.clone(),
        }
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
    pub timeout: Duration,
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
    /// Sign in with Apple: what latch needs to mint its client secret.
    pub apple: Option<AppleKey>,
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
    /// GitHub organisation logins (preset github only).
    pub allowed_orgs: Vec<String>,
}

/// Sign in with Apple: the key that signs latch's client secret JWT.
/// `Debug` does not show the private key.
#[derive(Clone, Debug)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    /// PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`), read from
    /// `private_key_file` at load time.
    pub private_key: Secret,
}

// Built once at start-up; keeping the fields inline keeps the variants easy to match on.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum ProviderKind {
    /// OpenID Connect: discovery from `issuer` (https, or http on a loopback host).
    Oidc {
        issuer: url::Url,
        issuer_rule: IssuerRule,
    },
    /// Plain OAuth 2.0: explicit endpoints, profile from the userinfo JSON.
    OAuth2 {
        authorization_url: url::Url,
        token_url: url::Url,
        userinfo_url: url::Url,
        /// GitHub: `{api}/user/emails`.
        emails_url: Option<url::Url>,
        /// GitHub: the API root (for organisation membership checks).
        api_url: Option<url::Url>,
        profile: ProfileMapping,
        /// The RFC 9207 `iss` the callback must carry, if the provider sends one.
        issuer: Option<String>,
    },
    /// `preset = "dev"`: the development OpenID provider inside latch; only
    /// allowed when `server.public_url` is a loopback address.
    Dev,
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

#[cfg(test)]
mod preset_tests;
#[cfg(test)]
mod tests;
