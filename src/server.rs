//! Starting and stopping the service. `run(config, listener, shutdown)` is the seam tests
//! use: they bind `127.0.0.1:0` and run the real server.
use crate::config::Config;
use crate::identity::Users;
use crate::provider::{http, Providers};
use crate::session::Sessions;
use crate::store::{self, Store};
use crate::tokens::access::AccessTokens;
use crate::tokens::keys::KeyRing;
use crate::tokens::refresh::RefreshFamilies;
use crate::web::{self, cookies::CookiePolicy, templates::Templates, App};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

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
    let t = &config.tokens;
    let previous = &config.server.keyring()[1..];
    let secret = config.server.secret.expose();
    let keys = KeyRing::new(store.clone(), secret, t.key_rotation, t.access_ttl)
        .with_previous_secrets(previous);
    let tokens = AccessTokens::new(
        keys,
        crate::provider::public_route(&config, ""),
        t.access_ttl,
    );
    let families = RefreshFamilies::new(store.clone(), secret, t.refresh_ttl, t.refresh_grace)
        .with_previous_secrets(previous);
    Ok(Arc::new(App {
        sessions: Sessions::new(store.clone(), config.session.clone()),
        tokens,
        families,
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
    serve(listener, web::router(app), shutdown).await;
    tracing::info!("latch stopped");
    Ok(())
}

/// Request headers larger than this (all of them together) get a 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// More header fields than this get a 431.
const MAX_HEADERS: usize = 100;
/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The accept loop: HTTP/1 and HTTP/2 with header-size limits, the peer address in each
/// request (`ConnectInfo`, which keys the rate limits), and a graceful shutdown that lets
/// requests in flight finish.
async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let router = router.clone();
        let service = tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after shutdown; closing them");
    }
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
