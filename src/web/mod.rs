//! HTTP: the router, shared state, and the middleware every request passes through.
mod api;
pub mod cookies;
mod csp;
pub mod csrf;
mod dev_routes;
mod errors;
mod extract;
mod introspect;
pub(crate) mod limits;
pub mod logos;
mod ops;
mod pages;
mod provider_tokens;
pub mod redirect;
mod signin;
pub mod templates;
mod tokens;

use crate::config::Config;
use crate::identity::Users;
use crate::provider::Providers;
use crate::provider_tokens::ProviderTokens;
use crate::session::Sessions;
use crate::store::Store;
use crate::tokens::access::AccessTokens;
use crate::tokens::refresh::RefreshFamilies;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use cookies::CookiePolicy;
pub use errors::WebError;
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

/// Per-request facts set by the outermost middleware.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// Nonce for this response's Content-Security-Policy `style-src`.
    pub csp_nonce: String,
}

/// Form bodies parsed leniently: any content type, last value wins, never a rejection.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn router(app: AppState) -> Router {
    let routes = Router::new()
        .route("/signin", get(pages::signin_page))
        .route(
            "/signin/{provider}",
            get(signin::start_get).post(signin::start_post),
        )
        .route(
            "/callback/{provider}",
            get(signin::callback_get).post(signin::callback_post),
        )
        .route(
            "/signout",
            get(pages::signout_page).post(signin::signout_post),
        )
        .route("/error", get(pages::error_page))
        .route("/session", get(api::session))
        .route("/csrf", get(api::csrf))
        .route("/providers", get(api::providers))
        .route("/verify", get(api::verify))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/token", post(tokens::token))
        .route("/refresh", post(tokens::refresh))
        .route("/revoke", post(tokens::revoke))
        .route("/introspect", post(introspect::introspect))
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route(
            "/provider-token/{provider}",
            get(provider_tokens::provider_token),
        )
        .merge(dev_routes::routes());
    // With `metrics_listen`, `/metrics` lives on that listener only (here: the 404 fallback).
    let routes = if app.config.server.metrics_listen.is_none() {
        routes.route("/metrics", get(ops::metrics))
    } else {
        routes
    };
    // axum's own 405 has an empty body; this one is a refusal like any other.
    let routes = routes.method_not_allowed_fallback(ops::method_not_allowed);
    let base = app.config.server.base_path.clone();
    let routes = if base.is_empty() {
        routes
    } else {
        Router::new().nest(&base, routes)
    };
    routes
        .fallback(ops::not_found)
        // Inside `request_context`, which renders their 429s and 431s.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn(limits::header_size))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            errors::request_context,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(app)
}

/// What `server.metrics_listen` serves: `GET /metrics`, everything else a 404.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .method_not_allowed_fallback(ops::method_not_allowed)
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn(limits::header_size))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            errors::request_context,
        ))
        .with_state(app)
}
