//! Flows that cannot be hijacked (issue 8, item 5): the user signed in at the start is the
//! one linked, never whoever's session cookie reaches the callback; a callback URL used in
//! another browser burns nothing; the flow cookie goes once the callback is done; and
//! `form_post` callbacks (Apple), which carry no Lax session cookie, still link and rotate.
use crate::support::browser::{location, set_cookie_line, Browser};
use crate::support::dev::{approve, dev_callback, dev_get_flow, start_signin};
use crate::support::fakes::apple::Apple;
use crate::support::fakes::parse_form_post;
use crate::support::flows::{provider_callback, session, sign_out, user_id};
use crate::support::hostile::{Behavior, Hostile};
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::assert_callback_refused;
use reqwest::StatusCode;
use serde_json::json;

const TWO_DEVS: &str =
    "[providers.dev]\npreset = \"dev\"\n\n[providers.second]\npreset = \"dev\"\nname = \"Second login\"\n";

/// `/signin/{provider}` then the dev provider's approval as `email`: the callback URL the
/// provider sends the browser to, not yet followed.
async fn dev_callback_url(app: &TestApp, browser: &Browser, provider: &str, email: &str) -> String {
    let start = start_signin(app, browser, provider, "/home").await;
    approve(browser, &location(&start, StatusCode::FOUND), email).await
}

async fn sign_in(app: &TestApp, browser: &Browser, provider: &str, email: &str) -> String {
    let callback = dev_callback_url(app, browser, provider, email).await;
    let done = browser.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    user_id(app, browser).await
}

fn flow_cookie(browser: &Browser) -> String {
    browser.cookie("latch.flow").expect("a flow cookie").value
}

/// Login CSRF with a planted flow: the attacker starts a flow, signs in at the provider
/// with their own account, and plants the flow (its binding cookie, e.g. from a sibling
/// subdomain or over plain http) and the callback URL in the victim's signed-in browser.
/// Linking by the cookie present at the callback would join the attacker's provider account
/// to the victim's user, letting the attacker sign in as the victim from then on.
#[tokio::test]
async fn a_planted_flow_never_links_the_attackers_account_to_the_victim() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let victim = Browser::new();
    let victim_id = sign_in(&app, &victim, "dev", "victim@example.com").await;

    let attacker = Browser::new();
    let callback = dev_callback_url(&app, &attacker, "second", "attacker@evil.test").await;
    victim.set_cookie("127.0.0.1", "latch.flow", &flow_cookie(&attacker));
    let landed = victim.get(&callback).await;
    let page = assert_callback_refused(&app, &victim, landed, "InvalidState").await;
    assert!(!page.contains("attacker@evil.test"), "{page}");

    // The victim is still signed in as themself; the attacker's account joined nobody.
    assert_eq!(user_id(&app, &victim).await, victim_id);
    let later = Browser::new();
    let attacker_id = sign_in(&app, &later, "second", "attacker@evil.test").await;
    assert_ne!(
        attacker_id, victim_id,
        "attacker's account linked to the victim"
    );
    let s = session(&app, &later).await;
    assert_eq!(s["user"]["email"], "attacker@evil.test");
}

/// The mirror image: the attacker starts the flow while signed in as themself, and the
/// victim's browser (signed in as the victim) completes it at the provider with the victim's
/// account. Linking to the user recorded at the start without looking at who the callback's
/// browser is would put the victim's account in the attacker's user.
#[tokio::test]
async fn a_planted_signed_in_flow_never_links_the_victims_account_to_the_attacker() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let attacker = Browser::new();
    let attacker_id = sign_in(&app, &attacker, "dev", "attacker@evil.test").await;
    let victim = Browser::new();
    let victim_id = sign_in(&app, &victim, "dev", "victim@example.com").await;

    // The attacker's signed-in start; the victim's browser finishes it as the victim.
    let start = start_signin(&app, &attacker, "second", "/home").await;
    let authorize = location(&start, StatusCode::FOUND);
    victim.set_cookie("127.0.0.1", "latch.flow", &flow_cookie(&attacker));
    let callback = approve(&victim, &authorize, "victim.second@example.com").await;
    let landed = victim.get(&callback).await;
    assert_callback_refused(&app, &victim, landed, "InvalidState").await;
    assert_eq!(user_id(&app, &victim).await, victim_id);
    assert_eq!(user_id(&app, &attacker).await, attacker_id);

    // The victim's second account belongs to nobody yet: signing in with it is a new user.
    let later = Browser::new();
    let owner = sign_in(&app, &later, "second", "victim.second@example.com").await;
    assert_ne!(
        owner, attacker_id,
        "victim's account linked to the attacker"
    );
    assert_ne!(owner, victim_id);
}

/// A signed-in start links at the callback; a sign-out before the callback means nobody is
/// signed in any more, so nothing is linked.
#[tokio::test]
async fn linking_uses_the_user_signed_in_at_the_start_while_that_session_lives() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let browser = Browser::new();
    let ann = sign_in(&app, &browser, "dev", "ann@example.com").await;
    assert_eq!(
        sign_in(&app, &browser, "second", "ann.two@example.com").await,
        ann
    );

    let callback = dev_callback_url(&app, &browser, "second", "ann.three@example.com").await;
    let out = sign_out(&app, &browser, &[]).await;
    assert_eq!(out.status(), StatusCode::FOUND);
    let done = browser.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let other = user_id(&app, &browser).await;
    assert!(!other.is_empty());
    assert_ne!(other, ann, "linked to a user who had signed out");
}

/// Someone holding the victim's callback URL (from a log, a screen share, a proxy) opens it
/// in their own browser, with no flow cookie or with their own: the state is not consumed,
/// so the victim's browser still finishes its sign-in.
#[tokio::test]
async fn a_callback_url_used_in_another_browser_does_not_burn_the_flow() {
    let app = Setup::default().spawn().await;
    let victim = Browser::new();
    let callback = dev_callback_url(&app, &victim, "dev", "vic@example.com").await;

    let stranger = Browser::new();
    let first = stranger.get(&callback).await;
    assert_callback_refused(&app, &stranger, first, "InvalidState").await;
    let other = Browser::new();
    dev_callback_url(&app, &other, "dev", "other@example.com").await;
    let second = other.get(&callback).await;
    assert_callback_refused(&app, &other, second, "InvalidState").await;
    assert_eq!(session(&app, &stranger).await, json!({}));

    let done = victim.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    assert_eq!(
        session(&app, &victim).await["user"]["email"],
        "vic@example.com"
    );
}

/// The flow cookie is cleared by the callback that ends the browser's last pending flow,
/// on success and on refusal alike; a flow still pending in another tab keeps it.
#[tokio::test]
async fn the_flow_cookie_goes_with_the_last_pending_flow() {
    let (hostile, app) = Hostile::with_app(Behavior::default(), Setup::default()).await;
    let browser = Browser::new();
    // Two tabs: two flows, one binding cookie.
    let mut callbacks = Vec::new();
    for _ in 0..2 {
        callbacks
            .push(provider_callback(&app, &browser, "/signin/hostile?callbackUrl=/home").await);
    }
    let binding = flow_cookie(&browser);
    let first = browser.get(&callbacks[0]).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let first_session = browser.cookie("latch.session-token").unwrap().value;
    assert!(
        set_cookie_line(&first, "latch.flow").is_none(),
        "the other tab's flow still needs the cookie"
    );
    assert_eq!(flow_cookie(&browser), binding);
    let second = browser.get(&callbacks[1]).await;
    assert_eq!(
        location(&second, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let cleared = set_cookie_line(&second, "latch.flow").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(browser.cookie("latch.flow").is_none());
    // The second sign-in replaced the first tab's session, which ended.
    let stale = Browser::new();
    stale.set_cookie("127.0.0.1", "latch.session-token", &first_session);
    assert_eq!(session(&app, &stale).await, json!({}));
    assert_ne!(
        browser.cookie("latch.session-token").unwrap().value,
        first_session
    );
    assert!(session(&app, &browser).await["user"].is_object());

    // A refusal ends the flow too.
    hostile.set(Behavior {
        authorize_error: Some("access_denied".into()),
        ..Behavior::default()
    });
    let callback = provider_callback(&app, &browser, "/signin/hostile").await;
    assert!(browser.cookie("latch.flow").is_some());
    let refused = browser.get(&callback).await;
    assert!(set_cookie_line(&refused, "latch.flow").is_some_and(|c| c.contains("Max-Age=0")));
    assert_callback_refused(&app, &browser, refused, "AccessDenied").await;
    assert!(browser.cookie("latch.flow").is_none());
}

async fn apple_app() -> (Apple, TestApp, tempfile::TempDir) {
    let apple = Apple::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = apple.write_private_key(dir.path());
    let providers = format!(
        "[providers.dev]\npreset = \"dev\"\n\n{}",
        apple.provider_toml(&key)
    );
    let app = Setup::default().with_providers(providers).spawn().await;
    (apple, app, dir)
}

/// Start at Apple and post Apple's form back the way a browser does: cross-site, so only
/// the `SameSite=None` flow cookie goes with it, never the Lax session cookie.
async fn apple_flow(app: &TestApp, browser: &Browser) -> reqwest::Response {
    let start = start_signin(app, browser, "apple", "/home").await;
    let page = browser.get(&location(&start, StatusCode::FOUND)).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "Apple answers with its form_post page"
    );
    let (action, fields) = parse_form_post(&page.text().await.unwrap());
    assert_eq!(action, app.url("/callback/apple"));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post_form_cross_site(&action, &fields).await
}

/// Signed in with another provider, the user adds Apple: the `form_post` callback carries
/// no session cookie, yet the Apple account is linked to the user signed in at the start,
/// and that session ends (a fresh id at every sign-in) although its cookie never came.
#[tokio::test]
async fn apple_form_post_links_and_rotates_without_the_session_cookie() {
    let (_apple, app, _dir) = apple_app().await;
    let browser = Browser::new();
    let ada = sign_in(&app, &browser, "dev", "ada@example.com").await;
    let old_token = browser.cookie("latch.session-token").unwrap().value;

    let done = apple_flow(&app, &browser).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let new_token = browser.cookie("latch.session-token").unwrap().value;
    assert_ne!(new_token, old_token, "a fresh session id");
    assert_eq!(user_id(&app, &browser).await, ada, "Apple linked to Ada");
    let cleared =
        set_cookie_line(&done, "latch.flow-xs").expect("the cross-site flow cookie is cleared");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("SameSite=None"),
        "{cleared}"
    );

    // The session the flow started from is over, on every check.
    let stale = Browser::new();
    stale.set_cookie("127.0.0.1", "latch.session-token", &old_token);
    assert_eq!(session(&app, &stale).await, json!({}));
    assert_eq!(
        stale.get(&app.url("/verify")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Later, Apple alone signs in as Ada.
    let phone = Browser::new();
    let done = apple_flow(&app, &phone).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    assert_eq!(user_id(&app, &phone).await, ada);
}

/// A signed-out `form_post` sign-in still works and makes its own user.
#[tokio::test]
async fn apple_form_post_signed_out_signs_in() {
    let (_apple, app, _dir) = apple_app().await;
    let browser = Browser::new();
    let done = apple_flow(&app, &browser).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let s = session(&app, &browser).await;
    assert_eq!(s["user"]["email"], "ada@privaterelay.appleid.com");
    assert_eq!(s["user"]["name"], "Ada Lovelace");
}

/// Checking the binding before taking the state keeps it single-use: the same callback
/// fired many times at once from its own browser signs in exactly once.
#[tokio::test]
async fn racing_callbacks_of_one_flow_sign_in_once() {
    let app = Setup::default().spawn().await;
    let browser = std::sync::Arc::new(Browser::new());
    let callback = dev_callback_url(&app, &browser, "dev", "race@example.com").await;
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (browser, callback) = (browser.clone(), callback.clone());
        racing.spawn(async move {
            let response = browser.get(&callback).await;
            (response.status(), location(&response, response.status()))
        });
    }
    let answers = racing.join_all().await;
    let home = format!("{}/home", app.origin);
    let refused = app.url("/error?error=InvalidState");
    let signed_in = answers
        .iter()
        .filter(|a| *a == &(StatusCode::FOUND, home.clone()))
        .count();
    let invalid = answers
        .iter()
        .filter(|a| *a == &(StatusCode::SEE_OTHER, refused.clone()))
        .count();
    assert_eq!((signed_in, invalid), (1, 11), "{answers:?}");
}

/// Many tabs at once (more than latch looks at one by one): the cookie stays while any of
/// them is pending and goes with the last.
#[tokio::test]
async fn the_flow_cookie_outlives_many_tabs_and_goes_with_the_last() {
    let app = Setup::default()
        .limits("signin = \"off\"\ncallback = \"off\"")
        .spawn()
        .await;
    let browser = Browser::new();
    let mut callbacks = Vec::new();
    for i in 0..17 {
        callbacks
            .push(dev_callback_url(&app, &browser, "dev", &format!("tab{i}@example.com")).await);
    }
    let last = callbacks.pop().unwrap();
    for callback in &callbacks {
        // Each tab signs in a new user over the previous one's session: refused (another
        // user already signed in here) but its flow ends all the same.
        let done = browser.get(callback).await;
        assert!(
            set_cookie_line(&done, "latch.flow").is_none(),
            "cleared with flows still pending"
        );
    }
    let done = browser.get(&last).await;
    let cleared = set_cookie_line(&done, "latch.flow").expect("the last flow clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

/// `GET /signin/{provider}` needs no CSRF token, so any site's page can make a signed-in
/// victim's browser start one, after signing that browser in to the attacker's account at
/// the provider. Such a start runs as signed out: the attacker's provider account is not
/// linked to the victim, and the victim's browser is not swapped to another user.
#[tokio::test]
async fn a_get_start_never_links_to_the_signed_in_user() {
    let app = Setup::default().with_providers(TWO_DEVS).spawn().await;
    let victim = Browser::new();
    let victim_id = sign_in(&app, &victim, "dev", "victim@example.com").await;
    let start = "/signin/second?callbackUrl=/home";
    let callback = dev_callback(&app, &victim, start, "attacker@evil.test").await;
    let landed = victim.get(&callback).await;
    assert_callback_refused(&app, &victim, landed, "InvalidState").await;
    assert_eq!(user_id(&app, &victim).await, victim_id, "still the victim");
    // The attacker's provider account belongs to nobody yet: signing in with it elsewhere
    // makes a new user, not the victim.
    let attacker = Browser::new();
    let start = "/signin/second?callbackUrl=/home";
    let done = dev_get_flow(&app, &attacker, start, "attacker@evil.test").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_ne!(user_id(&app, &attacker).await, victim_id);
}

/// Another browser's pending flow is not this browser's: the flows pending per binding
/// cookie are counted per cookie, so a callback clears its own flow cookie while a stranger
/// is still mid-sign-in.
#[tokio::test]
async fn another_browsers_pending_flow_does_not_keep_this_flow_cookie() {
    let (_hostile, app) = Hostile::with_app(Behavior::default(), Setup::default()).await;
    let (stranger, browser) = (Browser::new(), Browser::new());
    let _pending = provider_callback(&app, &stranger, "/signin/hostile").await;
    let callback = provider_callback(&app, &browser, "/signin/hostile?callbackUrl=/home").await;
    assert_ne!(flow_cookie(&stranger), flow_cookie(&browser));
    let done = browser.get(&callback).await;
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    let cleared = set_cookie_line(&done, "latch.flow").expect("the flow cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(stranger.cookie("latch.flow").is_some());
}
