//! A real third-party OpenID provider: panva's `oidc-provider` from npm (pinned in
//! tests/oidc-provider/package-lock.json), started on a free port for one test.
use super::browser::{location, Browser};
use super::latch::{Setup, TestApp};
use super::node::{npm_ci, start_server};
use reqwest::StatusCode;
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::process::Child;

pub const CLIENT_ID: &str = "latch-it";
pub const CLIENT_SECRET: &str = "oidc-provider-test-secret";

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");

/// Installs the pinned packages once per test run (`npm ci`), so `cargo test` alone works.
pub async fn install() {
    npm_ci(DIR, "node_modules/oidc-provider", "the oidc-provider tests").await;
}

pub struct OidcProvider {
    pub issuer: String,
    _child: Child,
}

impl OidcProvider {
    /// Starts the provider with one client whose redirect URI is `redirect_uri`.
    pub async fn start(redirect_uri: &str) -> OidcProvider {
        Self::start_with(redirect_uri, &[]).await
    }

    /// [`Self::start`] with more of server.js's environment (`POST_LOGOUT_REDIRECT_URI`,
    /// `BACKCHANNEL_LOGOUT_URI`).
    pub async fn start_with(redirect_uri: &str, extra: &[(&str, &str)]) -> OidcProvider {
        install().await;
        let mut env = vec![
            ("CLIENT_ID", CLIENT_ID),
            ("CLIENT_SECRET", CLIENT_SECRET),
            ("REDIRECT_URI", redirect_uri),
        ];
        env.extend_from_slice(extra);
        // A piped stdin: the provider exits when it closes, should this process die first.
        let (child, issuer) = start_server(
            DIR,
            "server.js",
            &env,
            Stdio::piped(),
            Duration::from_secs(30),
        )
        .await;
        OidcProvider {
            issuer,
            _child: child,
        }
    }

    /// The provider, and latch with it as its one provider (its redirect URI is on
    /// latch's port, so that port is bound first).
    pub async fn with_app() -> (OidcProvider, TestApp) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let provider = OidcProvider::start(&format!("http://127.0.0.1:{port}/callback/oidc")).await;
        let app = Setup::default()
            .with_providers(provider.provider_toml())
            .spawn_on(listener)
            .await;
        (provider, app)
    }

    /// Signs `browser` in at latch (`app`, whose provider `oidc` is this one) as `login`,
    /// asserting the sign-in worked; the browser's jar then holds the provider's session too.
    pub async fn sign_in(&self, app: &TestApp, browser: &Browser, login: &str) {
        let start = browser
            .get(&app.url("/signin/oidc?callbackUrl=/home"))
            .await;
        let authorize = browser.get(&location(&start, StatusCode::FOUND)).await;
        let interaction = location(&authorize, StatusCode::SEE_OTHER);
        let login = browser
            .post_form(&format!("{interaction}/login"), &[("login", login)])
            .await;
        let resume = browser.get(&location(&login, StatusCode::SEE_OTHER)).await;
        let done = browser.get(&location(&resume, StatusCode::SEE_OTHER)).await;
        assert_eq!(done.status(), StatusCode::FOUND, "signed in");
    }

    /// The provider's own logout confirmation (`page`, its answer to `/session/end`), answered
    /// "Yes, sign me out": before it answers, the provider POSTs a Logout Token to each client
    /// with a back-channel logout URI. Returns its answer.
    pub async fn confirm_logout(
        &self,
        browser: &Browser,
        page: reqwest::Response,
    ) -> reqwest::Response {
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let xsrf = html
            .split(r#"name="xsrf" value=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no xsrf field in the provider's logout page: {html}"))
            .to_string();
        browser
            .post_form(
                &format!("{}/session/end/confirm", self.issuer),
                &[("xsrf", &xsrf), ("logout", "yes")],
            )
            .await
    }

    pub fn provider_toml(&self) -> String {
        format!(
            "[providers.oidc]\ntype = \"oidc\"\nname = \"oidc-provider\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            self.issuer
        )
    }
}
