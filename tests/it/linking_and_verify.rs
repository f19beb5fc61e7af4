//! Account linking through the real flow, and forward auth for reverse proxies.
use crate::support::browser::Browser;
use crate::support::dev::{dev_flow, sign_in_with_dev};
use crate::support::flows::{sign_out, user_id};
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::assert_callback_refused;
use reqwest::StatusCode;
use serde_json::json;

const TWO_DEVS: &str = "[providers.dev]\npreset = \"dev\"\n\n[providers.second]\npreset = \"dev\"\nname = \"Second login\"\n\n[providers.trusting]\npreset = \"dev\"\nname = \"Trusting login\"\nlink_by_email = true\n";

/// A dev sign-in with `provider` as `email` that must succeed.
async fn signs_in(app: &TestApp, browser: &Browser, provider: &str, email: &str) {
    let done = dev_flow(app, browser, provider, email, "/").await;
    assert_eq!(done.status(), StatusCode::FOUND, "{provider} {email}");
}

#[tokio::test]
async fn signed_in_user_links_another_provider() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let browser = Browser::new();
    signs_in(&app, &browser, "dev", "ann@example.com").await;
    let ann = user_id(&app, &browser).await;
    // Signed in, Ann uses the second provider with another address: linked to her.
    signs_in(&app, &browser, "second", "ann.private@example.org").await;
    assert_eq!(user_id(&app, &browser).await, ann);
    // Later, signed out, the second provider alone signs in as Ann.
    let fresh = Browser::new();
    signs_in(&app, &fresh, "second", "ann.private@example.org").await;
    assert_eq!(user_id(&app, &fresh).await, ann);
}

#[tokio::test]
async fn same_email_elsewhere_is_not_linked_without_link_by_email() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let first = Browser::new();
    dev_flow(&app, &first, "dev", "bob@example.com", "/").await;
    let bob = user_id(&app, &first).await;

    let other = Browser::new();
    let refused = dev_flow(&app, &other, "second", "bob@example.com", "/").await;
    let page = assert_callback_refused(&app, &other, refused, "OAuthAccountNotLinked").await;
    assert!(
        page.contains("Sign in with Development login"),
        "names the provider to use: {page}"
    );
    let s = other.json(&app.url("/session")).await;
    assert_eq!(s, json!({}));

    // A provider with link_by_email = true joins the verified address to Bob.
    let trusting = Browser::new();
    signs_in(&app, &trusting, "trusting", "bob@example.com").await;
    assert_eq!(user_id(&app, &trusting).await, bob);
}

#[tokio::test]
async fn verify_answers_forward_auth() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let anonymous = browser.get(&app.url("/verify")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    sign_in_with_dev(&app, &browser, "zoe@example.com", "/").await;
    let ok = browser.get(&app.url("/verify")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let id = user_id(&app, &browser).await;
    assert_eq!(ok.headers()["x-auth-request-user"], id.as_str());
    assert_eq!(ok.headers()["x-auth-request-email"], "zoe@example.com");
    assert_eq!(ok.headers()["x-auth-request-name"], "zoe");

    let forged = Browser::new();
    forged.set_cookie(
        "127.0.0.1",
        "latch.session-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(
        forged.get(&app.url("/verify")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_user() {
    let app = Setup::default().spawn().await;
    let laptop = Browser::new();
    let phone = Browser::new();
    let stranger = Browser::new();
    sign_in_with_dev(&app, &laptop, "kim@example.com", "/").await;
    sign_in_with_dev(&app, &phone, "kim@example.com", "/").await;
    sign_in_with_dev(&app, &stranger, "lee@example.com", "/").await;
    let kim = user_id(&app, &laptop).await;
    assert_eq!(user_id(&app, &phone).await, kim);

    let r = sign_out(&app, &laptop, &[("everywhere", "1")]).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    for browser in [&laptop, &phone] {
        let s = browser.json(&app.url("/session")).await;
        assert_eq!(s, json!({}));
    }
    // Other users are untouched.
    assert_ne!(user_id(&app, &stranger).await, "");
}

/// A sign-in that brings a new profile (the provider renamed the user and no longer verifies
/// the email) reaches the user's sessions on other devices: `/session` shows the new name and
/// `/verify` stops asserting the email there too.
#[tokio::test]
async fn a_new_profile_reaches_the_users_other_devices() {
    use crate::support::browser::location;
    use crate::support::hostile::{Behavior, Hostile};
    async fn sign_in(app: &TestApp, browser: &Browser) {
        let start = browser.get(&app.url("/signin/hostile?callbackUrl=/")).await;
        let back = browser.get(&location(&start, StatusCode::FOUND)).await;
        let done = browser.get(&location(&back, StatusCode::FOUND)).await;
        assert_eq!(done.status(), StatusCode::FOUND);
    }
    let (hostile, app) = Hostile::with_app(Behavior::default(), Setup::default()).await;
    let (laptop, phone) = (Browser::new(), Browser::new());
    sign_in(&app, &laptop).await;
    let verify = laptop.get(&app.url("/verify")).await;
    assert_eq!(
        verify.headers()["x-auth-request-email"],
        "mallory@example.test"
    );

    hostile.set(Behavior {
        claims: Box::new(|c| {
            c["name"] = json!("Mallory Renamed");
            c["email_verified"] = json!(false);
        }),
        ..Behavior::default()
    });
    sign_in(&app, &phone).await;
    for browser in [&laptop, &phone] {
        let session = browser.json(&app.url("/session")).await;
        assert_eq!(session["user"]["name"], "Mallory Renamed", "{session}");
        assert_eq!(session["user"]["email_verified"], false, "{session}");
        let verify = browser.get(&app.url("/verify")).await;
        assert_eq!(verify.status(), StatusCode::OK);
        assert!(verify.headers().get("x-auth-request-email").is_none());
        assert_eq!(verify.headers()["x-auth-request-name"], "Mallory Renamed");
    }
    app.stop().await;
}
