//! Identity providers: what is configured, and the client that talks to each. Whatever the
//! kind (OpenID Connect, plain OAuth 2.0, the dev provider) and the preset (whose hooks in
//! `presets/` complete the profile, check organisations or mint the client secret), the flow
//! gets the same `Profile`.
pub mod access;
pub mod groups;
pub mod http;
pub mod jwk;
pub mod logout;
pub mod mapping;
pub mod oidc;
pub mod presets;
pub mod profile;
pub mod token;

pub use presets::dev;
pub use profile::{CallbackExtras, Profile, TokenSet};

use crate::config::{
    Config, OAuth2Endpoints, ProviderConfig, ProviderKind, ResponseMode, Secret, TokenAuth,
};
use crate::error::{AuthError, ErrorCode};
use http::{call_error, CallError};
use oidc::{profile_from_claims, OidcClient, VerifyError};
use presets::{Call, MintSecret, Mount, Preset, SignIn};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use token::{ExchangeError, TokenClient};
use url::Url;

/// How latch talks to a provider.
enum Client {
    /// OpenID Connect, discovered from the issuer (the dev provider too).
    Oidc(OidcClient),
    /// Plain OAuth 2.0 with configured endpoints.
    OAuth2(OAuth2Endpoints),
}

/// What is sent as the client secret.
enum ClientSecret {
    None,
    Configured(Secret),
    /// Made afresh for every call (Apple's JWT).
    Minted(Box<dyn MintSecret>),
}

pub struct Provider {
    pub config: ProviderConfig,
    /// The redirect URI registered at the provider.
    pub callback_url: String,
    pub signin_url: String,
    client: Client,
    http: reqwest::Client,
    client_secret: ClientSecret,
    /// The preset's hooks, if the provider is made from one.
    preset: Option<&'static dyn Preset>,
    /// The built-in development provider behind this entry, if it is one.
    pub dev: Option<Arc<dev::DevProvider>>,
    /// With `expose_tokens`: the server secret (first: it seals) and the previous ones (they
    /// still open), for the provider's tokens at rest. `None`: tokens are not kept.
    token_secrets: Option<Vec<Secret>>,
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
            ProviderKind::OAuth2(_) => "oauth",
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

    /// What the preset's hooks may use to call the provider with `tokens`.
    fn call<'a>(&'a self, tokens: &'a TokenSet) -> Call<'a> {
        Call {
            http: &self.http,
            budget: http::Budget::of(&self.config),
            tokens,
            own: &self.config.own,
        }
    }

    /// The provider's authorization request URL for one flow.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<Url, AuthError> {
        let mut url = match &self.client {
            Client::Oidc(oidc) => oidc
                .discovery()
                .await
                .map_err(call_error)?
                .authorization_endpoint
                .clone(),
            Client::OAuth2(o) => o.authorization_url.clone(),
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
            if let Client::Oidc(_) = self.client {
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

    /// The provider's end-session endpoint (RP-Initiated Logout 1.0), when its discovery
    /// document names one.
    pub async fn end_session_endpoint(&self) -> Result<Option<Url>, AuthError> {
        match &self.client {
            Client::Oidc(oidc) => Ok(oidc
                .discovery()
                .await
                .map_err(call_error)?
                .end_session_endpoint
                .clone()),
            Client::OAuth2(_) => Ok(None),
        }
    }

    /// Verifies a back-channel Logout Token from this provider. `Ok(Err(reason))` is a bad
    /// token (or a provider that has none: plain OAuth 2.0); `Err` means the provider's keys
    /// could not be fetched.
    pub async fn verify_logout_token(
        &self,
        raw: &str,
    ) -> Result<Result<logout::LogoutClaims, String>, AuthError> {
        match &self.client {
            Client::Oidc(oidc) => match oidc.verify_logout_token(raw).await {
                Ok(claims) => Ok(Ok(claims)),
                Err(VerifyError::Invalid(reason)) => Ok(Err(reason)),
                Err(VerifyError::Call(e)) => Err(call_error(e)),
            },
            Client::OAuth2(_) => Ok(Err(
                "a plain OAuth 2.0 provider has no back-channel logout".into()
            )),
        }
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
        match &self.client {
            Client::Oidc(oidc) => match iss {
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
            Client::OAuth2(o) => {
                if let (Some(iss), Some(expected)) = (iss, &o.issuer) {
                    if iss.trim_end_matches('/') != expected.trim_end_matches('/') {
                        return Err(mismatch(iss));
                    }
                }
            }
        }
        Ok(())
    }

    fn client_secret(&self) -> Option<String> {
        match &self.client_secret {
            ClientSecret::None => None,
            ClientSecret::Configured(s) => Some(String::from_utf8_lossy(s.expose()).into_owned()),
            ClientSecret::Minted(mint) => Some(mint.mint()),
        }
    }

    /// A client for the token endpoint, with the client authentication to use there.
    async fn token_client(&self) -> Result<TokenClient<'_>, AuthError> {
        let (endpoint, auth) = match &self.client {
            Client::Oidc(oidc) => {
                let discovery = oidc.discovery().await.map_err(call_error)?;
                let auth = oidc
                    .token_auth(self.config.token_auth)
                    .await
                    .map_err(call_error)?;
                (discovery.token_endpoint.clone(), auth)
            }
            Client::OAuth2(o) => (o.token_url.clone(), self.config.token_auth),
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
        let (mut profile, userinfo) = match &self.client {
            Client::Oidc(oidc) => (self.oidc_profile(oidc, &tokens, nonce).await?, None),
            Client::OAuth2(o) => {
                let (profile, info) = self.oauth2_profile(o, &tokens).await?;
                (profile, Some(info))
            }
        };
        if let Some(preset) = self.preset {
            let sign_in = SignIn {
                call: self.call(&tokens),
                userinfo: userinfo.as_ref(),
                callback: &extras,
            };
            preset.profile(&mut profile, &sign_in).await?;
        }
        // GitHub's `org` and `org/team` groups: only the allowed organisations', when listed.
        let allowed_orgs = &self.config.access.allowed_orgs;
        if !allowed_orgs.is_empty() {
            profile.groups.retain(|g| {
                let org = g.split('/').next().unwrap_or("");
                allowed_orgs.iter().any(|a| a.eq_ignore_ascii_case(org))
            });
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
        let mut profile = profile_from_claims(&claims, userinfo.as_ref())
            .map_err(|reason| AuthError::new(ErrorCode::InvalidIdToken, reason))?;
        profile.groups = groups::from_claims(&self.config.groups_claim, &claims, userinfo.as_ref());
        Ok(profile)
    }

    /// The mapped profile and the userinfo answer it was mapped from.
    async fn oauth2_profile(
        &self,
        o: &OAuth2Endpoints,
        tokens: &TokenSet,
    ) -> Result<(Profile, serde_json::Value), AuthError> {
        let request = self
            .http
            .get(o.userinfo_url.clone())
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
        let profile = mapping::profile(&info, &o.profile).map_err(|reason| {
            AuthError::new(ErrorCode::ProviderError, format!("userinfo: {reason}"))
        })?;
        Ok((profile, info))
    }

    /// Endpoints as `latch check --discover` prints them (discovery fetched for OIDC).
    pub async fn describe_endpoints(&self) -> Result<Vec<String>, AuthError> {
        Ok(match &self.client {
            Client::Oidc(oidc) => {
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
            Client::OAuth2(o) => vec![
                format!("authorization_url: {}", o.authorization_url),
                format!("token_url:         {}", o.token_url),
                format!("userinfo_url:      {}", o.userinfo_url),
            ],
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
        match self.preset {
            Some(preset) => {
                preset
                    .check_orgs(&rules.allowed_orgs, &self.call(tokens))
                    .await
            }
            None => Err(AuthError::new(
                ErrorCode::Configuration,
                format!(
                    "allowed_orgs needs the {} preset",
                    presets::org_presets().join(" or ")
                ),
            )),
        }
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
            let preset = pc.preset.as_deref().and_then(presets::find);
            let mut client_secret = match &pc.client_secret {
                Some(s) => ClientSecret::Configured(s.clone()),
                None => ClientSecret::None,
            };
            let mut dev = None;
            let client = match &pc.kind {
                ProviderKind::Oidc {
                    issuer,
                    issuer_rule,
                } => Client::Oidc(OidcClient::new(
                    issuer.clone(),
                    *issuer_rule,
                    None,
                    pc.client_id.clone(),
                    http.clone(),
                    http::Budget::of(pc),
                )),
                ProviderKind::OAuth2(endpoints) => Client::OAuth2(endpoints.clone()),
                ProviderKind::Dev => {
                    let mount = Mount {
                        public_base: public_route(config, ""),
                        base_path: &config.server.base_path,
                        local_addr,
                        callback_url: &callback_url,
                    };
                    let built = preset
                        .and_then(|p| p.built_in(pc, &http, mount))
                        .ok_or_else(|| format!("providers.{}: no built-in provider", pc.id))?;
                    client_secret = ClientSecret::Configured(built.client_secret);
                    dev = Some(built.dev);
                    Client::Oidc(built.oidc)
                }
            };
            if let Some(mint) = preset.map(|p| p.mint_secret(pc)).transpose()?.flatten() {
                client_secret = ClientSecret::Minted(mint);
            }
            list.push(Arc::new(Provider {
                config: pc.clone(),
                callback_url,
                signin_url,
                client,
                http: http.clone(),
                client_secret,
                preset,
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
            .flat_map(|p| match &p.client {
                Client::Oidc(oidc) => oidc.authorization_origins(),
                Client::OAuth2(o) => vec![o.authorization_url.origin().ascii_serialization()],
            })
            .filter(|o| o != "null")
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }
}
