//! Facebook: the Graph API's `me` with `picture.data.url`, and its `OAuthException` errors.
use crate::support::fakes::facebook::{self, Facebook};
use crate::support::flows::{email_of, latch_with, refused, signs_in};
use crate::support::latch::TestApp;
use reqwest::StatusCode;
use serde_json::json;

/// latch with the fake, and where its dialog is.
async fn facebook_setup() -> (Facebook, TestApp, String) {
    let f = Facebook::start().await;
    let app = latch_with(f.provider_toml()).await;
    let dialog = format!("{}/{}/dialog/oauth?", f.origin, facebook::VERSION);
    (f, app, dialog)
}

#[tokio::test]
async fn facebook_signs_in_with_picture_data_url() {
    let (_f, app, dialog) = facebook_setup().await;
    let session = signs_in(&app, "facebook", &dialog).await;
    assert_eq!(session["user"]["name"], "Jane Doe");
    assert_eq!(email_of(&session), Some("jane.doe@example.test"));
    assert_eq!(
        session["user"]["image"],
        facebook::Behavior::default().picture_url.as_str()
    );
}

#[tokio::test]
async fn facebook_oauth_exception_from_the_token_endpoint() {
    let (f, app, dialog) = facebook_setup().await;
    f.edit(|b| {
        b.token_error = Some(json!({
            "message": "This authorization code has been used.",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 36009,
            "fbtrace_id": "AbCdEf123",
        }))
    });
    refused(
        &app,
        "facebook",
        &dialog,
        "OAuthCallbackError",
        StatusCode::BAD_REQUEST,
    )
    .await;
}
