//! Starting and stopping the service. `run(config, listener, shutdown)` is the seam tests
//! use: they bind `127.0.0.1:0` and run the real server.
use crate::config::Config;
use crate::identity::Users;
use crate::provider::{http, Providers};
use crate::session::Sessions;
use crate::store::{self, Store};
use crate::web::{self, cookies::CookiePolicy, templates::Templates, App};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("provider: {0}")]
    Provider(String),
    #[error("templates: {0}")]
    Templates(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the application state for a server listening on `listener`.
pub async fn build(config: Config, listener: &TcpListener) -> Result<Arc<App>, StartError> {
    let local_addr = listener.local_addr()?;
    // The process's metrics recorder, installed before anything is counted.
    crate::telemetry::handle();
    let sqlite_path = config.store.sqlite_path();
    let store: Arc<dyn Store> =
        store::metered(store::open(&config.store.url, sqlite_path.as_deref()).await?);
    let templates =
        Templates::new(config.server.templates.clone()).map_err(StartError::Templates)?;
    let providers =
        Providers::new(&config, http::build_client(), local_addr).map_err(StartError::Provider)?;
    let https = config.server.public_url.scheme() == "https";
    let cookies = CookiePolicy::new(https, config.session.cookie_domain.clone());
    Ok(Arc::new(App {
        sessions: Sessions::new(store.clone(), config.session.clone()),
        users: Users::new(store.clone()),
        store,
        providers,
        templates,
        cookies,
        config,
    }))
}

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let app = build(config, &listener).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = %app.url(""),
        store = app.store.backend(),
        providers = app.providers.iter().count(),
        "latch is listening"
    );
    for p in app.providers.iter() {
        if p.dev.is_some() {
            tracing::warn!(
                provider = p.id(),
                "development provider enabled: anyone can sign in as anyone"
            );
        }
    }
    // The peer address keys the rate limits (`web::limits`).
    let service = web::router(app).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("latch stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
