//! The router: every route, in its group. A group says how its routes answer refusals (a
//! page or JSON); a route may add its rate-limit class and, for the routes about a provider,
//! the label of its metrics. These layers are put on each route here, once, when the router
//! is built: nothing matches paths per request.
use super::layers::{flow_metrics, Answer, FlowRoute, GroupLayer};
use super::limits::{self, RouteClass};
use super::AppState;
use super::{
    account, api, backchannel, dev_routes, introspect, ops, pages, provider_tokens, request,
    session_update, signin, tokens,
};
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

/// The layers a route gets from its group, plus its own rate-limit class and metric label.
#[derive(Clone)]
struct Group {
    app: AppState,
    answer: Answer,
    limit: Option<RouteClass>,
    provider_metrics: Option<FlowRoute>,
}

impl Group {
    fn new(app: &AppState, answer: Answer) -> Self {
        Group {
            app: app.clone(),
            answer,
            limit: None,
            provider_metrics: None,
        }
    }

    /// A route of this group that answers refusals as `answer` instead.
    fn answering(&self, answer: Answer) -> Self {
        Group {
            answer,
            ..self.clone()
        }
    }

    /// A route of this group counted in the `[limits]` class `class`.
    fn limited(&self, class: RouteClass) -> Self {
        Group {
            limit: Some(class),
            ..self.clone()
        }
    }

    /// A route about the provider in its last path segment (`{provider}`).
    fn about_provider(&self, route: FlowRoute) -> Self {
        Group {
            provider_metrics: Some(route),
            ..self.clone()
        }
    }

    /// `methods` with this group's layers, and a 405 refusal for every other method.
    fn to(&self, methods: MethodRouter<AppState>) -> MethodRouter<AppState> {
        let mut methods = methods.fallback(ops::method_not_allowed);
        if let Some(class) = self.limit {
            let state = (self.app.clone(), class);
            methods = methods.layer(from_fn_with_state(state, limits::enforce));
        }
        // One layer, so one boxed `Route` (axum clones and calls through each per request).
        methods = methods.layer(
            tower::ServiceBuilder::new()
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                .layer(GroupLayer {
                    answer: self.answer,
                }),
        );
        if let Some(route) = self.provider_metrics {
            let state = (self.app.clone(), route);
            methods = methods.layer(from_fn_with_state(state, flow_metrics));
        }
        methods
    }
}

pub fn router(app: AppState) -> Web {
    let in_pages = Group::new(&app, Answer::Page);
    let in_flow = Group::new(&app, Answer::Page);
    let in_api = Group::new(&app, Answer::Json);
    let in_tokens = Group::new(&app, Answer::Json);
    let in_ops = Group::new(&app, Answer::Page);
    let in_dev = Group::new(&app, Answer::Page);
    let routes = Router::new()
        // Pages for people.
        .route("/signin", in_pages.to(get(pages::signin_page)))
        .route(
            "/signout",
            in_pages.to(get(pages::signout_page).post(signin::signout_post)),
        )
        .route("/signout/done", in_pages.to(get(signin::signout_done)))
        .route("/error", in_pages.to(get(pages::error_page)))
        .route("/", in_pages.to(get(account::home)))
        .route("/account", in_pages.to(get(account::account_page)))
        .route(
            "/account/sessions",
            in_pages.to(post(account::end_sessions)),
        )
        // The sign-in flow with a provider.
        .route(
            "/signin/{provider}",
            in_flow
                .limited(RouteClass::Signin)
                .about_provider(FlowRoute::Start)
                .to(get(signin::start_get).post(signin::start_post)),
        )
        .route(
            "/callback/{provider}",
            in_flow
                .limited(RouteClass::Callback)
                .about_provider(FlowRoute::Callback)
                .to(get(signin::callback_get).post(signin::callback_post)),
        )
        // JSON for the next-auth client, and forward auth.
        // POST: next-auth's `useSession().update(data)`.
        .route(
            "/session",
            in_api.to(get(api::session).post(session_update::update)),
        )
        .route("/csrf", in_api.to(get(api::csrf)))
        .route("/providers", in_api.to(get(api::providers)))
        .route("/verify", in_api.to(get(api::verify)))
        // Tokens for apps.
        .route(
            "/token",
            in_tokens.limited(RouteClass::Token).to(post(tokens::token)),
        )
        .route(
            "/refresh",
            in_tokens
                .limited(RouteClass::Refresh)
                .to(post(tokens::refresh)),
        )
        .route("/revoke", in_tokens.to(post(tokens::revoke)))
        .route("/introspect", in_tokens.to(post(introspect::introspect)))
        // From the provider's server, not a browser: no CSRF, no rate limit (one provider
        // address may end many sessions at once; every token costs a signature check only).
        .route(
            "/backchannel-logout/{provider}",
            in_tokens.to(post(backchannel::logout)),
        )
        .route("/.well-known/jwks.json", in_tokens.to(get(tokens::jwks)))
        .route(
            "/provider-token/{provider}",
            in_tokens
                .about_provider(FlowRoute::ProviderToken)
                .to(get(provider_tokens::provider_token)),
        )
        // Operations.
        .route("/healthz", in_ops.to(get(ops::healthz)))
        .route(
            "/readyz",
            in_ops.answering(Answer::Json).to(get(ops::readyz)),
        )
        // The development provider (its token endpoint speaks JSON).
        .route(
            "/dev/{provider}/.well-known/openid-configuration",
            in_dev.to(get(dev_routes::discovery)),
        )
        .route("/dev/{provider}/jwks", in_dev.to(get(dev_routes::jwks)))
        .route(
            "/dev/{provider}/authorize",
            in_dev.to(get(dev_routes::authorize_page).post(dev_routes::authorize_submit)),
        )
        .route(
            "/dev/{provider}/token",
            in_dev.answering(Answer::Json).to(post(dev_routes::token)),
        )
        .route(
            "/dev/{provider}/userinfo",
            in_dev.to(get(dev_routes::userinfo)),
        );
    // With `metrics_listen`, `/metrics` lives on that listener only (here: the 404 fallback).
    let routes = if app.config.server.metrics_listen.is_none() {
        routes.route("/metrics", in_ops.to(get(ops::metrics)))
    } else {
        routes
    };
    let base = app.config.server.base_path.clone();
    let routes = if base.is_empty() {
        routes
    } else {
        Router::new().nest(&base, routes)
    };
    outermost(routes, app)
}

/// What `server.metrics_listen` serves: `GET /metrics`, everything else a 404.
pub fn metrics_router(app: AppState) -> Web {
    let in_ops = Group::new(&app, Answer::Page);
    outermost(
        Router::new().route("/metrics", in_ops.to(get(ops::metrics))),
        app,
    )
}

/// The most a request body may hold (forms, JSON, logout tokens).
const BODY_LIMIT: usize = 64 * 1024;

/// What serves a listener: the router inside the layer every request passes through first.
pub type Web = request::RequestService<Router>;

/// The 404 for every other path, and around everything the layer every request passes through
/// first. That layer wraps the router itself, not each route: `Router::layer` would wrap
/// every route in another boxed `Route`, which axum clones and calls through per request.
fn outermost(routes: Router<AppState>, app: AppState) -> Web {
    let not_found = Router::new().fallback(ops::not_found).layer(GroupLayer {
        answer: Answer::Page,
    });
    let router = routes.merge(not_found).with_state(app.clone());
    tower::Layer::layer(&request::RequestLayer::new(app), router)
}
