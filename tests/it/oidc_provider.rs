//! Sign-in against a real OpenID provider nobody here wrote (panva's oidc-provider).
use crate::support::browser::{location, query_param, Browser};
use crate::support::latch::TestApp;
use crate::support::oidc_provider::OidcProvider;
use crate::support::refusal::assert_refused;
use reqwest::StatusCode;

/// latch -> provider authorize -> interaction page; returns the interaction URL.
async fn to_interaction(app: &TestApp, browser: &Browser, provider: &OidcProvider) -> String {
    let start = browser
        .get(&app.url("/signin/oidc?callbackUrl=/home"))
        .await;
    let authorize = location(&start, StatusCode::FOUND);
    assert!(
        authorize.starts_with(&format!("{}/auth?", provider.issuer)),
        "{authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let interaction = browser.get(&authorize).await;
    let url = location(&interaction, StatusCode::SEE_OTHER);
    assert!(url.contains("/interaction/"), "{url}");
    let page = browser.get(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    url
}

#[tokio::test]
async fn sign_in_with_oidc_provider() {
    let (provider, app) = OidcProvider::with_app().await;
    let browser = Browser::new();
    let interaction = to_interaction(&app, &browser, &provider).await;
    let login = browser
        .post_form(&format!("{interaction}/login"), &[("login", "alice")])
        .await;
    let resume = location(&login, StatusCode::SEE_OTHER);
    let back = browser.get(&resume).await;
    let callback = location(&back, StatusCode::SEE_OTHER);
    assert!(
        callback.starts_with(&app.url("/callback/oidc?")),
        "{callback}"
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(provider.issuer.as_str())
    );
    let done = browser.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "alice@example.test");
    assert_eq!(session["user"]["name"], "Alice");
}

#[tokio::test]
async fn declining_at_oidc_provider_is_access_denied() {
    let (provider, app) = OidcProvider::with_app().await;
    let browser = Browser::new();
    let interaction = to_interaction(&app, &browser, &provider).await;
    let abort = browser
        .post_form(&format!("{interaction}/abort"), &[])
        .await;
    let resume = location(&abort, StatusCode::SEE_OTHER);
    let back = browser.get(&resume).await;
    let callback = location(&back, StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("access_denied")
    );
    let done = browser.get(&callback).await;
    assert_refused(&app, &browser, done, "AccessDenied", StatusCode::FORBIDDEN).await;
}
