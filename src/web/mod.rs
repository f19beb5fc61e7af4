//! HTTP: shared state, the router (`routes.rs`, every route in its group), the layers a route
//! carries (`layers.rs`), the middleware every request passes through (`request.rs`) and what
//! handlers extract from a request (`extract.rs`).
mod account;
mod api;
mod backchannel;
mod context;
pub mod cookies;
mod csp;
pub mod csrf;
mod dev_routes;
mod errors;
mod extract;
mod headers;
mod introspect;
mod layers;
pub(crate) mod limits;
pub mod logos;
mod ops;
mod pages;
mod provider_tokens;
pub mod redirect;
mod request;
mod routes;
mod session_update;
mod signin;
pub mod templates;
mod tokens;

use crate::audit::Audit;
use crate::config::Config;
use crate::identity::Users;
use crate::provider::Providers;
use crate::provider_tokens::ProviderTokens;
use crate::session::Sessions;
use crate::store::Store;
use crate::tokens::access::AccessTokens;
use crate::tokens::refresh::RefreshFamilies;
pub use context::RequestContext;
use cookies::CookiePolicy;
pub use errors::WebError;
pub use routes::{metrics_router, router, Web};
use std::collections::HashMap;
use std::sync::Arc;
use templates::Templates;

/// Everything a request handler may need; built once at start-up.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub providers: Providers,
    pub users: Users,
    pub sessions: Sessions,
    /// Access tokens: issued by `/token` and `/refresh`, checked by `/verify`,
    /// `/introspect` and `/provider-token`.
    pub tokens: AccessTokens,
    pub families: RefreshFamilies,
    /// Provider tokens handed to apps (`/provider-token`).
    pub provider_tokens: ProviderTokens,
    /// Per-client request rates (`[limits]`).
    pub(crate) limiter: limits::Limiter,
    pub templates: Templates,
    pub cookies: CookiePolicy,
    /// The audit log (`[audit]`; off when absent).
    pub audit: Audit,
}

pub type AppState = Arc<App>;

impl App {
    pub fn secret(&self) -> &[u8] {
        self.config.server.secret.expose()
    }

    /// `public_url` + `base_path` + `path`.
    pub fn url(&self, path: &str) -> String {
        crate::provider::public_route(&self.config, path)
    }
}

/// A redirect (`status` 302 or 303) to `url`; a 500 if `url` cannot be a header value (latch
/// only ever redirects to URLs it built or checked, so that is a bug).
pub(crate) fn redirect_to(url: &str, status: axum::http::StatusCode) -> axum::response::Response {
    use axum::response::IntoResponse;
    match axum::http::HeaderValue::from_str(url) {
        Ok(location) => (status, [(axum::http::header::LOCATION, location)]).into_response(),
        Err(_) => WebError::new(
            crate::error::ErrorCode::InternalError,
            "redirect target not a header value",
        )
        .into_response(),
    }
}

/// Form bodies parsed leniently: any content type, last value wins, never a rejection.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
