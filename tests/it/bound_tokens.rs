//! Where latch itself is asked about an access token (`/verify` with a bearer token,
//! `/introspect`), the token counts only while its session is live; only verified emails are
//! asserted to apps; and the cookie-driven token routes refuse other sites' pages.
use crate::support::browser::Browser;
use crate::support::dev::signed_in;
use crate::support::flows::{self, through_provider};
use crate::support::hostile::{Behavior, Hostile};
use crate::support::latch::{Setup, TestApp};
use base64::Engine;
use reqwest::header::{AUTHORIZATION, ORIGIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

const API_SECRET: &str = "introspection-secret-0123456789abcdef";

async fn spawn() -> TestApp {
    Setup::default()
        .with_providers(format!(
            "[tokens]\naudience = [\"api\"]\nintrospection_clients = {{ api = \"{API_SECRET}\" }}\n\n[providers.dev]\npreset = \"dev\"\n"
        ))
        .spawn()
        .await
}

async fn token_for(app: &TestApp, browser: &Browser, form: &[(&str, &str)]) -> reqwest::Response {
    browser
        .send(browser.client.post(app.url("/token")).form(form))
        .await
}

async fn access_token(app: &TestApp, browser: &Browser, form: &[(&str, &str)]) -> String {
    flows::access_token(app, browser, "/token", form).await
}

/// The claims of a JWT, unverified (the signature is checked by the routes under test).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn introspect(app: &TestApp, auth: Option<(&str, &str)>, token: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/introspect"))
        .form(&[("token", token)]);
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

async fn verify_bearer(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/verify"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

async fn error_code(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn introspection_is_active_only_for_a_live_session_and_an_authenticated_client() {
    let app = spawn().await;
    let browser = signed_in(&app, "ida@example.com").await;
    let token = access_token(&app, &browser, &[]).await;

    let good = introspect(&app, Some(("api", API_SECRET)), &token).await;
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.headers()["cache-control"], "no-store");
    let body: Value = good.json().await.unwrap();
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["aud"], "api");
    assert_eq!(body["email"], "ida@example.com");
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["sub"], claims(&token)["sub"]);
    assert_eq!(body["sid"], claims(&token)["sid"]);

    // Clients must authenticate; a wrong secret or an unknown client is 401, not `active`.
    for auth in [None, Some(("api", "wrong")), Some(("other", API_SECRET))] {
        let response = introspect(&app, auth, &token).await;
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert_eq!(
            error_code(response, StatusCode::UNAUTHORIZED).await,
            "InvalidClient"
        );
    }
    // A token that is not latch's: inactive.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in ["not-a-jwt", forged.as_str()] {
        let body: Value = introspect(&app, Some(("api", API_SECRET)), bad)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"active": false}));
    }

    // Sign out: the token's signature and exp are still good, but it is no longer active.
    let r = browser.post(&app.url("/revoke")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = introspect(&app, Some(("api", API_SECRET)), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}));
}

#[tokio::test]
async fn verify_accepts_bearer_tokens_of_live_sessions_only() {
    let app = spawn().await;
    let browser = signed_in(&app, "vic@example.com").await;
    let token = access_token(&app, &browser, &[]).await;

    let ok = verify_bearer(&app, &token).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-auth-request-email"], "vic@example.com");
    assert_eq!(
        ok.headers()["x-auth-request-user"].to_str().unwrap(),
        claims(&token)["sub"].as_str().unwrap()
    );

    // A token for another audience (the provider-token one) is not an API token.
    let other = access_token(&app, &browser, &[("audience", "latch:provider-token")]).await;
    let refused = verify_bearer(&app, &other).await;
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(
        error_code(refused, StatusCode::UNAUTHORIZED).await,
        "InvalidAccessToken"
    );
    // Malformed headers.
    for header in ["Bearer", "Basic abc", "Bearer not.a.jwt"] {
        let response = reqwest::Client::new()
            .get(app.url("/verify"))
            .header(AUTHORIZATION, header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }

    // After sign-out the same token no longer passes.
    let r = browser.post(&app.url("/revoke")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        error_code(verify_bearer(&app, &token).await, StatusCode::UNAUTHORIZED).await,
        "InvalidAccessToken"
    );
}

#[tokio::test]
async fn token_audiences_are_limited_to_the_configured_ones() {
    let app = spawn().await;
    let browser = signed_in(&app, "aud@example.com").await;
    let default = access_token(&app, &browser, &[]).await;
    assert_eq!(claims(&default)["aud"], "api");
    let provider = access_token(&app, &browser, &[("audience", "latch:provider-token")]).await;
    assert_eq!(claims(&provider)["aud"], "latch:provider-token");
    // The provider-token audience is never mixed with an API's.
    for bad in ["billing", "api billing", "api latch:provider-token"] {
        let response = token_for(&app, &browser, &[("audience", bad)]).await;
        assert_eq!(
            error_code(response, StatusCode::BAD_REQUEST).await,
            "InvalidAudience",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unverified_emails_are_never_asserted_to_apps() {
    let behavior = Behavior {
        claims: Box::new(|c| c["email_verified"] = json!(false)),
        ..Behavior::default()
    };
    let (_hostile, app) = Hostile::with_app(behavior, Setup::default()).await;
    let browser = Browser::new();
    let done = through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
    assert_eq!(done.status(), StatusCode::FOUND, "signed in");

    // The user's own session JSON shows the email, marked unverified.
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "mallory@example.test");
    assert_eq!(session["user"]["email_verified"], false, "{session}");

    // Forward auth and the access token do not assert it.
    let verify = browser.get(&app.url("/verify")).await;
    assert_eq!(verify.status(), StatusCode::OK);
    assert!(verify.headers().get("x-auth-request-email").is_none());
    assert_eq!(verify.headers()["x-auth-request-name"], "Mallory");
    let token = access_token(&app, &browser, &[]).await;
    let c = claims(&token);
    assert!(c["email"].is_null(), "{c}");
    assert_eq!(c["email_verified"], false);
    let by_bearer = verify_bearer(&app, &token).await;
    assert_eq!(by_bearer.status(), StatusCode::OK);
    assert!(by_bearer.headers().get("x-auth-request-email").is_none());
}

#[tokio::test]
async fn cookie_driven_token_routes_refuse_other_sites() {
    let app = Setup::default()
        .server("trusted_origins = [\"https://app.example.com\"]")
        .spawn()
        .await;
    let browser = signed_in(&app, "csx@example.com").await;

    let cross = |path: &str, origin: Option<&str>, fetch_site: Option<&str>| {
        let mut r = browser.client.post(app.url(path));
        if let Some(o) = origin {
            r = r.header(ORIGIN, o);
        }
        if let Some(s) = fetch_site {
            r = r.header("sec-fetch-site", s);
        }
        r
    };
    for path in ["/token", "/refresh", "/revoke"] {
        for (origin, site) in [
            (Some("https://evil.example"), None),
            (Some("null"), None),
            (
                Some("https://app.example.com.evil.example"),
                Some("cross-site"),
            ),
            (None, Some("cross-site")),
        ] {
            let response = browser.send(cross(path, origin, site)).await;
            assert_eq!(
                error_code(response, StatusCode::FORBIDDEN).await,
                "CrossSiteRequest",
                "{path} {origin:?} {site:?}"
            );
        }
    }
    // The session survived the cross-site /revoke attempts.
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "csx@example.com");

    // latch's own origin and a trusted one pass, and so do non-browser clients.
    for origin in [
        Some(app.origin.as_str()),
        Some("https://app.example.com"),
        None,
    ] {
        let response = browser.send(cross("/token", origin, None)).await;
        assert_eq!(response.status(), StatusCode::OK, "{origin:?}");
    }
    let response = browser
        .send(cross("/token", None, Some("same-origin")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
