//! OpenID Back-Channel Logout 1.0 (SPEC §4): a logout at the provider ends the latch
//! sessions started from that provider session, on every instance, and nothing else. The
//! happy path runs against panva's oidc-provider, which sends real Logout Tokens; every
//! refusal runs against the in-repo hostile provider, whose tokens can be wrong in each way.
use crate::support::browser::Browser;
use crate::support::flows::{session, through_provider};
use crate::support::hostile::{Behavior, Hostile, Signing};
use crate::support::latch::{Setup, TestApp};
use crate::support::oidc_provider::OidcProvider;
use crate::support::redis::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The user signs out at the provider (its own logout page, "Yes, sign me out"), which then
/// POSTs a Logout Token to every client of that provider session before it answers.
async fn sign_out_at_provider(provider: &OidcProvider, browser: &Browser) {
    let page = browser
        .get(&format!("{}/session/end", provider.issuer))
        .await;
    let confirmed = provider.confirm_logout(browser, page).await;
    assert!(
        confirmed.status().is_redirection() || confirmed.status().is_success(),
        "{}",
        confirmed.status()
    );
}

/// oidc-provider with back-channel logout to latch, and latch (on `store`) with it.
async fn provider_and_latch(store: Option<String>) -> (OidcProvider, TestApp) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let provider = OidcProvider::start_with(
        &format!("{origin}/callback/oidc"),
        &[(
            "BACKCHANNEL_LOGOUT_URI",
            &format!("{origin}/backchannel-logout/oidc"),
        )],
    )
    .await;
    let mut setup = Setup::default().with_providers(provider.provider_toml());
    if let Some(url) = store {
        setup = setup.store(url);
    }
    (provider, setup.spawn_on(listener).await)
}

/// A logout at oidc-provider ends exactly the latch session made from that provider
/// session: the same user's session from another browser (another provider session) stays.
#[tokio::test]
async fn a_logout_at_oidc_provider_ends_that_latch_session_only() {
    let redis = RedisServer::new();
    for store in [None, Some(redis.url())] {
        let (provider, app) = provider_and_latch(store.clone()).await;
        let laptop = Browser::new();
        let phone = Browser::new();
        provider.sign_in(&app, &laptop, "alice").await;
        provider.sign_in(&app, &phone, "alice").await;
        assert_eq!(
            session(&app, &laptop).await["user"]["email"],
            "alice@example.test"
        );

        sign_out_at_provider(&provider, &laptop).await;
        assert_eq!(session(&app, &laptop).await, json!({}), "{store:?}");
        assert_eq!(
            session(&app, &phone).await["user"]["email"],
            "alice@example.test",
            "{store:?}: another provider session's latch session stays"
        );
        sign_out_at_provider(&provider, &phone).await;
        assert_eq!(session(&app, &phone).await, json!({}), "{store:?}");
    }
}

/// latch with the hostile provider, and a browser signed in there from provider session
/// `sid` (none: the ID token has no `sid`).
async fn hostile_session(sid: Option<&'static str>) -> (Hostile, TestApp, Browser) {
    let behavior = Behavior {
        claims: Box::new(move |c| {
            if let Some(sid) = sid {
                c["sid"] = json!(sid);
            }
        }),
        ..Behavior::default()
    };
    let (hostile, app) = Hostile::with_app(behavior, Setup::default()).await;
    let browser = Browser::new();
    let done = through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    (hostile, app, browser)
}

/// The fake provider, whose ID tokens carry the `sid` in the returned cell (changed by the
/// test to start a new provider session), and latch in front of it.
async fn hostile_with_sid(
    first: &'static str,
) -> (
    Hostile,
    TestApp,
    std::sync::Arc<std::sync::Mutex<&'static str>>,
) {
    let sid = std::sync::Arc::new(std::sync::Mutex::new(first));
    let behavior = Behavior {
        claims: Box::new({
            let sid = sid.clone();
            move |c| c["sid"] = json!(*sid.lock().unwrap())
        }),
        ..Behavior::default()
    };
    let (hostile, app) = Hostile::with_app(behavior, Setup::default()).await;
    (hostile, app, sid)
}

async fn post_logout(app: &TestApp, provider: &str, token: &str) -> (StatusCode, Value, String) {
    let response = Browser::new()
        .post_form(
            &app.url(&format!("/backchannel-logout/{provider}")),
            &[("logout_token", token)],
        )
        .await;
    let status = response.status();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        cache,
    )
}

/// The happy path against the fake too, then the replay of the same token.
#[tokio::test]
async fn a_good_logout_token_ends_the_session_once_and_its_replay_is_refused() {
    // The provider session id the fake puts in its ID tokens, changed below.
    let (hostile, app, sid) = hostile_with_sid("hs-1").await;
    let browser = Browser::new();
    through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert!(session(&app, &browser).await["user"].is_object());
    let token = hostile.logout_token(Signing::Good, |c| {
        c["sid"] = json!("hs-1");
    });
    let (status, _, cache) = post_logout(&app, "hostile", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "no-store");
    assert_eq!(session(&app, &browser).await, json!({}));

    // An ID token from the provider session that was logged out (one fetched just before
    // the logout, say) signs in no one.
    let late = Browser::new();
    let refused = through_provider(&app, &late, "/signin/hostile?callbackUrl=/").await;
    assert_eq!(
        refused.headers()["location"],
        app.url("/error?error=ProviderSessionEnded").as_str(),
    );
    assert_eq!(session(&app, &late).await, json!({}));

    // Signed in again (a new provider session): the replayed token ends nothing.
    *sid.lock().unwrap() = "hs-1b";
    let again = Browser::new();
    through_provider(&app, &again, "/signin/hostile?callbackUrl=/").await;
    let (status, body, cache) = post_logout(&app, "hostile", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().unwrap().contains("jti"),
        "{body}"
    );
    assert_eq!(cache, "no-store");
    assert!(session(&app, &again).await["user"].is_object());
}

/// A logout naming a provider account latch does not know yet, with its `sid` (the user's
/// first sign-in is completing from that provider session): that sign-in signs in no one,
/// and one from a new provider session does.
#[tokio::test]
async fn a_logout_before_the_first_sign_in_completes_keeps_that_sign_in_out() {
    let (hostile, app, sid) = hostile_with_sid("hs-first").await;
    let token = hostile.logout_token(Signing::Good, |c| {
        c["sid"] = json!("hs-first");
    });
    let (status, _, _) = post_logout(&app, "hostile", &token).await;
    assert_eq!(status, StatusCode::OK);
    let browser = Browser::new();
    let refused = through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert_eq!(
        refused.headers()["location"],
        app.url("/error?error=ProviderSessionEnded").as_str(),
    );
    assert_eq!(session(&app, &browser).await, json!({}));
    *sid.lock().unwrap() = "hs-second";
    through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert!(session(&app, &browser).await["user"].is_object());
}

/// Every bad Logout Token is 400 `invalid_request`, and the session stays.
#[tokio::test]
async fn every_bad_logout_token_is_refused_and_ends_nothing() {
    let (hostile, app, browser) = hostile_session(Some("hs-2")).await;
    let now = chrono::Utc::now().timestamp();
    let sid = |c: &mut Value| c["sid"] = json!("hs-2");
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "alg none",
            "alg",
            hostile.logout_token(Signing::AlgNone, sid),
        ),
        (
            "HS256 keyed with the public key",
            "alg",
            hostile.logout_token(Signing::Hs256WithPublicKey, sid),
        ),
        (
            "signed with another key",
            "signature",
            hostile.logout_token(Signing::WrongKey, sid),
        ),
        (
            "unknown kid",
            "kid",
            hostile.logout_token(Signing::SecondKey, sid),
        ),
        (
            "wrong iss",
            "iss",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["iss"] = json!("https://elsewhere.test");
            }),
        ),
        (
            "wrong aud",
            "aud",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["aud"] = json!("someone-else");
            }),
        ),
        (
            "six minutes old",
            "older than",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["iat"] = json!(now - 360);
            }),
        ),
        (
            "from the future",
            "future",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["iat"] = json!(now + 600);
            }),
        ),
        (
            "expired",
            "expired",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["exp"] = json!(now - 120);
            }),
        ),
        (
            "no events",
            "events",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c.as_object_mut().unwrap().remove("events");
            }),
        ),
        (
            "an ID token (nonce)",
            "nonce",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["nonce"] = json!("n");
            }),
        ),
        (
            "neither sid nor sub",
            "neither sid nor sub",
            hostile.logout_token(Signing::Good, |c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "no jti",
            "jti",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a JWT", "compact JWS", "not-a-jwt".to_string()),
        ("empty", "logout_token", String::new()),
    ];
    for (what, reason, token) in cases {
        let (status, body, _) = post_logout(&app, "hostile", &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(reason),
            "{what}: refused for another reason: {body}"
        );
        assert!(
            session(&app, &browser).await["user"].is_object(),
            "{what} ended the session"
        );
    }
    // A good token for another provider session, or another account, ends nothing either.
    for (what, token) in [
        (
            "another sid",
            hostile.logout_token(Signing::Good, |c| c["sid"] = json!("hs-other")),
        ),
        (
            "another sub",
            hostile.logout_token(Signing::Good, |c| {
                sid(c);
                c["sub"] = json!("someone-else");
            }),
        ),
    ] {
        let (status, body, _) = post_logout(&app, "hostile", &token).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert!(session(&app, &browser).await["user"].is_object(), "{what}");
    }
    // An unknown provider is a 404.
    let token = hostile.logout_token(Signing::Good, sid);
    let (status, body, _) = post_logout(&app, "nobody", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "UnknownProvider", "{body}");
}

/// With `sub` alone, every session of that account made with this provider ends; a
/// session of the same user without a `sid` (its ID token had none) too.
#[tokio::test]
async fn a_logout_token_with_sub_alone_ends_every_session_of_the_account() {
    let (hostile, app, first) = hostile_session(None).await;
    let second = Browser::new();
    through_provider(&app, &second, "/signin/hostile?callbackUrl=/").await;
    let token = hostile.logout_token(Signing::Good, |_| {});
    let (status, body, _) = post_logout(&app, "hostile", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for browser in [&first, &second] {
        assert_eq!(session(&app, browser).await, json!({}));
    }
}
