//! The account page (SPEC §4): where a sign-in without `callbackUrl` lands, what it shows
//! (who, sign-in methods, live sessions with device, address and times), and its form that
//! ends one session or all the others, CSRF-checked and only ever for the user's own.
use crate::support::browser::{client_builder, location, Browser};
use crate::support::dev::sign_in_with_dev;
use crate::support::flows::{csrf_token, session};
use crate::support::latch::{Setup, TestApp};
use crate::support::redis::RedisServer;
use reqwest::StatusCode;
use serde_json::json;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

async fn signed_in_with(app: &TestApp, user_agent: &str, email: &str) -> Browser {
    let browser = Browser::with_user_agent(user_agent);
    sign_in_with_dev(app, &browser, email, "/account").await;
    browser
}

/// The store id of the browser's session (what the page's forms name).
fn session_id_of(browser: &Browser) -> String {
    latch::session::session_id(&browser.cookie("latch.session-token").unwrap().value)
}

async fn account_page(app: &TestApp, browser: &Browser) -> String {
    let page = browser.get(&app.url("/account")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    unescape(&page.text().await.unwrap())
}

/// The page's HTML with minijinja's escaped slashes read back.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
}

/// The `session` values of the page's "End" forms, in page order.
fn session_ids_on(page: &str) -> Vec<String> {
    page.split(r#"name="session" value=""#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

async fn end(app: &TestApp, browser: &Browser, form: &[(&str, &str)]) -> reqwest::Response {
    let token = csrf_token(app, browser).await;
    let mut all = vec![("csrfToken", token.as_str())];
    all.extend_from_slice(form);
    browser.post_form(&app.url("/account/sessions"), &all).await
}

/// A new user's first experience: sign in with no `callbackUrl` and land on the account page,
/// not on a 404; `/` leads there too; signed out, the page sends the browser to sign in.
#[tokio::test]
async fn a_sign_in_without_callback_url_lands_on_the_account_page() {
    let app = Setup::default().spawn().await;
    let browser = Browser::with_user_agent(FIREFOX);
    let landed = sign_in_with_dev(&app, &browser, "ada@example.com", "").await;
    assert_eq!(landed, app.url("/account"));
    let root = browser.get(&app.url("/")).await;
    assert_eq!(location(&root, StatusCode::FOUND), app.url("/account"));

    let page = account_page(&app, &browser).await;
    for shown in [
        "ada@example.com",
        "verified",
        "Development",
        "Firefox on Linux",
        "127.0.0.1",
        "this device",
        "just now",
    ] {
        assert!(page.contains(shown), "{shown:?} missing from {page}");
    }
    // One session: no "everywhere else"; the provider is linked, so nothing to link.
    assert!(!page.contains("everywhere else"), "{page}");
    assert!(!page.contains("Link Development"), "{page}");
    assert_eq!(session_ids_on(&page), vec![session_id_of(&browser)]);

    let stranger = Browser::new();
    let away = stranger.get(&app.url("/account")).await;
    assert_eq!(location(&away, StatusCode::FOUND), app.url("/signin"));
    // And the sign-in page's form comes back to the account page.
    let signin = unescape(
        &stranger
            .get(&app.url("/signin"))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(
        signin.contains(&format!(
            r#"name="callbackUrl" value="{}""#,
            app.url("/account")
        )),
        "{signin}"
    );
}

/// Under `base_path` the page and its home are under it too.
#[tokio::test]
async fn the_account_page_lives_under_base_path() {
    let app = Setup::default().base_path("/api/auth").spawn().await;
    let browser = Browser::with_user_agent(IPHONE);
    let landed = sign_in_with_dev(&app, &browser, "grace@example.com", "").await;
    assert_eq!(landed, format!("{}/api/auth/account", app.origin));
    let home = browser.get(&format!("{}/api/auth", app.origin)).await;
    assert_eq!(
        location(&home, StatusCode::FOUND),
        format!("{}/api/auth/account", app.origin)
    );
    let page = account_page(&app, &browser).await;
    assert!(page.contains("Safari on iPhone"), "{page}");
    assert!(page.contains("/api/auth/account/sessions"), "{page}");
}

/// Ending another device's session from the page signs that device out at once; "sign out
/// everywhere else" ends all but this one; ending this one signs this browser out.
#[tokio::test]
async fn sessions_ended_from_the_account_page_stay_ended() {
    ends_sessions_from_the_account_page(Setup::default().spawn().await).await;
}

/// The same on Redis, where the record and both indexes are separate keys.
#[tokio::test]
async fn sessions_ended_from_the_account_page_stay_ended_on_redis() {
    let redis = RedisServer::new();
    ends_sessions_from_the_account_page(Setup::default().store(redis.url()).spawn().await).await;
}

async fn ends_sessions_from_the_account_page(app: TestApp) {
    let email = "ann@example.com";
    let laptop = signed_in_with(&app, FIREFOX, email).await;
    let phone = signed_in_with(&app, IPHONE, email).await;

    let page = account_page(&app, &laptop).await;
    assert!(
        page.contains("Firefox on Linux") && page.contains("Safari on iPhone"),
        "{page}"
    );
    assert!(page.contains("Sign out everywhere else"), "{page}");
    let ids = session_ids_on(&page);
    assert_eq!(ids.len(), 2);
    let phone_id = session_id_of(&phone);
    assert!(ids.contains(&phone_id) && ids.contains(&session_id_of(&laptop)));

    let ended = end(&app, &laptop, &[("session", &phone_id)]).await;
    assert_eq!(location(&ended, StatusCode::SEE_OTHER), app.url("/account"));
    assert_eq!(session(&app, &phone).await, json!({}));
    assert_eq!(session(&app, &laptop).await["user"]["email"], email);
    let page = account_page(&app, &laptop).await;
    assert_eq!(session_ids_on(&page), vec![session_id_of(&laptop)]);
    // Ending it again (a second click, another tab) changes nothing and is no error.
    let again = end(&app, &laptop, &[("session", &phone_id)]).await;
    assert_eq!(location(&again, StatusCode::SEE_OTHER), app.url("/account"));

    // Everywhere else.
    let tablet = signed_in_with(&app, IPHONE, email).await;
    let desktop = signed_in_with(&app, FIREFOX, email).await;
    let others = end(&app, &laptop, &[("others", "1")]).await;
    assert_eq!(
        location(&others, StatusCode::SEE_OTHER),
        app.url("/account")
    );
    for gone in [&tablet, &desktop] {
        assert_eq!(session(&app, gone).await, json!({}));
    }
    assert_eq!(session(&app, &laptop).await["user"]["email"], email);

    // This device: signed out, cookie cleared, sent to sign in; the old cookie is dead.
    let token = laptop.cookie("latch.session-token").unwrap().value;
    let out = end(&app, &laptop, &[("session", &session_id_of(&laptop))]).await;
    assert_eq!(location(&out, StatusCode::SEE_OTHER), app.url("/signin"));
    assert!(laptop.cookie("latch.session-token").is_none());
    let replayed = Browser::new()
        .get_with(
            &app.url("/verify"),
            ("cookie", &format!("latch.session-token={token}")),
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}

/// The form is CSRF-checked, needs a live session, names what it wants, and never ends
/// another user's session (which answers exactly like one already ended).
#[tokio::test]
async fn the_account_form_refuses_what_it_must() {
    let app = Setup::default().spawn().await;
    let mallory = signed_in_with(&app, FIREFOX, "mallory@example.com").await;
    let victim = signed_in_with(&app, IPHONE, "victim@example.com").await;
    let victim_id = session_id_of(&victim);

    // No CSRF token, or a wrong one: 403 MissingCSRF, nothing ended.
    for form in [
        vec![("session", victim_id.as_str())],
        vec![("csrfToken", "forged"), ("others", "1")],
    ] {
        let refused = mallory
            .post_form(&app.url("/account/sessions"), &form)
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.text().await.unwrap().contains("MissingCSRF"));
    }
    // Another user's session: back to the page, and the victim stays signed in.
    let tried = end(&app, &mallory, &[("session", &victim_id)]).await;
    assert_eq!(location(&tried, StatusCode::SEE_OTHER), app.url("/account"));
    assert_eq!(
        session(&app, &victim).await["user"]["email"],
        "victim@example.com"
    );
    // Neither field, or both: 400 InvalidRequest.
    for form in [
        vec![],
        vec![("session", victim_id.as_str()), ("others", "1")],
    ] {
        let bad = end(&app, &mallory, &form).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.text().await.unwrap().contains("InvalidRequest"));
    }
    assert_eq!(
        session(&app, &victim).await["user"]["email"],
        "victim@example.com"
    );
    // Signed out (a valid CSRF token, no session): 401 SessionRequired.
    let stranger = Browser::new();
    let out = end(&app, &stranger, &[("others", "1")]).await;
    assert_eq!(out.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        session(&app, &victim).await["user"]["email"],
        "victim@example.com"
    );
}

/// The address a session remembers is the client's: `X-Forwarded-For` counts only from a
/// `trusted_proxies` peer. `latch sessions list` shows device and address too.
#[tokio::test]
async fn a_session_remembers_the_client_address_through_trusted_proxies_only() {
    for (trusted, shown) in [(true, "203.0.113.9"), (false, "127.0.0.1")] {
        let mut setup = Setup::default();
        if trusted {
            setup = setup.server("trusted_proxies = [\"127.0.0.1/32\"]");
        }
        let app = setup.spawn().await;
        let browser = Browser::with_client(
            client_builder().user_agent(FIREFOX).default_headers(
                [(
                    reqwest::header::HeaderName::from_static("x-forwarded-for"),
                    reqwest::header::HeaderValue::from_static("203.0.113.9"),
                )]
                .into_iter()
                .collect(),
            ),
        );
        sign_in_with_dev(&app, &browser, "fwd@example.com", "/account").await;
        let page = account_page(&app, &browser).await;
        assert!(
            page.contains(shown),
            "trusted={trusted}: {shown} missing: {page}"
        );
    }
}
