//! TEMPORARY STUB — replaced by the config branch.
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub providers: Vec<ProviderConfig>,
}
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: url::Url,
    pub base_path: String,
    pub secret: Secret,
    pub trusted_origins: Vec<OriginPattern>,
    pub templates: Option<PathBuf>,
}
#[derive(Clone)]
pub struct Secret(Vec<u8>);
impl Secret {
    pub fn new(b: Vec<u8>) -> Self {
        Secret(b)
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
#[derive(Clone, Debug, PartialEq)]
pub struct OriginPattern(String);
impl OriginPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(Self(s.into()))
    }
    pub fn matches(&self, url: &url::Url) -> bool {
        url.origin().ascii_serialization() == self.0
    }
}
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: String,
    pub base_dir: PathBuf,
}
impl StoreConfig {
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.strip_prefix("sqlite://").map(|p| self.base_dir.join(p))
    }
}
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub max_age: Duration,
    pub idle_timeout: Duration,
    pub update_age: Duration,
    pub cookie_domain: Option<String>,
}
#[derive(Clone, Debug)]
pub struct TokensConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub audience: Vec<String>,
}
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub link_by_email: bool,
    pub timeout: Duration,
}
#[derive(Clone, Debug)]
pub enum ProviderKind {
    Oidc { issuer: url::Url },
    Dev,
}
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}
impl std::error::Error for ConfigErrors {}
pub fn load(_path: &std::path::Path) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors(vec!["stub".into()]))
}
