//! A real third-party OpenID provider: panva's `oidc-provider` from npm (pinned in
//! tests/oidc-provider/package-lock.json), started on a free port for one test.
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CLIENT_ID: &str = "latch-it";
pub const CLIENT_SECRET: &str = "oidc-provider-test-secret";

/// Installs the pinned packages once per test run (`npm ci`), so `cargo test` alone works.
pub async fn install(dir: &'static str) {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async move {
            if std::path::Path::new(dir).join("node_modules/oidc-provider").is_dir() {
                return;
            }
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(dir)
                .status()
                .await
                .expect("npm (Node.js 20+) is needed for the oidc-provider tests: apt-get install -y nodejs npm");
            assert!(status.success(), "npm ci in tests/oidc-provider failed");
        })
        .await;
}

pub struct OidcProvider {
    pub issuer: String,
    _child: Child,
}

impl OidcProvider {
    /// Starts the provider with one client whose redirect URI is `redirect_uri`.
    pub async fn start(redirect_uri: &str) -> OidcProvider {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
        install(dir).await;
        let mut child = Command::new("node")
            .arg("server.js")
            .current_dir(dir)
            .env("PORT", "0")
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", redirect_uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("oidc-provider starts within 30 s")
            .unwrap()
            .expect("oidc-provider prints LISTENING <port>");
        let port: u16 = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from oidc-provider: {line}"));
        OidcProvider {
            issuer: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }

    pub fn provider_toml(&self) -> String {
        format!(
            "[providers.oidc]\ntype = \"oidc\"\nname = \"oidc-provider\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            self.issuer
        )
    }
}
