//! HTTP: the router, shared state, and the middleware every request passes through.
mod api;
pub mod cookies;
mod csp;
pub mod csrf;
mod dev_routes;
mod errors;
mod limits;
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
use crate::session::Sessions;
use crate::store::Store;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
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
        .route("/metrics", get(ops::metrics))
        .merge(dev_routes::routes())
        .merge(tokens::routes(&app));
    let base = app.config.server.base_path.clone();
    let routes = if base.is_empty() {
        routes
    } else {
        Router::new().nest(&base, routes)
    };
    routes
        .fallback(ops::not_found)
        // Inside `request_context`, which renders its 429s.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(limits::Limiter::new(&app.config)),
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            errors::request_context,
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(app)
}
