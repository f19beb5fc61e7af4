//! Sign in with Apple: `form_post`, the name from the one-time `user` field, the client-secret
//! JWT latch mints.
use crate::support::browser::Browser;
use crate::support::fakes::apple::{self, Apple};
use crate::support::flows::{assert_signed_in, back_to_latch, email_of, latch_with, to_provider};
use crate::support::latch::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

async fn apple_setup() -> (Apple, TestApp, tempfile::TempDir) {
    let a = Apple::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = a.write_private_key(dir.path());
    let app = latch_with(a.provider_toml(&key)).await;
    (a, app, dir)
}

/// A sign-in in a fresh browser: latch's start, Apple's `form_post` page, latch's callback;
/// ends signed in. Returns the session.
async fn apple_signs_in(a: &Apple, app: &TestApp) -> Value {
    let browser = Browser::new();
    let authorize = format!("{}/auth/authorize?", a.issuer);
    let back = to_provider(app, &browser, "apple", &authorize).await;
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "Apple answers form_post with a page"
    );
    let done = back_to_latch(app, &browser, "apple", back).await;
    assert_signed_in(app, &browser, done).await
}

#[tokio::test]
async fn apple_first_sign_in_takes_the_name_from_the_user_field() {
    let (a, app, _dir) = apple_setup().await;
    let session = apple_signs_in(&a, &app).await;
    assert_eq!(session["user"]["name"], "Ada Lovelace");
    assert_eq!(email_of(&session), Some("ada@privaterelay.appleid.com"));
    a.seen(|s| {
        let q = s.authorize.last().unwrap();
        assert_eq!(
            q.get("response_mode").map(String::as_str),
            Some("form_post")
        );
        assert!(
            s.posted[0].iter().any(|(k, _)| k == "user"),
            "first authorization posts user"
        );
    });
}

#[tokio::test]
async fn apple_second_sign_in_without_user_field_keeps_the_name() {
    let (a, app, _dir) = apple_setup().await;
    apple_signs_in(&a, &app).await;
    // A second browser.
    let session = apple_signs_in(&a, &app).await;
    a.seen(|s| {
        assert_eq!(s.posted.len(), 2);
        assert!(
            s.posted[1].iter().all(|(k, _)| k != "user"),
            "Apple sends user only on the first authorization"
        );
    });
    assert_eq!(session["user"]["name"], "Ada Lovelace");
    assert_eq!(email_of(&session), Some("ada@privaterelay.appleid.com"));
}

#[tokio::test]
async fn apple_token_endpoint_gets_a_valid_client_secret_jwt() {
    let (a, app, _dir) = apple_setup().await;
    apple_signs_in(&a, &app).await;
    a.seen(|s| {
        assert!(
            !s.client_secrets.is_empty(),
            "client_secret posted in the form"
        );
        for check in &s.client_secrets {
            let (header, claims) = check.as_ref().expect("a valid client secret");
            assert_eq!(header["alg"], "ES256");
            assert_eq!(header["kid"], apple::KEY_ID);
            assert_eq!(claims["iss"], apple::TEAM_ID);
            assert_eq!(claims["sub"], apple::CLIENT_ID);
            assert_eq!(claims["aud"], apple::APPLE_AUDIENCE);
        }
        let form = s.token.last().unwrap();
        assert_eq!(
            form.get("client_id").map(String::as_str),
            Some(apple::CLIENT_ID)
        );
    });
}
