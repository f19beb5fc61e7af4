//! Provider answers are bounded: a body over latch's 1 MiB limit, declared with
//! `Content-Length` or streamed without one, from discovery, the JWKS, the token endpoint or
//! userinfo, ends the sign-in with `ProviderError` (502), never a 500 or a hang.
use crate::support::browser::{location, Browser};
use crate::support::hostile::{Behavior, Endpoint, Hostile, Oversize};
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::assert_refused;
use reqwest::StatusCode;
use std::time::{Duration, Instant};

/// Runs a sign-in as far as it goes; the last answer latch gave.
async fn sign_in(app: &TestApp, browser: &Browser) -> reqwest::Response {
    let start = browser
        .get(&app.url("/signin/hostile?callbackUrl=/home"))
        .await;
    if start.status() != StatusCode::FOUND {
        return start;
    }
    let authorize = location(&start, StatusCode::FOUND);
    let back = browser.get(&authorize).await;
    let callback = location(&back, StatusCode::FOUND);
    browser.get(&callback).await
}

async fn refused_when_oversized(endpoint: Endpoint) {
    for shape in [Oversize::Declared, Oversize::Chunked] {
        let (_hostile, app) = Hostile::with_app(
            Behavior {
                oversize: Some((endpoint, shape)),
                ..Behavior::default()
            },
            Setup::default(),
        )
        .await;
        let browser = Browser::new();
        let started = Instant::now();
        let response = sign_in(&app, &browser).await;
        // Refused as soon as the limit is passed: well within the provider's 2 s timeout.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{endpoint:?} {shape:?}: {:?}",
            started.elapsed()
        );
        assert_refused(
            &app,
            &browser,
            response,
            "ProviderError",
            StatusCode::BAD_GATEWAY,
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn oversized_discovery_is_refused() {
    refused_when_oversized(Endpoint::Discovery).await;
}

#[tokio::test]
async fn oversized_jwks_is_refused() {
    refused_when_oversized(Endpoint::Jwks).await;
}

#[tokio::test]
async fn oversized_token_answer_is_refused() {
    refused_when_oversized(Endpoint::Token).await;
}

#[tokio::test]
async fn oversized_userinfo_is_refused() {
    refused_when_oversized(Endpoint::Userinfo).await;
}

/// The profile image a provider sends is kept only when it is https (or http on loopback):
/// a `javascript:` or plain-http picture never reaches `/session` or the account page.
#[tokio::test]
async fn only_https_profile_images_are_kept() {
    for (picture, kept) in [
        ("https://cdn.example/a.png", true),
        ("javascript:alert(document.cookie)", false),
        ("http://cdn.example/a.png", false),
        ("data:image/svg+xml,<svg onload=alert(1)>", false),
    ] {
        let (_hostile, app) = Hostile::with_app(
            Behavior {
                claims: Box::new(move |c| c["picture"] = serde_json::json!(picture)),
                ..Behavior::default()
            },
            Setup::default(),
        )
        .await;
        let browser = Browser::new();
        let done = sign_in(&app, &browser).await;
        assert_eq!(done.status(), StatusCode::FOUND, "{picture}");
        let session = browser.json(&app.url("/session")).await;
        assert_eq!(session["user"]["email"], "mallory@example.test");
        let image = session["user"]["image"].as_str();
        assert_eq!(image, kept.then_some(picture), "{picture}: {session}");
        app.stop().await;
    }
}

/// `max_response_bytes` raises the limit for a provider whose answers are large.
#[tokio::test]
async fn max_response_bytes_raises_the_limit() {
    for shape in [Oversize::Declared, Oversize::Chunked] {
        let hostile = Hostile::start().await;
        hostile.set(Behavior {
            oversize: Some((Endpoint::Jwks, shape)),
            ..Behavior::default()
        });
        let app = Setup::default()
            .with_providers(format!(
                "{}max_response_bytes = 8388608\n",
                hostile.provider_toml()
            ))
            .spawn()
            .await;
        let browser = Browser::new();
        let done = sign_in(&app, &browser).await;
        assert_eq!(
            location(&done, StatusCode::FOUND),
            format!("{}/home", app.origin),
            "{shape:?}"
        );
        app.stop().await;
    }
}
