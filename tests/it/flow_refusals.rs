//! Everything the callback must refuse, driven by the hostile provider. Each case: no
//! session, the specific error code, a fitting status.
use crate::support::browser::{location, query_param, set_cookie_line, Browser};
use crate::support::flows::{provider_callback, refused, run_flow};
use crate::support::hostile::{Behavior, Hostile, Signing};
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::{assert_callback_refused, assert_refused};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn setup() -> (Hostile, TestApp) {
    Hostile::with_app(Behavior::default(), Setup::default()).await
}

async fn refused_with(behavior: Behavior, code: &str, status: StatusCode) {
    let (hostile, app) = Hostile::with_app(behavior, Setup::default()).await;
    refused(&app, "hostile", &hostile.issuer, code, status).await;
}

fn claims(edit: impl Fn(&mut Value) + Send + Sync + 'static) -> Behavior {
    Behavior {
        claims: Box::new(edit),
        ..Behavior::default()
    }
}

/// One test per case: the provider misbehaving so, the callback refused with the code and
/// the status.
macro_rules! refused {
    ($($name:ident: $behavior:expr => $code:literal, $status:ident;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                refused_with($behavior, $code, StatusCode::$status).await;
            }
        )*
    };
}

fn signing(signing: Signing) -> Behavior {
    Behavior {
        signing,
        ..Behavior::default()
    }
}

fn authorize_error(error: &str) -> Behavior {
    Behavior {
        authorize_error: Some(error.into()),
        ..Behavior::default()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

refused! {
    bad_signature: signing(Signing::WrongKey) => "InvalidIdToken", UNAUTHORIZED;
    alg_none: signing(Signing::AlgNone) => "InvalidIdToken", UNAUTHORIZED;
    hs256_keyed_with_the_public_key:
        signing(Signing::Hs256WithPublicKey) => "InvalidIdToken", UNAUTHORIZED;
    wrong_issuer:
        claims(|c| c["iss"] = json!("https://evil.example")) => "InvalidIdToken", UNAUTHORIZED;
    wrong_audience: claims(|c| c["aud"] = json!("someone-else")) => "InvalidIdToken", UNAUTHORIZED;
    several_audiences_without_azp:
        claims(|c| c["aud"] = json!(["latch-test", "other-app"])) => "InvalidIdToken", UNAUTHORIZED;
    several_audiences_with_another_azp: claims(|c| {
        c["aud"] = json!(["latch-test", "other-app"]);
        c["azp"] = json!("other-app");
    }) => "InvalidIdToken", UNAUTHORIZED;
    expired_beyond_skew: {
        let now = now();
        claims(move |c| c["exp"] = json!(now - 120))
    } => "InvalidIdToken", UNAUTHORIZED;
    issued_in_the_future: {
        let now = now();
        claims(move |c| c["iat"] = json!(now + 600))
    } => "InvalidIdToken", UNAUTHORIZED;
    nonce_missing: claims(|c| {
        c.as_object_mut().unwrap().remove("nonce");
    }) => "InvalidIdToken", UNAUTHORIZED;
    nonce_wrong: claims(|c| c["nonce"] = json!("not-the-nonce")) => "InvalidIdToken", UNAUTHORIZED;
    callback_iss_mismatch: Behavior {
        iss_param: Some(Some("https://other-idp.example".into())),
        ..Behavior::default()
    } => "IssuerMismatch", BAD_REQUEST;
    access_denied_at_the_provider: authorize_error("access_denied") => "AccessDenied", FORBIDDEN;
    other_provider_error:
        authorize_error("temporarily_unavailable") => "OAuthCallbackError", BAD_REQUEST;
    token_endpoint_500: Behavior {
        token_status: Some(500),
        ..Behavior::default()
    } => "ProviderError", BAD_GATEWAY;
}

#[tokio::test]
async fn a_well_behaved_hostile_provider_signs_in() {
    let (hostile, app) = setup().await;
    let browser = Browser::new();
    let done = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "mallory@example.test");
}

#[tokio::test]
async fn several_audiences_with_our_azp_are_accepted() {
    let (hostile, app) = setup().await;
    hostile.set(claims(|c| {
        c["aud"] = json!(["latch-test", "other-app"]);
        c["azp"] = json!("latch-test");
    }));
    let browser = Browser::new();
    let done = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
    assert_eq!(done.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn expired_within_skew_is_accepted() {
    let (hostile, app) = setup().await;
    let now = now();
    hostile.set(claims(move |c| c["exp"] = json!(now - 20)));
    let browser = Browser::new();
    assert_eq!(
        run_flow(&app, &browser, "hostile", &hostile.issuer)
            .await
            .status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn unknown_kid_is_refused_after_one_refetch() {
    let (hostile, app) = setup().await;
    hostile.set(signing(Signing::SecondKey));
    let browser = Browser::new();
    for (hits, why) in [
        (2, "initial fetch plus one refetch"),
        // A second unknown kid within 30 s does not refetch again.
        (2, "refetch is rate limited"),
    ] {
        let response = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
        let (code, status) = ("InvalidIdToken", StatusCode::UNAUTHORIZED);
        assert_refused(&app, &browser, response, code, status).await;
        assert_eq!(hostile.jwks_hits(), hits, "{why}");
    }
}

#[tokio::test]
async fn rotated_key_found_on_refetch() {
    let (hostile, app) = setup().await;
    let browser = Browser::new();
    // Cache the JWKS with only the first key.
    assert_eq!(
        run_flow(&app, &browser, "hostile", &hostile.issuer)
            .await
            .status(),
        StatusCode::FOUND
    );
    assert_eq!(hostile.jwks_hits(), 1);
    // The provider rotates: new tokens use a key the cache does not have.
    hostile.set(Behavior {
        signing: Signing::SecondKey,
        publish_second: true,
        ..Behavior::default()
    });
    let done = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
    assert_eq!(
        done.status(),
        StatusCode::FOUND,
        "{}",
        done.text().await.unwrap()
    );
    assert_eq!(hostile.jwks_hits(), 2);
}

#[tokio::test]
async fn token_endpoint_too_slow() {
    let started = std::time::Instant::now();
    refused_with(
        Behavior {
            token_delay: Some(Duration::from_secs(5)),
            ..Behavior::default()
        },
        "ProviderTimeout",
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 2 s provider timeout applies"
    );
}

#[tokio::test]
async fn state_replayed() {
    let (_hostile, app) = setup().await;
    let browser = Browser::new();
    let callback = provider_callback(&app, &browser, "/signin/hostile").await;
    let binding = browser.cookie("latch.flow").expect("flow cookie").value;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::FOUND);
    assert!(
        browser.cookie("latch.flow").is_none(),
        "the flow cookie is cleared once the callback is done"
    );
    // Even with the binding cookie put back, the state was used once and for all.
    browser.set_cookie("127.0.0.1", "latch.flow", &binding);
    let replay = browser.get(&callback).await;
    assert_callback_refused(&app, &browser, replay, "InvalidState").await;
}

#[tokio::test]
async fn state_tampered_or_missing() {
    let (_hostile, app) = setup().await;
    let browser = Browser::new();
    let callback = provider_callback(&app, &browser, "/signin/hostile").await;
    let state = query_param(&callback, "state").unwrap();
    let tampered = callback.replace(&state, &format!("{state}x"));
    for url in [tampered, app.url("/callback/hostile?code=abc")] {
        let response = browser.get(&url).await;
        let (code, status) = ("InvalidState", StatusCode::BAD_REQUEST);
        assert_refused(&app, &browser, response, code, status).await;
    }
}

#[tokio::test]
async fn state_from_another_browser() {
    let (_hostile, app) = setup().await;
    let victim = Browser::new();
    let attacker = Browser::new();
    let callback = provider_callback(&app, &attacker, "/signin/hostile").await;
    // The attacker's callback URL opened in the victim's browser (login CSRF).
    let response = victim.get(&callback).await;
    assert_refused(
        &app,
        &victim,
        response,
        "InvalidState",
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn provider_unreachable_gives_an_error_page_not_a_hang() {
    // A provider whose port nothing listens on.
    let port = crate::support::free_port();
    let providers = format!(
        "[providers.gone]\ntype = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"x\"\nclient_secret = \"y\"\ntimeout = \"2s\"\n"
    );
    let app = Setup::default().with_providers(providers).spawn().await;
    let browser = Browser::new();
    let response = browser.get(&app.url("/signin/gone")).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("ProviderError"));
}

#[tokio::test]
async fn https_public_url_gives_secure_host_prefixed_cookies() {
    let (_hostile, app) = Hostile::with_app(
        Behavior::default(),
        Setup::default().public_url("https://login.example.test"),
    )
    .await;
    let browser = Browser::new();
    let start = browser
        .get(&app.url("/signin/hostile?callbackUrl=/home"))
        .await;
    let flow = set_cookie_line(&start, "__Host-latch.flow").expect("prefixed flow cookie");
    assert!(
        flow.contains("Secure") && flow.contains("Path=/") && !flow.contains("Domain"),
        "{flow}"
    );
    let back = browser.get(&location(&start, StatusCode::FOUND)).await;
    let callback = location(&back, StatusCode::FOUND);
    // The provider sends the browser to the public name; reach the same server directly.
    let callback = callback.replace("https://login.example.test", &app.origin);
    let done = browser.get(&callback).await;
    let session =
        set_cookie_line(&done, "__Host-latch.session-token").expect("prefixed session cookie");
    assert!(
        session.contains("Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert_eq!(
        location(&done, StatusCode::FOUND),
        "https://login.example.test/home"
    );
    assert!(done.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
}

/// Each arm of the mapping of an `error=` on the callback (`flow::finish`): the user's
/// refusal, latch's own client settings, and everything else.
#[tokio::test]
async fn provider_errors_on_the_callback_map_to_their_codes() {
    let (hostile, app) = setup().await;
    for (error, code, status) in [
        ("access_denied", "AccessDenied", StatusCode::FORBIDDEN),
        (
            "unauthorized_client",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        ("invalid_client", "Configuration", StatusCode::BAD_GATEWAY),
        ("invalid_scope", "Configuration", StatusCode::BAD_GATEWAY),
        (
            "unsupported_response_type",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        ("invalid_request", "Configuration", StatusCode::BAD_GATEWAY),
        (
            "server_error",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
        (
            "login_required",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
        (
            "Access_Denied",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
        ("", "OAuthCallbackError", StatusCode::BAD_REQUEST),
    ] {
        hostile.set(authorize_error(error));
        let browser = Browser::new();
        let response = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
        assert_eq!(
            query_param(&location(&response, StatusCode::SEE_OTHER), "error").as_deref(),
            Some(code),
            "error={error:?}"
        );
        assert_refused(&app, &browser, response, code, status).await;
    }
}

/// The token endpoint's OAuth errors (RFC 6749 5.2): latch's client credentials refused is
/// `Configuration`; a refused code or anything else is `OAuthCallbackError`.
#[tokio::test]
async fn token_endpoint_errors_map_to_their_codes() {
    let (hostile, app) = setup().await;
    for (http, error, code, status) in [
        (
            401,
            "invalid_client",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        (
            400,
            "invalid_client",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        (
            400,
            "unauthorized_client",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        (
            400,
            "incorrect_client_credentials",
            "Configuration",
            StatusCode::BAD_GATEWAY,
        ),
        (
            400,
            "invalid_grant",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
        (
            400,
            "invalid_request",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
        (
            400,
            "unsupported_grant_type",
            "OAuthCallbackError",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        hostile.set(Behavior {
            token_error: Some((http, error.into())),
            ..Behavior::default()
        });
        let browser = Browser::new();
        let response = run_flow(&app, &browser, "hostile", &hostile.issuer).await;
        assert_eq!(
            query_param(&location(&response, StatusCode::SEE_OTHER), "error").as_deref(),
            Some(code),
            "HTTP {http} error={error:?}"
        );
        assert_refused(&app, &browser, response, code, status).await;
    }
}
