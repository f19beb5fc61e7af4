//! Starting and stopping the service. `run(config, listener, shutdown)` is the seam tests
//! use: they bind `127.0.0.1:0` and run the real server.
mod connections;

use crate::audit::Audit;
use crate::config::{Config, ConnectionLimits, IpNet};
use crate::identity::Users;
use crate::provider::{http, Providers};
use crate::provider_tokens::ProviderTokens;
use crate::session::Sessions;
use crate::store::{self, Store};
use crate::tokens::access::AccessTokens;
use crate::tokens::keys::KeyRing;
use crate::tokens::refresh::RefreshFamilies;
use crate::web::{self, cookies::CookiePolicy, limits::Limiter, templates::Templates, App};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    #[error("audit log: {0}")]
    Audit(std::io::Error),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// New configurations for a running server (`latch serve` sends one per `SIGHUP`).
pub type Reloads = tokio::sync::mpsc::Receiver<Config>;

/// Builds the application state for a server listening on `listener`.
pub async fn build(config: Config, listener: &TcpListener) -> Result<Arc<App>, StartError> {
    let store = open_store(&config).await?;
    build_on(config, listener.local_addr()?, store)
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let sqlite_path = config.store.sqlite_path();
    Ok(store::metered(
        store::open_for_server(
            &config.store.url,
            sqlite_path.as_deref(),
            config.store.session_cache,
        )
        .await?,
    ))
}

/// The application state on an open store.
pub(crate) fn build_on(
    config: Config,
    local_addr: std::net::SocketAddr,
    store: Arc<dyn Store>,
) -> Result<Arc<App>, StartError> {
    // The process's metrics recorder, installed before anything is counted.
    crate::telemetry::handle();
    let templates =
        Templates::new(config.server.templates.clone()).map_err(StartError::Templates)?;
    let providers =
        Providers::new(&config, http::build_client(), local_addr).map_err(StartError::Provider)?;
    let https = config.server.public_url.scheme() == "https";
    let cookies = CookiePolicy::new(https, config.session.cookie_domain.clone())
        .with_base_path(&config.server.base_path);
    let t = &config.tokens;
    let previous = &config.server.keyring()[1..];
    let secret = config.server.secret.expose();
    let keys = KeyRing::new(store.clone(), secret, t.key_rotation, t.access_ttl)
        .with_previous_secrets(previous);
    let tokens = AccessTokens::new(keys, crate::provider::public_route(&config, ""), t);
    let families = RefreshFamilies::new(store.clone(), secret, t.refresh_ttl, t.refresh_grace)
        .with_previous_secrets(previous);
    // On Redis the rate counts are shared by every instance.
    let shared = store.backend().starts_with("redis").then(|| store.clone());
    // Opened anew for each configuration: a reload (SIGHUP) reopens the file for logrotate.
    let audit = Audit::open(config.audit.as_ref()).map_err(StartError::Audit)?;
    let app = Arc::new(App {
        sessions: Sessions::new(store.clone(), config.session.clone()).with_audit(audit.clone()),
        tokens,
        families,
        provider_tokens: ProviderTokens::new(store.clone()),
        limiter: Limiter::new(&config, shared),
        users: Users::new(store.clone()).with_audit(audit.clone()),
        audit,
        store,
        providers,
        templates,
        cookies,
        config,
    });
    // Signing keys exist from the first start on (created by whichever instance is first).
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        let early = app.clone();
        handle.spawn(async move {
            if let Err(e) = early.tokens.keys().jwks().await {
                tracing::warn!(error = %e, "signing keys not ready yet; created on first use");
            }
        });
    }
    Ok(app)
}

/// Serves until `shutdown` completes, then finishes in-flight requests. With
/// `server.metrics_listen` set, binds it and serves `/metrics` there alone.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let metrics = match config.server.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("server.metrics_listen {addr}: {e}"))
        })?),
        None => None,
    };
    run_with(config, listener, metrics, shutdown).await
}

/// [`run`] on listeners bound by the caller: `metrics` stands for `server.metrics_listen`
/// (tests bind both on port 0). With `metrics_listen` set and `metrics` `None`, `/metrics`
/// is served nowhere.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    run_reloadable(config, listener, metrics, None, shutdown).await
}

/// [`run_with`], switching to each configuration that arrives on `reloads` for new requests
/// (SPEC §5: sessions and flows in progress live in the store, so they carry over).
pub async fn run_reloadable(
    config: Config,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    reloads: Option<Reloads>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let local_addr = listener.local_addr()?;
    let app = build(config, &listener).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        metrics_listen = ?metrics.as_ref().and_then(|m| m.local_addr().ok()),
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
    let limits = app.config.server.connections;
    let trusted = app.config.server.trusted_proxies.clone();
    let (main_router, main_routers) = tokio::sync::watch::channel(web::router(app.clone()));
    let (metrics_router, metrics_routers) =
        tokio::sync::watch::channel(web::metrics_router(app.clone()));
    // Start-up is over: its code pages and freed heap need not stay resident.
    crate::memory::release_startup_memory();
    if let Some(reloads) = reloads {
        tokio::spawn(apply_reloads(
            reloads,
            app.clone(),
            local_addr,
            main_router,
            metrics_router,
        ));
    }
    // One shutdown signal for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let main = serve(
        "main",
        listener,
        main_routers,
        limits,
        trusted.clone(),
        signal(),
    );
    match metrics {
        Some(m) => {
            let metrics = serve("metrics", m, metrics_routers, limits, trusted, signal());
            tokio::join!(main, metrics);
        }
        None => main.await,
    }
    app.audit.flush().await;
    drop(app);
    tracing::info!("latch stopped");
    Ok(())
}

/// Builds the state for each new configuration and puts its routers in place; a
/// configuration that cannot be built is reported and the running one stays. The store is
/// always kept (so nothing in flight is lost); what only a restart can change (the store,
/// the listeners and their connection limits) is said in the log.
async fn apply_reloads(
    mut reloads: Reloads,
    mut app: Arc<App>,
    local_addr: std::net::SocketAddr,
    main: tokio::sync::watch::Sender<web::Web>,
    metrics: tokio::sync::watch::Sender<web::Web>,
) {
    while let Some(config) = reloads.recv().await {
        let old = &app.config;
        let mut restart_only = Vec::new();
        if config.server.listen != old.server.listen {
            restart_only.push("server.listen");
        }
        if config.server.metrics_listen != old.server.metrics_listen {
            restart_only.push("server.metrics_listen");
        }
        if config.server.connections != old.server.connections {
            restart_only.push("the [server] connection limits");
        }
        if config.server.trusted_proxies != old.server.trusted_proxies {
            restart_only.push("server.trusted_proxies (for the connection caps)");
        }
        // Sessions and flows in progress live in the store: it is never switched while running.
        if config.store.url != old.store.url {
            restart_only.push("store.url");
        }
        let mut config = config;
        config.store = old.store.clone();
        match build_on(config, local_addr, app.store.clone()) {
            Ok(new) => {
                let _ = main.send_replace(web::router(new.clone()));
                let _ = metrics.send_replace(web::metrics_router(new.clone()));
                tracing::info!(
                    providers = new.providers.iter().count(),
                    "configuration reloaded; new requests use it"
                );
                if !restart_only.is_empty() {
                    tracing::warn!(
                        "changed but only taken at the next start: {}",
                        restart_only.join(", ")
                    );
                }
                app = new;
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the running configuration stays")
            }
        }
    }
}

/// hyper's own caps on a request head: this many bytes, and its default of 100 fields (a
/// larger `max_headers` makes hyper allocate and fill two 200-entry arrays for every request,
/// measurable on the hot path). Past them hyper answers a bare 431 itself (it never calls
/// latch); the smaller limits in `web::limits::head_too_large` answer a rendered 431 below.
const HYPER_MAX_HEADER_BYTES: usize = 32 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The accept loop: HTTP/1 and HTTP/2 with header-size limits, bounded connections
/// (`connections`: the caps, the header-read and keep-alive clocks), the peer address in
/// each request (`ConnectInfo`, which keys the rate limits), and a graceful shutdown that
/// lets requests in flight finish.
async fn serve(
    name: &'static str,
    listener: TcpListener,
    routers: tokio::sync::watch::Receiver<web::Web>,
    limits: ConnectionLimits,
    trusted_proxies: Vec<IpNet>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    // No hyper header timer for HTTP/1: `connections` keeps that clock (hyper's would also
    // end idle keep-alive connections after the header timeout).
    builder.http1().max_buf_size(HYPER_MAX_HEADER_BYTES);
    // HTTP/2 pings find peers that vanished while a request is open.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.keep_alive_timeout))
        .max_header_list_size(HYPER_MAX_HEADER_BYTES as u32);
    let tracker = connections::Tracker::new(name, limits, trusted_proxies);
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
        // Over a cap: closed before a byte is read (a 503 would mean reading the request,
        // which is what a greedy client wants latch to spend).
        let Ok(permit) = tracker.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let activity = connections::Activity::new(&limits);
        let routers = routers.clone();
        let requests = activity.clone();
        let service = tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let guard = requests.request_started(request.version() == hyper::Version::HTTP_2);
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            // The router of the configuration in force when the request arrived.
            let router = routers.borrow().clone();
            let response = router.oneshot(request);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| connections::GuardedBody::new(body, guard)),
                )
            }
        });
        let io = TokioIo::new(connections::Watched::new(stream, activity.clone()));
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                cut = activity.cutoff() => {
                    // Dropping the connection closes the socket.
                    tracing::debug!(%peer, limit = cut.as_str(), "connection closed");
                    metrics::counter!(
                        "latch_connections_closed_total",
                        "listener" => name,
                        "limit" => cut.as_str()
                    )
                    .increment(1);
                }
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
