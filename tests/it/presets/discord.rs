//! Discord: global name, email with its `verified` flag, the avatar's CDN URL.
use crate::support::fakes::discord::Discord;
use crate::support::flows::{email_of, latch_with, signs_in};
use crate::support::latch::TestApp;
use serde_json::Value;

async fn discord_setup() -> (Discord, TestApp) {
    let d = Discord::start().await;
    let app = latch_with(d.provider_toml()).await;
    (d, app)
}

/// A sign-in at the fake, ending signed in: the session.
async fn discord_signs_in(d: &Discord, app: &TestApp) -> Value {
    signs_in(app, "discord", &format!("{}/oauth2/authorize?", d.origin)).await
}

#[tokio::test]
async fn discord_signs_in_with_global_name_email_and_cdn_avatar() {
    let (d, app) = discord_setup().await;
    let session = discord_signs_in(&d, &app).await;
    assert_eq!(session["user"]["name"], "Nelly");
    assert_eq!(email_of(&session), Some("nelly@discord.com"));
    assert_eq!(
        session["user"]["image"],
        "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
    );
    d.seen(|s| {
        let scope = s
            .authorize
            .last()
            .unwrap()
            .get("scope")
            .cloned()
            .unwrap_or_default();
        assert!(scope.split(' ').any(|s| s == "identify"), "{scope}");
        assert!(scope.split(' ').any(|s| s == "email"), "{scope}");
    });
}

#[tokio::test]
async fn discord_unverified_email_still_signs_in() {
    // `verified: false`: the address is kept, but must never link accounts (not observable
    // through /session yet; account linking is not built).
    let (d, app) = discord_setup().await;
    d.edit(|b| b.verified = false);
    let session = discord_signs_in(&d, &app).await;
    assert_eq!(session["user"]["name"], "Nelly");
}
