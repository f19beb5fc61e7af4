//! Federated sign-out (SPEC §4, OpenID RP-Initiated Logout 1.0): with `federated_signout`,
//! `POST /signout` ends latch's session and sends the browser to the provider's
//! end-session endpoint (`id_token_hint`, `client_id`, `post_logout_redirect_uri`, `state`);
//! the provider sends it back to `/signout/done`, whose single-use state leads on to the
//! sign-out's `callbackUrl`. Against panva's oidc-provider end to end, and against the
//! in-repo fake for the exact parameters and the refusals.
use crate::support::browser::{location, query_param, Browser};
use crate::support::flows::{csrf_token, session, sign_out, through_provider};
use crate::support::hostile::{Behavior, Hostile, CLIENT_ID as HOSTILE_CLIENT};
use crate::support::latch::{Setup, TestApp};
use crate::support::oidc_provider::{OidcProvider, CLIENT_ID};
use crate::support::redis::RedisServer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The whole round trip through oidc-provider: latch's session ends at once, the provider's
/// after its own confirmation, and the browser lands on the sign-out's `callbackUrl`.
#[tokio::test]
async fn sign_out_goes_through_oidc_provider_and_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let provider = OidcProvider::start_with(
        &format!("{origin}/callback/oidc"),
        &[(
            "POST_LOGOUT_REDIRECT_URI",
            &format!("{origin}/signout/done"),
        )],
    )
    .await;
    let app = Setup::default()
        .with_providers(format!(
            "{}federated_signout = true\n",
            provider.provider_toml()
        ))
        .spawn_on(listener)
        .await;
    let browser = Browser::new();
    provider.sign_in(&app, &browser, "alice").await;

    let out = sign_out(&app, &browser, &[("callbackUrl", "/bye")]).await;
    let to_provider = location(&out, StatusCode::FOUND);
    assert!(
        to_provider.starts_with(&format!("{}/session/end?", provider.issuer)),
        "{to_provider}"
    );
    assert_eq!(
        query_param(&to_provider, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&to_provider, "post_logout_redirect_uri"),
        Some(format!("{origin}/signout/done"))
    );
    let hint = query_param(&to_provider, "id_token_hint").expect("id_token_hint");
    assert_eq!(jwt_claims(&hint)["sub"], "alice");
    assert!(query_param(&to_provider, "state").unwrap().len() >= 43);
    // latch's own session ended before the browser left.
    assert_eq!(session(&app, &browser).await, json!({}));

    // The provider asks, then sends the browser back with the state.
    let page = browser.get(&to_provider).await;
    let confirmed = provider.confirm_logout(&browser, page).await;
    let back = location(&confirmed, StatusCode::SEE_OTHER);
    assert!(
        back.starts_with(&format!("{origin}/signout/done?")),
        "{back}"
    );
    let done = browser.get(&back).await;
    assert_eq!(location(&done, StatusCode::FOUND), format!("{origin}/bye"));
    // Once only.
    let again = browser.get(&back).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("InvalidSignoutState"));

    // Signed out at the provider too: the next sign-in asks for the login again.
    let start = browser
        .get(&app.url("/signin/oidc?callbackUrl=/home"))
        .await;
    let authorize = browser.get(&location(&start, StatusCode::FOUND)).await;
    let next = location(&authorize, StatusCode::SEE_OTHER);
    assert!(
        next.contains("/interaction/"),
        "no provider session left: {next}"
    );
}

async fn hostile_app(behavior: Behavior) -> (Hostile, TestApp) {
    hostile_app_on(behavior, Setup::default()).await
}

async fn hostile_app_on(behavior: Behavior, setup: Setup) -> (Hostile, TestApp) {
    let hostile = Hostile::start().await;
    hostile.set(behavior);
    let app = setup
        .with_providers(format!(
            "{}federated_signout = true\n",
            hostile.provider_toml()
        ))
        .spawn()
        .await;
    (hostile, app)
}

/// The exact parameters, the `{"url"}` answer for next-auth, and the refusals of
/// `/signout/done`.
#[tokio::test]
async fn the_end_session_request_and_the_way_back_are_exact() {
    exact_end_session_request(hostile_app(Behavior::default()).await).await;
}

/// The same on Redis (the sealed ID token and the state are records there too).
#[tokio::test]
async fn the_end_session_request_and_the_way_back_are_exact_on_redis() {
    let redis = RedisServer::new();
    let setup = Setup::default().store(redis.url());
    exact_end_session_request(hostile_app_on(Behavior::default(), setup).await).await;
}

async fn exact_end_session_request((hostile, app): (Hostile, TestApp)) {
    let browser = Browser::new();
    through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    let out = sign_out(&app, &browser, &[("callbackUrl", "https://evil.test/")]).await;
    let to = location(&out, StatusCode::FOUND);
    assert!(
        to.starts_with(&format!("{}?", hostile.end_session_endpoint())),
        "{to}"
    );
    assert_eq!(
        query_param(&to, "client_id").as_deref(),
        Some(HOSTILE_CLIENT)
    );
    let hint = jwt_claims(&query_param(&to, "id_token_hint").unwrap());
    assert_eq!(hint["iss"], hostile.issuer.as_str());
    assert_eq!(hint["sub"], "hostile-user-1");
    let state = query_param(&to, "state").unwrap();
    // An untrusted callbackUrl was replaced by public_url before it was remembered.
    let done = browser
        .get(&app.url(&format!("/signout/done?state={state}")))
        .await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/", app.origin)
    );
    for bad in ["", "?state=", "?state=made-up", &format!("?state={state}")] {
        let refused = browser.get(&app.url(&format!("/signout/done{bad}"))).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            refused.text().await.unwrap().contains("You are signed out"),
            "{bad}"
        );
    }

    // next-auth's signOut(): {"url"} points at the provider.
    let browser = Browser::new();
    through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    let token = csrf_token(&app, &browser).await;
    let answer: Value = browser
        .post_form(
            &app.url("/signout"),
            &[
                ("csrfToken", &token),
                ("callbackUrl", "/"),
                ("json", "true"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let url = answer["url"].as_str().unwrap();
    assert!(url.starts_with(&hostile.end_session_endpoint()), "{answer}");
    assert_eq!(session(&app, &browser).await, json!({}));
}

/// A provider whose discovery has no end-session endpoint: latch signs out on its own and
/// goes to the callbackUrl as usual.
#[tokio::test]
async fn without_an_end_session_endpoint_sign_out_stays_at_latch() {
    let (_hostile, app) = hostile_app(Behavior {
        no_end_session: true,
        ..Behavior::default()
    })
    .await;
    let browser = Browser::new();
    through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    let out = sign_out(&app, &browser, &[("callbackUrl", "/bye")]).await;
    assert_eq!(
        location(&out, StatusCode::FOUND),
        format!("{}/bye", app.origin)
    );
    assert_eq!(session(&app, &browser).await, json!({}));
}
