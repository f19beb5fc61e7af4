//! examples/spa: its API (`api.mjs`, jose against latch's JWKS) accepts latch's access
//! tokens, refuses missing, forged and foreign ones, and accepts the token from a refresh.
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::latch::{Setup, TestApp};
use crate::support::node::{npm_ci, start_server};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Child;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spa");

/// `node api.mjs` on a free port.
struct Api {
    origin: String,
    _child: Child,
}

impl Api {
    async fn start(env: &[(&str, &str)]) -> Api {
        npm_ci(DIR, "node_modules/jose", "the SPA example").await;
        let (child, origin) =
            start_server(DIR, "api.mjs", env, Stdio::null(), Duration::from_secs(10)).await;
        Api {
            origin,
            _child: child,
        }
    }

    async fn me(&self, token: Option<&str>) -> Response {
        let mut request = reqwest::Client::new().get(format!("{}/api/me", self.origin));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }
}

async fn access_token(browser: &Browser, app: &TestApp, route: &str) -> String {
    let response = browser.post(&app.url(route)).await;
    assert_eq!(response.status(), StatusCode::OK, "POST {route}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn refused(response: Response) -> String {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string()
}

/// The token with one character in the middle of its signature changed.
fn tamper(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = signature.as_bytes().to_vec();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == b'A' {
        b'B'
    } else {
        b'A'
    };
    format!("{signed}.{}", String::from_utf8(signature).unwrap())
}

#[tokio::test]
async fn spa_example_api_verifies_latch_tokens() {
    // The layout the example's README describes: latch under /auth.
    let app = Setup::default().base_path("/auth").spawn().await;
    let browser = signed_in(&app, "grace@example.com").await;
    let token = access_token(&browser, &app, "/token").await;

    let issuer = app.url("");
    let jwks = app.url("/.well-known/jwks.json");
    let env = [
        ("LATCH_ISSUER", issuer.as_str()),
        ("LATCH_AUDIENCE", "api"),
        ("LATCH_JWKS_URL", jwks.as_str()),
        ("LATCH_PROXY", app.origin.as_str()),
    ];
    let billing = [
        ("LATCH_ISSUER", issuer.as_str()),
        ("LATCH_AUDIENCE", "billing"),
        ("LATCH_JWKS_URL", jwks.as_str()),
    ];
    let (api, other_audience) = tokio::join!(Api::start(&env), Api::start(&billing));

    // A valid token: the API answers with its claims.
    let ok = api.me(Some(&token)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let me: Value = ok.json().await.unwrap();
    assert_eq!(me["email"], "grace@example.com");
    assert_eq!(me["name"], "grace");
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(me["sub"], session["user"]["id"]);

    // No token: a bare challenge (RFC 6750 §3.1); a bad token: invalid_token.
    let bare = refused(api.me(None).await).await;
    assert!(
        bare.starts_with("Bearer") && !bare.contains("error="),
        "{bare}"
    );
    for bad in [tamper(&token), "not-a-jwt".to_string()] {
        let challenge = refused(api.me(Some(&bad)).await).await;
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    // The audience is checked: an API expecting another one refuses latch's "api" tokens.
    let challenge = refused(other_audience.me(Some(&token)).await).await;
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // POST /refresh (the Browser sends the path-scoped refresh cookie): the new token works.
    let refreshed = access_token(&browser, &app, "/refresh").await;
    assert_ne!(refreshed, token);
    let again = api.me(Some(&refreshed)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["email"], "grace@example.com");

    // The page and latch share the API's origin: /, /app.js, and latch under /auth.
    let client = reqwest::Client::new();
    let page = client.get(&api.origin).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("app.js"));
    let script = client
        .get(format!("{}/app.js", api.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("async function apiFetch"));
    let proxied = client
        .get(format!("{}/auth/.well-known/jwks.json", api.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    let keys: Value = proxied.json().await.unwrap();
    assert!(!keys["keys"].as_array().unwrap().is_empty());

    app.stop().await;
}
