//! Identity providers: what is configured, and the client that talks to each. Whatever the
//! kind (OpenID Connect, plain OAuth 2.0, GitHub, Apple, the dev provider), the flow gets
//! the same `Profile`.
pub mod access;
pub mod apple;
pub mod dev;
pub mod github;
pub mod http;
pub mod mapping;
pub mod oidc;
pub mod token;

use crate::config::{Config, ProviderConfig, ProviderKind, ResponseMode, Secret, TokenAuth};
use crate::error::{AuthError, ErrorCode};
use http::CallError;
use oidc::{profile_from_claims, OidcClient, VerifyError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use token::{ExchangeError, TokenClient};
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

/// What the callback brought besides the code.
pub struct CallbackExtras<'a> {
    /// Apple's one-time `user` form field.
    pub apple_user: Option<&'a str>,
}

pub struct Provider {
    pub config: ProviderConfig,
    /// The redirect URI registered at the provider.
    pub callback_url: String,
    pub signin_url: String,
    /// Set for OpenID Connect providers (including the dev provider).
    oidc: Option<OidcClient>,
    http: reqwest::Client,
    client_secret: Option<Secret>,
    apple: Option<apple::AppleSecret>,
    /// The built-in development provider behind this entry, if it is one.
    pub dev: Option<Arc<dev::DevProvider>>,
    /// With `expose_tokens`: the server secret (first: it seals) and the previous ones (they
    /// still open), for the provider's tokens at rest. `None`: tokens are not kept.
    token_secrets: Option<Vec<Secret>>,
}

/// Maps a failed provider call to the code users see.
pub fn call_error(err: CallError) -> AuthError {
    let code = match err {
        CallError::Timeout { .. } => ErrorCode::ProviderTimeout,
        _ => ErrorCode::ProviderError,
    };
    AuthError::new(code, err.to_string())
}

fn exchange_error(err: ExchangeError) -> AuthError {
    match err {
        ExchangeError::OAuth { ref error, .. } => {
            let code = match error.as_str() {
                "invalid_client" | "unauthorized_client" | "incorrect_client_credentials" => {
                    ErrorCode::Configuration
                }
                _ => ErrorCode::OAuthCallbackError,
            };
            AuthError::new(code, err.to_string())
        }
        ExchangeError::Call(call) => call_error(call),
    }
}

impl Provider {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Auth.js's provider `type`.
    pub fn kind_name(&self) -> &'static str {
        match self.config.kind {
            ProviderKind::OAuth2 { .. } => "oauth",
            ProviderKind::Oidc { .. } | ProviderKind::Dev => "oidc",
        }
    }

    /// The secrets that seal (first) and open this provider's kept tokens; `None` when the
    /// provider does not set `expose_tokens` (its tokens are then not kept at all).
    pub fn token_secrets(&self) -> Option<Vec<&[u8]>> {
        self.token_secrets
            .as_ref()
            .map(|list| list.iter().map(Secret::expose).collect())
    }

    pub fn uses_form_post(&self) -> bool {
        self.config.response_mode == ResponseMode::FormPost
    }

    /// The provider's authorization request URL for one flow.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<Url, AuthError> {
        let mut url = match (&self.oidc, &self.config.kind) {
            (Some(oidc), _) => oidc
                .discovery()
                .await
                .map_err(call_error)?
                .authorization_endpoint
                .clone(),
            (
                None,
                ProviderKind::OAuth2 {
                    authorization_url, ..
                },
            ) => authorization_url.clone(),
            (None, _) => unreachable!("every non-OAuth2 provider has an OIDC client"),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.callback_url)
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            if !self.config.scopes.is_empty() {
                q.append_pair("scope", &self.config.scopes.join(" "));
            }
            if self.oidc.is_some() {
                q.append_pair("nonce", nonce);
            }
            if self.uses_form_post() {
                q.append_pair("response_mode", "form_post");
            }
            for (k, v) in &self.config.authorization_params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// RFC 9207: the callback's `iss` must name this provider; a provider that advertises the
    /// parameter must send it.
    pub async fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), AuthError> {
        let mismatch = |iss: &str| {
            AuthError::new(
                ErrorCode::IssuerMismatch,
                format!(
                    "callback iss {iss:?} does not name provider {:?}",
                    self.id()
                ),
            )
        };
        match (&self.oidc, &self.config.kind) {
            (Some(oidc), _) => match iss {
                Some(iss) => {
                    if !oidc
                        .callback_issuer_matches(iss)
                        .await
                        .map_err(call_error)?
                    {
                        return Err(mismatch(iss));
                    }
                }
                None => {
                    let discovery = oidc.discovery().await.map_err(call_error)?;
                    if discovery.authorization_response_iss_parameter_supported {
                        return Err(AuthError::new(
                            ErrorCode::IssuerMismatch,
                            "provider advertises RFC 9207 but the callback has no iss parameter",
                        ));
                    }
                }
            },
            (None, ProviderKind::OAuth2 { issuer, .. }) => {
                if let (Some(iss), Some(expected)) = (iss, issuer) {
                    if iss.trim_end_matches('/') != expected.trim_end_matches('/') {
                        return Err(mismatch(iss));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn client_secret(&self) -> Option<String> {
        match &self.apple {
            Some(apple) => Some(apple.mint()),
            None => self
                .client_secret
                .as_ref()
                .map(|s| String::from_utf8_lossy(s.expose()).into_owned()),
        }
    }

    /// A client for the token endpoint, with the client authentication to use there.
    async fn token_client(&self) -> Result<TokenClient<'_>, AuthError> {
        let (endpoint, auth) = match (&self.oidc, &self.config.kind) {
            (Some(oidc), _) => {
                let discovery = oidc.discovery().await.map_err(call_error)?;
                let auth = oidc
                    .token_auth(self.config.token_auth)
                    .await
                    .map_err(call_error)?;
                (discovery.token_endpoint.clone(), auth)
            }
            (None, ProviderKind::OAuth2 { token_url, .. }) => {
                (token_url.clone(), self.config.token_auth)
            }
            (None, _) => unreachable!("every non-OAuth2 provider has an OIDC client"),
        };
        let client_secret = match auth {
            TokenAuth::None => None,
            _ => self.client_secret(),
        };
        Ok(TokenClient {
            http: &self.http,
            endpoint,
            client_id: &self.config.client_id,
            auth,
            client_secret,
            budget: http::Budget::of(&self.config),
        })
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenSet, AuthError> {
        self.token_client()
            .await?
            .exchange_code(code, verifier, &self.callback_url)
            .await
            .map_err(exchange_error)
    }

    /// A refresh-token grant (RFC 6749 section 6) at the token endpoint, authenticated like
    /// the code exchange. A refused refresh token (`invalid_grant`) is `ProviderTokenExpired`:
    /// the user must sign in again.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, AuthError> {
        self.token_client()
            .await?
            .refresh(refresh_token)
            .await
            .map_err(|err| match err {
                ExchangeError::OAuth { ref error, .. } => {
                    let code = match error.as_str() {
                        "invalid_grant" => ErrorCode::ProviderTokenExpired,
                        "invalid_client"
                        | "unauthorized_client"
                        | "incorrect_client_credentials" => ErrorCode::Configuration,
                        _ => ErrorCode::ProviderError,
                    };
                    AuthError::new(code, format!("refresh: {err}"))
                }
                ExchangeError::Call(call) => call_error(call),
            })
    }

    /// Exchanges the code and works out who signed in.
    pub async fn authenticate(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        extras: CallbackExtras<'_>,
    ) -> Result<(Profile, TokenSet), AuthError> {
        let tokens = self.exchange(code, verifier).await?;
        let mut profile = match (&self.oidc, &self.config.kind) {
            (Some(oidc), _) => self.oidc_profile(oidc, &tokens, nonce).await?,
            (None, ProviderKind::OAuth2 { .. }) => self.oauth2_profile(&tokens).await?,
            (None, _) => unreachable!("every non-OAuth2 provider has an OIDC client"),
        };
        if profile.name.is_none() {
            profile.name = extras.apple_user.and_then(apple::name_from_user_field);
        }
        if profile
            .image
            .as_deref()
            .is_some_and(|u| !mapping::acceptable_image(u))
        {
            tracing::info!(provider = %self.id(), "profile image dropped: not an https URL");
            profile.image = None;
        }
        Ok((profile, tokens))
    }

    async fn oidc_profile(
        &self,
        oidc: &OidcClient,
        tokens: &TokenSet,
        nonce: &str,
    ) -> Result<Profile, AuthError> {
        let id_token = tokens.id_token.as_deref().ok_or_else(|| {
            AuthError::new(
                ErrorCode::InvalidIdToken,
                "token response has no id_token (is the openid scope granted?)",
            )
        })?;
        let claims = oidc
            .verify_id_token(id_token, nonce)
            .await
            .map_err(|e| match e {
                VerifyError::Invalid(reason) => AuthError::new(ErrorCode::InvalidIdToken, reason),
                VerifyError::Call(call) => call_error(call),
            })?;
        let userinfo = oidc
            .userinfo(&tokens.access_token)
            .await
            .map_err(call_error)?;
        profile_from_claims(&claims, userinfo.as_ref())
            .map_err(|reason| AuthError::new(ErrorCode::InvalidIdToken, reason))
    }

    async fn oauth2_profile(&self, tokens: &TokenSet) -> Result<Profile, AuthError> {
        let ProviderKind::OAuth2 {
            userinfo_url,
            emails_url,
            profile: mapping_rules,
            ..
        } = &self.config.kind
        else {
            unreachable!("called for OAuth2 providers only")
        };
        let request = self
            .http
            .get(userinfo_url.clone())
            .bearer_auth(&tokens.access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        let (status, body) = http::send("userinfo", request, http::Budget::of(&self.config))
            .await
            .map_err(call_error)?;
        if status != 200 {
            return Err(call_error(CallError::Status {
                endpoint: "userinfo",
                status,
                detail: format!(": {}", http::excerpt(&body)),
            }));
        }
        let info: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            call_error(CallError::Malformed {
                endpoint: "userinfo",
                reason: e.to_string(),
            })
        })?;
        let mut profile = mapping::profile(&info, mapping_rules).map_err(|reason| {
            AuthError::new(ErrorCode::ProviderError, format!("userinfo: {reason}"))
        })?;
        match self.config.preset.as_deref() {
            Some("github") => {
                // GitHub's public `email` may be unverified: only /user/emails says.
                profile.email = None;
                profile.email_verified = false;
                if let Some(url) = emails_url {
                    let email = github::primary_verified_email(
                        &self.http,
                        url,
                        &tokens.access_token,
                        http::Budget::of(&self.config),
                    )
                    .await
                    .map_err(call_error)?;
                    profile.email_verified = email.is_some();
                    profile.email = email;
                }
                if profile.name.is_none() {
                    profile.name = info
                        .get("login")
                        .and_then(|l| l.as_str())
                        .map(str::to_string);
                }
            }
            Some("discord") => {
                if profile.name.is_none() {
                    profile.name = info
                        .get("username")
                        .and_then(|l| l.as_str())
                        .map(str::to_string);
                }
                if let Some(avatar) = info.get("avatar").and_then(|a| a.as_str()) {
                    profile.image = Some(format!(
                        "https://cdn.discordapp.com/avatars/{}/{avatar}.png",
                        profile.subject
                    ));
                }
            }
            _ => {}
        }
        Ok(profile)
    }

    /// Endpoints as `latch check --discover` prints them (discovery fetched for OIDC).
    pub async fn describe_endpoints(&self) -> Result<Vec<String>, AuthError> {
        Ok(match (&self.oidc, &self.config.kind) {
            (Some(oidc), _) => {
                let d = oidc.discovery().await.map_err(call_error)?;
                let mut lines = vec![
                    format!("issuer:                 {}", d.issuer),
                    format!("authorization_endpoint: {}", d.authorization_endpoint),
                    format!("token_endpoint:         {}", d.token_endpoint),
                    format!("jwks_uri:               {}", d.jwks_uri),
                ];
                if let Some(u) = &d.userinfo_endpoint {
                    lines.push(format!("userinfo_endpoint:      {u}"));
                }
                lines
            }
            (
                None,
                ProviderKind::OAuth2 {
                    authorization_url,
                    token_url,
                    userinfo_url,
                    ..
                },
            ) => vec![
                format!("authorization_url: {authorization_url}"),
                format!("token_url:         {token_url}"),
                format!("userinfo_url:      {userinfo_url}"),
            ],
            _ => Vec::new(),
        })
    }

    /// The provider's access rules; `AccessDenied` names which one refused.
    pub async fn check_access(
        &self,
        profile: &Profile,
        tokens: &TokenSet,
    ) -> Result<(), AuthError> {
        let rules = &self.config.access;
        access::check_email(rules, profile)
            .map_err(|reason| AuthError::new(ErrorCode::AccessDenied, reason))?;
        if rules.allowed_orgs.is_empty() {
            return Ok(());
        }
        let ProviderKind::OAuth2 {
            api_url: Some(api), ..
        } = &self.config.kind
        else {
            return Err(AuthError::new(
                ErrorCode::Configuration,
                "allowed_orgs needs the github preset",
            ));
        };
        for org in &rules.allowed_orgs {
            let member = github::is_member(
                &self.http,
                api,
                org,
                &tokens.access_token,
                http::Budget::of(&self.config),
            )
            .await
            .map_err(call_error)?;
            if member {
                return Ok(());
            }
        }
        Err(AuthError::new(
            ErrorCode::AccessDenied,
            format!(
                "not an active member of any allowed GitHub organisation ({})",
                rules.allowed_orgs.join(", ")
            ),
        ))
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
    pub fn new(
        config: &Config,
        http: reqwest::Client,
        local_addr: SocketAddr,
    ) -> Result<Self, String> {
        let mut list = Vec::new();
        for pc in &config.providers {
            let callback_url = public_route(config, &format!("/callback/{}", pc.id));
            let signin_url = public_route(config, &format!("/signin/{}", pc.id));
            let mut client_secret = pc.client_secret.clone();
            let mut dev = None;
            let oidc = match &pc.kind {
                ProviderKind::Oidc {
                    issuer,
                    issuer_rule,
                } => Some(OidcClient::new(
                    issuer.clone(),
                    *issuer_rule,
                    None,
                    pc.client_id.clone(),
                    http.clone(),
                    http::Budget::of(pc),
                )),
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
                    client_secret = Some(Secret::new(provider.client_secret().as_bytes().to_vec()));
                    dev = Some(provider);
                    Some(OidcClient::new(
                        issuer,
                        crate::config::IssuerRule::Exact,
                        Some(back_channel),
                        pc.client_id.clone(),
                        http.clone(),
                        http::Budget::of(pc),
                    ))
                }
                ProviderKind::OAuth2 { .. } => None,
            };
            let apple = match &pc.apple {
                Some(key) => Some(
                    apple::AppleSecret::new(key, &pc.client_id)
                        .map_err(|e| format!("providers.{}.private_key_file: {e}", pc.id))?,
                ),
                None => None,
            };
            list.push(Arc::new(Provider {
                config: pc.clone(),
                callback_url,
                signin_url,
                oidc,
                http: http.clone(),
                client_secret,
                apple,
                dev,
                token_secrets: pc.expose_tokens.then(|| {
                    std::iter::once(&config.server.secret)
                        .chain(&config.server.previous_secrets)
                        .cloned()
                        .collect()
                }),
            }));
        }
        let by_id = list
            .iter()
            .map(|p| (p.config.id.clone(), p.clone()))
            .collect();
        Ok(Providers { list, by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    /// The origins of every provider's authorization endpoint (sorted, without repeats): a
    /// sign-in form posts to latch, which redirects there, and CSP `form-action` covers that
    /// redirect too.
    pub fn authorization_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .list
            .iter()
            .flat_map(|p| match (&p.oidc, &p.config.kind) {
                (Some(oidc), _) => oidc.authorization_origins(),
                (
                    None,
                    ProviderKind::OAuth2 {
                        authorization_url, ..
                    },
                ) => vec![authorization_url.origin().ascii_serialization()],
                (None, _) => Vec::new(),
            })
            .filter(|o| o != "null")
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }
}
