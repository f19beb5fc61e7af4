//! Runs the real latch server in-process on a free port.
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>` + base_path
    pub base: String,
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Options for one latch instance.
pub struct Setup {
    pub store_url: String,
    /// Extra lines for `[store]`.
    pub store_extra: String,
    pub base_path: String,
    /// Extra lines for `[server]`.
    pub server_extra: String,
    /// `[providers.*]` tables, with `{origin}` replaced by latch's own origin.
    pub providers: String,
    pub session: String,
    /// Lines for `[limits]`.
    pub limits: String,
    /// `public_url` instead of the listener's own origin (e.g. an https name).
    pub public_url: Option<String>,
    /// `server.secret` (default [`SECRET`]).
    pub secret: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            store_url: "memory://".into(),
            store_extra: String::new(),
            base_path: String::new(),
            server_extra: String::new(),
            providers: "[providers.dev]\npreset = \"dev\"\n".into(),
            session: String::new(),
            limits: String::new(),
            public_url: None,
            secret: SECRET.into(),
        }
    }
}

impl Setup {
    pub fn with_providers(mut self, providers: impl Into<String>) -> Self {
        self.providers = providers.into();
        self
    }
    pub fn store(mut self, url: impl Into<String>) -> Self {
        self.store_url = url.into();
        self
    }
    pub fn base_path(mut self, path: &str) -> Self {
        self.base_path = path.into();
        self
    }
    pub fn server(mut self, extra: &str) -> Self {
        self.server_extra = extra.into();
        self
    }

    pub fn limits(mut self, lines: &str) -> Self {
        self.limits = lines.into();
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.into();
        self
    }

    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.into());
        self
    }

    pub fn toml(&self, origin: &str, listen: &str) -> String {
        let origin = self.public_url.as_deref().unwrap_or(origin);
        format!(
            "[server]\nlisten = \"{listen}\"\npublic_url = \"{origin}\"\nbase_path = \"{base}\"\nsecret = \"{secret}\"\n{extra}\n\n[store]\nurl = \"{store}\"\n{store_extra}\n\n[session]\n{session}\n\n[limits]\n{limits}\n\n{providers}\n",
            base = self.base_path,
            secret = self.secret,
            extra = self.server_extra,
            store = self.store_url,
            store_extra = self.store_extra,
            session = self.session,
            limits = self.limits,
            providers = self.providers.replace("{origin}", origin),
        )
    }

    pub async fn spawn(self) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.spawn_on(listener).await
    }

    /// Runs on a listener bound earlier (when a provider must know latch's port first).
    pub async fn spawn_on(self, listener: TcpListener) -> TestApp {
        // latch's log lines appear with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("latch=debug")
            .with_test_writer()
            .try_init();
        let addr = listener.local_addr().unwrap();
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let text = self.toml(&origin, &addr.to_string());
        let path = std::path::Path::new("test-providers.toml");
        let config = latch::config::load_str(path, &text, &|_| None)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            latch::server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("latch runs");
        });
        TestApp {
            addr,
            base: format!("{origin}{}", self.base_path),
            origin,
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
