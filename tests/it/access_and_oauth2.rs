//! Plain OAuth 2.0 providers with a profile mapping, and per-provider access rules.
use crate::support::browser::Browser;
use crate::support::dev::dev_flow;
use crate::support::flows::through_provider;
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::assert_refused;
use crate::support::stub::{approve_at_once, serve};
use axum::response::Json;
use axum::routing::{get, post};
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

async fn user_count(db: &std::path::Path) -> usize {
    let store = latch::store::open(&format!("sqlite://{}", db.display()), Some(db))
        .await
        .unwrap();
    store.keys_with_prefix("user:").await.unwrap().len()
}

#[tokio::test]
async fn email_rules_allow_and_refuse_creating_nothing_on_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latch.db");
    let app = Setup::default()
        .store(format!("sqlite://{}", db.display()))
        .with_providers(
            "[providers.dev]\npreset = \"dev\"\nallowed_email_domains = [\"corp.test\"]\nallowed_emails = [\"guest@partner.test\"]\n",
        )
        .spawn()
        .await;
    let browser = Browser::new();
    let refused = dev_flow(&app, &browser, "dev", "mallory@evil.test", "/").await;
    assert_refused(
        &app,
        &browser,
        refused,
        "AccessDenied",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(user_count(&db).await, 0, "no user is created on refusal");

    for allowed in ["ann@corp.test", "guest@partner.test"] {
        // A browser each: a signed-in browser would link the second account instead.
        let browser = Browser::new();
        let ok = dev_flow(&app, &browser, "dev", allowed, "/").await;
        assert_eq!(ok.status(), StatusCode::FOUND, "{allowed}");
    }
    assert_eq!(user_count(&db).await, 2);
}

/// A plain OAuth 2.0 provider whose profile is nested, with knobs for broken answers.
struct Plain {
    base: String,
    userinfo: Arc<Mutex<Value>>,
}

async fn plain_provider() -> Plain {
    let userinfo = Arc::new(Mutex::new(json!({
        "data": {"account": {"uid": 9001, "mail": "kim@plain.test", "mail_ok": true, "display": "Kim", "photo": {"url": "https://img.plain.test/k.png"}}}
    })));
    let info = userinfo.clone();
    let app = Router::new()
        .route("/authorize", get(approve_at_once))
        .route(
            "/token",
            post(|body: String| async move {
                assert!(body.contains("code_verifier="), "PKCE is always on");
                Json(json!({"access_token": "at", "token_type": "bearer"}))
            }),
        )
        .route(
            "/me",
            get(move || async move { Json(info.lock().unwrap().clone()) }),
        );
    let base = serve(app).await;
    Plain { base, userinfo }
}

fn plain_toml(base: &str) -> String {
    format!(
        r#"[providers.plain]
type = "oauth2"
name = "Plain"
authorization_url = "{base}/authorize"
token_url = "{base}/token"
userinfo_url = "{base}/me"
client_id = "c"
client_secret = "s"
token_endpoint_auth_method = "client_secret_post"

[providers.plain.profile]
id = "data.account.uid"
email = "data.account.mail"
email_verified = "data.account.mail_ok"
name = "data.account.display"
image = "data.account.photo.url"
"#
    )
}

/// The provider, and latch with it as its one provider.
async fn plain_app() -> (Plain, TestApp) {
    let plain = plain_provider().await;
    let app = Setup::default()
        .with_providers(plain_toml(&plain.base))
        .spawn()
        .await;
    (plain, app)
}

async fn plain_flow(app: &TestApp, browser: &Browser) -> reqwest::Response {
    through_provider(app, browser, "/signin/plain").await
}

#[tokio::test]
async fn oauth2_provider_with_dotted_profile_mapping() {
    let (_plain, app) = plain_app().await;
    let browser = Browser::new();
    let providers = browser.json(&app.url("/providers")).await;
    assert_eq!(providers["plain"]["type"], "oauth");
    let done = plain_flow(&app, &browser).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "kim@plain.test");
    assert_eq!(session["user"]["name"], "Kim");
    assert_eq!(session["user"]["image"], "https://img.plain.test/k.png");
}

#[tokio::test]
async fn oauth2_answer_missing_the_id_is_a_clear_error() {
    let (plain, app) = plain_app().await;
    let browser = Browser::new();
    for userinfo in [
        json!({"data": {"account": {"mail": "kim@plain.test"}}}),
        // A mis-typed field too.
        json!({"data": {"account": {"uid": 1, "display": ["not", "text"]}}}),
    ] {
        *plain.userinfo.lock().unwrap() = userinfo;
        let done = plain_flow(&app, &browser).await;
        let (code, status) = ("ProviderError", StatusCode::BAD_GATEWAY);
        assert_refused(&app, &browser, done, code, status).await;
    }
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session, json!({}));
}
