//! Refusals redirect (SPEC §3): a refused callback sends the browser to the error page, or
//! to `[server] error_url` (checked at load time against the trusted origins), with
//! `error=<Code>`; `/error` shows every code without ever answering 5xx for query input.
use crate::support::browser::{location, Browser};
use crate::support::flows::provider_callback;
use crate::support::hostile::{Behavior, Hostile};
use crate::support::latch::{Setup, TestApp};
use latch::error::ErrorCode;
use reqwest::StatusCode;

async fn denied_at(setup: Setup) -> (Hostile, TestApp) {
    let behavior = Behavior {
        authorize_error: Some("access_denied".into()),
        ..Behavior::default()
    };
    Hostile::with_app(behavior, setup).await
}

/// The provider's redirect back to latch, not yet followed.
async fn callback_url(app: &TestApp, browser: &Browser) -> String {
    provider_callback(app, browser, "/signin/hostile").await
}

#[tokio::test]
async fn a_refused_callback_goes_to_the_configured_error_url() {
    let (_hostile, app) = denied_at(Setup::default().server(
        "trusted_origins = [\"http://app.test:8080\"]\nerror_url = \"http://app.test:8080/auth/error?lang=en\"",
    ))
    .await;
    let browser = Browser::new();
    let callback = callback_url(&app, &browser).await;
    // A JSON client gets the redirect too: a callback is a browser navigation.
    let response = browser
        .get_with(&callback, ("accept", "application/json"))
        .await;
    assert_eq!(
        location(&response, StatusCode::SEE_OTHER),
        "http://app.test:8080/auth/error?lang=en&error=AccessDenied"
    );
    assert!(response.headers().get("x-request-id").is_some());
    assert!(
        response.text().await.unwrap().is_empty(),
        "no page at the callback"
    );
}

#[tokio::test]
async fn an_error_url_path_is_on_public_url_and_base_path_prefixes_the_default() {
    let (_hostile, app) = denied_at(Setup::default().server("error_url = \"/oops\"")).await;
    let browser = Browser::new();
    let response = browser.get(&callback_url(&app, &browser).await).await;
    assert_eq!(
        location(&response, StatusCode::SEE_OTHER),
        format!("{}/oops?error=AccessDenied", app.origin)
    );

    let (_hostile, app) = denied_at(Setup::default().base_path("/api/auth")).await;
    let browser = Browser::new();
    let response = browser.get(&callback_url(&app, &browser).await).await;
    let target = location(&response, StatusCode::SEE_OTHER);
    assert_eq!(
        target,
        format!("{}/api/auth/error?error=AccessDenied", app.origin)
    );
    // A reload of the error page replays nothing and shows the same answer.
    for _ in 0..2 {
        let page = browser.get(&target).await;
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        assert!(page.text().await.unwrap().contains("AccessDenied"));
    }
}

#[test]
fn error_url_must_be_public_url_or_a_trusted_origin() {
    let load = |server: &str| {
        let text = format!(
            "[server]\npublic_url = \"https://login.example.com\"\nsecret = \"{}\"\ntrusted_origins = [\"https://*.example.com\"]\n{server}\n",
            crate::support::latch::SECRET
        );
        latch::config::load_str(std::path::Path::new("providers.toml"), &text, &|_| None)
    };
    let ok = load("error_url = \"https://app.example.com/auth/error\"").unwrap();
    assert_eq!(
        ok.server.error_url.unwrap().as_str(),
        "https://app.example.com/auth/error"
    );
    assert!(load("").unwrap().server.error_url.is_none());
    for (bad, why) in [
        ("https://evil.example.org/error", "trusted_origins"),
        ("//evil.example.org/error", "trusted_origins"),
        ("javascript:alert(1)", "scheme"),
        ("https://app.example.com/e#x", "fragment"),
        ("", "empty"),
    ] {
        let err = load(&format!("error_url = \"{bad}\""))
            .expect_err(bad)
            .to_string();
        assert!(
            err.starts_with("providers.toml:5: server.error_url: "),
            "{bad}: {err}"
        );
        assert!(err.contains(why), "{bad}: {err}");
    }
}

/// `/error` for every code: the code's own status for a 4xx, 200 for a code that names a
/// server-side failure (so query input never makes it answer 5xx), and the page says what
/// happened in either case.
#[tokio::test]
async fn the_error_page_never_answers_5xx_for_query_input() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    for code in ErrorCode::ALL {
        let page = browser
            .get(&app.url(&format!("/error?error={}", code.as_str())))
            .await;
        let expected = if code.status().is_server_error() {
            StatusCode::OK
        } else {
            code.status()
        };
        assert_eq!(page.status(), expected, "{code}");
        let html = page.text().await.unwrap();
        assert!(html.contains(code.heading()), "{code}: {html}");
        assert!(
            html.contains(&format!("Error {}", code.status().as_u16())),
            "{code}: {html}"
        );
    }
    for query in [
        "error=Nope",
        "error=",
        "",
        "error=Configuration%00",
        "error=configuration",
    ] {
        let page = browser.get(&app.url(&format!("/error?{query}"))).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(page.text().await.unwrap().contains("Default"), "{query}");
    }
}

#[tokio::test]
async fn the_error_page_names_only_configured_providers() {
    let app = Setup::default().spawn().await;
    let browser = Browser::new();
    let page = browser
        .get(&app.url(
            "/error?error=OAuthAccountNotLinked&provider=dev&provider=%3Cscript%3E&provider=dev",
        ))
        .await;
    assert_eq!(page.status(), StatusCode::CONFLICT);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Sign in with Development login, as you did before."),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("or Development"),
        "{html}"
    );
    // Only for that code.
    let page = browser
        .get(&app.url("/error?error=AccessDenied&provider=dev"))
        .await;
    assert!(!page.text().await.unwrap().contains("Sign in with"));
}
