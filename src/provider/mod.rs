//! Identity providers: what is configured, and the client that talks to each.
//! Every provider kind produces the same `Profile` for the flow.
pub mod dev;
pub mod http;
pub mod oidc;

use crate::config::{Config, ProviderConfig, ProviderKind, Secret};
use oidc::OidcClient;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
}

/// Tokens from a provider's token endpoint.
pub struct TokenSet {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

pub struct Provider {
    pub config: ProviderConfig,
    /// The redirect URI registered at the provider.
    pub callback_url: String,
    pub signin_url: String,
    pub client: OidcClient,
    client_secret: Option<Secret>,
    /// The built-in development provider behind this entry, if it is one.
    pub dev: Option<Arc<dev::DevProvider>>,
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn kind_name(&self) -> &'static str {
        "oidc"
    }

    pub fn client_secret(&self) -> Option<&[u8]> {
        self.client_secret.as_ref().map(|s| s.expose())
    }
}

/// The configured providers, in the order of the file.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    by_id: HashMap<String, Arc<Provider>>,
}

/// `public_url` + `base_path` + `path`, as users see it.
pub fn public_route(config: &Config, path: &str) -> String {
    format!(
        "{}{}{}",
        config.server.public_url.as_str().trim_end_matches('/'),
        config.server.base_path,
        path
    )
}

impl Providers {
    /// Builds clients for every provider. `local_addr` is where this process listens; the
    /// development provider's back channel (discovery, token, JWKS) is reached there.
    pub fn new(config: &Config, http: reqwest::Client, local_addr: SocketAddr) -> Self {
        let mut list = Vec::new();
        for pc in &config.providers {
            let callback_url = public_route(config, &format!("/callback/{}", pc.id));
            let signin_url = public_route(config, &format!("/signin/{}", pc.id));
            let (issuer, discovery_base, client_secret, dev) = match &pc.kind {
                ProviderKind::Oidc { issuer, .. } => {
                    (issuer.clone(), None, pc.client_secret.clone(), None)
                }
                ProviderKind::OAuth2 { .. } => {
                    // No OAuth 2.0 client yet: the provider is left out, not half-offered.
                    tracing::warn!(
                        provider = %pc.id,
                        "plain OAuth 2.0 providers (type \"oauth2\", presets github, discord, facebook) are not supported by this build yet; this provider is not offered"
                    );
                    continue;
                }
                ProviderKind::Dev => {
                    let path = format!("{}/dev/{}", config.server.base_path, pc.id);
                    let issuer = Url::parse(&public_route(config, &format!("/dev/{}", pc.id)))
                        .expect("public_url and base_path were validated");
                    let back_channel = dev::back_channel_base(local_addr, &path);
                    let provider = Arc::new(dev::DevProvider::new(
                        issuer.clone(),
                        back_channel.clone(),
                        pc.client_id.clone(),
                        callback_url.clone(),
                    ));
                    let secret = Secret::new(provider.client_secret().as_bytes().to_vec());
                    (issuer, Some(back_channel), Some(secret), Some(provider))
                }
            };
            let client = OidcClient::new(
                issuer,
                discovery_base,
                pc.client_id.clone(),
                http.clone(),
                pc.timeout,
            );
            list.push(Arc::new(Provider {
                config: pc.clone(),
                callback_url,
                signin_url,
                client,
                client_secret,
                dev,
            }));
        }
        let by_id = list
            .iter()
            .map(|p| (p.config.id.clone(), p.clone()))
            .collect();
        Providers { list, by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }
}
