//! Sign-in through each preset (GitHub, Discord, Facebook, Apple, Microsoft Entra ID)
//! against a fake of the real provider written from its public documentation
//! (`support/fakes`). Every case runs the whole flow through latch with a browser that
//! checks each hop, and looks at the user latch made. Refusals: the specific code, a 4xx,
//! no session cookie, `/session` is `{}`. Never a 500.
//!
//! The `fake_*` tests at the end call the fakes directly, to keep the fakes honest.
use crate::support::browser::{location, query_param, Browser};
use crate::support::fakes::apple::{self, Apple};
use crate::support::fakes::discord::{self, Discord};
use crate::support::fakes::entra::{self, Entra};
use crate::support::fakes::facebook::{self, Facebook};
use crate::support::fakes::github::{self, Email, GitHub};
use crate::support::fakes::{self, parse_form_post};
use crate::support::latch::{Setup, TestApp};
use crate::support::refusal::assert_refused;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn session(app: &TestApp, browser: &Browser) -> Value {
    let response = browser.get(&app.url("/session")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// latch's start -> the provider's authorize. Returns the provider's answer.
async fn to_provider(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    provider: &str,
) -> reqwest::Response {
    let start = browser
        .get(&app.url(&format!("/signin/{id}?callbackUrl=/home")))
        .await;
    let authorize = location(&start, StatusCode::FOUND);
    assert!(
        authorize.starts_with(provider),
        "latch sends the browser to the provider: {authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256"),
        "PKCE on every flow: {authorize}"
    );
    browser.get(&authorize).await
}

/// The provider's answer -> latch's callback (a redirect back, or the auto-submitting
/// form of `response_mode=form_post`). Returns latch's answer to the callback.
async fn back_to_latch(
    app: &TestApp,
    browser: &Browser,
    id: &str,
    back: reqwest::Response,
) -> reqwest::Response {
    let callback_url = app.url(&format!("/callback/{id}"));
    if back.status() == StatusCode::OK {
        let (action, fields) = parse_form_post(&back.text().await.unwrap());
        assert_eq!(action, callback_url, "form_post goes to the callback");
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return browser.post_form(&action, &fields).await;
    }
    let callback = location(&back, StatusCode::FOUND);
    assert!(callback.starts_with(&callback_url), "{callback}");
    browser.get(&callback).await
}

async fn run_flow(app: &TestApp, browser: &Browser, id: &str, provider: &str) -> reqwest::Response {
    let back = to_provider(app, browser, id, provider).await;
    back_to_latch(app, browser, id, back).await
}

/// Signed in: the callback sends the browser on to `/home`, with a session.
async fn assert_signed_in(app: &TestApp, browser: &Browser, done: reqwest::Response) -> Value {
    assert_ne!(done.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let status = done.status();
    if status != StatusCode::FOUND {
        let body = done.text().await.unwrap_or_default();
        panic!("sign-in refused with {status}: {body}");
    }
    assert_eq!(
        location(&done, StatusCode::FOUND),
        format!("{}/home", app.origin)
    );
    assert!(browser.cookie("latch.session-token").is_some());
    let session = session(app, browser).await;
    assert!(session["user"].is_object(), "{session}");
    session
}

fn email_of(session: &Value) -> Option<&str> {
    session["user"]["email"].as_str()
}

// ---------------------------------------------------------------- GitHub

async fn github_setup(extra: &str) -> (GitHub, TestApp) {
    let gh = GitHub::start().await;
    let app = Setup::default()
        .with_providers(gh.provider_toml(extra))
        .spawn()
        .await;
    (gh, app)
}

async fn github_flow(gh: &GitHub, app: &TestApp, browser: &Browser) -> reqwest::Response {
    run_flow(
        app,
        browser,
        "github",
        &format!("{}/login/oauth/authorize?", gh.base_url),
    )
    .await
}

fn github_scopes(gh: &GitHub) -> Vec<String> {
    gh.seen(|s| {
        s.authorize
            .last()
            .and_then(|q| q.get("scope").cloned())
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

#[tokio::test]
async fn github_signs_in_with_primary_verified_email_and_name() {
    let (gh, app) = github_setup("").await;
    let browser = Browser::new();
    let done = github_flow(&gh, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(email_of(&session), Some("monalisa@example.test"));
    assert_eq!(session["user"]["name"], "Monalisa Octocat");
    assert_eq!(
        session["user"]["image"],
        "https://avatars.githubusercontent.com/u/583231?v=4"
    );
    gh.seen(|s| {
        assert!(
            s.api.iter().all(|c| c.user_agent.is_some()),
            "GitHub requires a User-Agent"
        );
        let token = s.token.last().expect("a token request");
        assert!(
            token.form.contains_key("code_verifier"),
            "PKCE verifier sent"
        );
    });
}

#[tokio::test]
async fn github_unverified_primary_email_is_never_the_users_email() {
    let (gh, app) = github_setup("").await;
    gh.edit(|b| {
        b.public_email = None;
        b.emails = vec![
            Email::new("stale@example.test", true, false),
            Email::new("fresh@example.test", false, true),
        ];
    });
    let browser = Browser::new();
    let done = github_flow(&gh, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    let email = email_of(&session);
    assert_ne!(
        email,
        Some("stale@example.test"),
        "an unverified address is never taken: {session}"
    );
    // Either no email at all, or (a choice latch may make) the verified one; never the
    // unverified primary. email_verified is not observable through /session yet.
    assert!(
        email.is_none() || email == Some("fresh@example.test"),
        "{session}"
    );
}

#[tokio::test]
async fn github_private_email_comes_from_the_emails_endpoint() {
    let (gh, app) = github_setup("").await;
    gh.edit(|b| {
        b.public_email = None;
        b.emails = vec![
            Email::new("private@example.test", true, true),
            Email::new("other@example.test", false, true),
        ];
    });
    let browser = Browser::new();
    let done = github_flow(&gh, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(email_of(&session), Some("private@example.test"));
    assert!(
        github_scopes(&gh).iter().any(|s| s == "user:email"),
        "user:email is needed for /user/emails"
    );
}

#[tokio::test]
async fn github_allowed_orgs_refuses_a_non_member() {
    let (gh, app) = github_setup("allowed_orgs = [\"acme\"]").await;
    gh.edit(|b| b.orgs = vec!["other-org".into()]);
    let browser = Browser::new();
    let response = github_flow(&gh, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "AccessDenied",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(github_scopes(&gh).iter().any(|s| s == "read:org"));
}

#[tokio::test]
async fn github_allowed_orgs_refuses_a_pending_invitation() {
    let (gh, app) = github_setup("allowed_orgs = [\"acme\"]").await;
    gh.edit(|b| b.pending_orgs = vec!["acme".into()]);
    let browser = Browser::new();
    let response = github_flow(&gh, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "AccessDenied",
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn github_allowed_orgs_admits_a_member() {
    let (gh, app) = github_setup("allowed_orgs = [\"acme\"]").await;
    gh.edit(|b| b.orgs = vec!["acme".into()]);
    let browser = Browser::new();
    let done = github_flow(&gh, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(email_of(&session), Some("monalisa@example.test"));
    assert!(
        github_scopes(&gh).iter().any(|s| s == "read:org"),
        "the authorize request asks for read:org: {:?}",
        github_scopes(&gh)
    );
    gh.seen(|s| {
        assert!(
            s.api
                .iter()
                .any(|c| c.path == "/user/memberships/orgs/acme" && c.status == 200),
            "membership checked"
        )
    });
}

#[tokio::test]
async fn github_error_in_http_200_is_oauth_callback_error() {
    let (gh, app) = github_setup("").await;
    gh.edit(|b| {
        b.token_error = Some((
            "bad_verification_code".into(),
            "The code passed is incorrect or expired.".into(),
        ))
    });
    let browser = Browser::new();
    let response = github_flow(&gh, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "OAuthCallbackError",
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn github_iss_mismatch_on_the_callback() {
    let (gh, app) = github_setup("").await;
    gh.edit(|b| b.iss_param = Some(Some("https://evil.example/login/oauth".into())));
    let browser = Browser::new();
    let response = github_flow(&gh, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "IssuerMismatch",
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn github_declined_is_access_denied() {
    let (gh, app) = github_setup("").await;
    gh.edit(|b| b.authorize_error = Some("access_denied".into()));
    let browser = Browser::new();
    let response = github_flow(&gh, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "AccessDenied",
        StatusCode::FORBIDDEN,
    )
    .await;
}

// ---------------------------------------------------------------- Discord

async fn discord_setup() -> (Discord, TestApp) {
    let d = Discord::start().await;
    let app = Setup::default()
        .with_providers(d.provider_toml())
        .spawn()
        .await;
    (d, app)
}

#[tokio::test]
async fn discord_signs_in_with_global_name_email_and_cdn_avatar() {
    let (d, app) = discord_setup().await;
    let browser = Browser::new();
    let done = run_flow(
        &app,
        &browser,
        "discord",
        &format!("{}/oauth2/authorize?", d.origin),
    )
    .await;
    let session = assert_signed_in(&app, &browser, done).await;
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
    let browser = Browser::new();
    let done = run_flow(
        &app,
        &browser,
        "discord",
        &format!("{}/oauth2/authorize?", d.origin),
    )
    .await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(session["user"]["name"], "Nelly");
}

// ---------------------------------------------------------------- Facebook

async fn facebook_setup() -> (Facebook, TestApp) {
    let f = Facebook::start().await;
    let app = Setup::default()
        .with_providers(f.provider_toml())
        .spawn()
        .await;
    (f, app)
}

#[tokio::test]
async fn facebook_signs_in_with_picture_data_url() {
    let (f, app) = facebook_setup().await;
    let browser = Browser::new();
    let done = run_flow(
        &app,
        &browser,
        "facebook",
        &format!("{}/{}/dialog/oauth?", f.origin, facebook::VERSION),
    )
    .await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(session["user"]["name"], "Jane Doe");
    assert_eq!(email_of(&session), Some("jane.doe@example.test"));
    assert_eq!(
        session["user"]["image"],
        facebook::Behavior::default().picture_url.as_str()
    );
}

#[tokio::test]
async fn facebook_oauth_exception_from_the_token_endpoint() {
    let (f, app) = facebook_setup().await;
    f.edit(|b| {
        b.token_error = Some(json!({
            "message": "This authorization code has been used.",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 36009,
            "fbtrace_id": "AbCdEf123",
        }))
    });
    let browser = Browser::new();
    let response = run_flow(
        &app,
        &browser,
        "facebook",
        &format!("{}/{}/dialog/oauth?", f.origin, facebook::VERSION),
    )
    .await;
    assert_refused(
        &app,
        &browser,
        response,
        "OAuthCallbackError",
        StatusCode::BAD_REQUEST,
    )
    .await;
}

// ---------------------------------------------------------------- Apple

async fn apple_setup() -> (Apple, TestApp, tempfile::TempDir) {
    let a = Apple::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = a.write_private_key(dir.path());
    let app = Setup::default()
        .with_providers(a.provider_toml(&key))
        .spawn()
        .await;
    (a, app, dir)
}

async fn apple_flow(a: &Apple, app: &TestApp, browser: &Browser) -> reqwest::Response {
    let back = to_provider(
        app,
        browser,
        "apple",
        &format!("{}/auth/authorize?", a.issuer),
    )
    .await;
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "Apple answers form_post with a page"
    );
    back_to_latch(app, browser, "apple", back).await
}

#[tokio::test]
async fn apple_first_sign_in_takes_the_name_from_the_user_field() {
    let (a, app, _dir) = apple_setup().await;
    let browser = Browser::new();
    let done = apple_flow(&a, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(session["user"]["name"], "Ada Lovelace");
    assert_eq!(email_of(&session), Some("ada@privaterelay.appleid.com"));
    a.seen(|s| {
        let q = s.authorize.last().unwrap();
        assert_eq!(
            q.get("response_mode").map(String::as_str),
            Some("form_post")
        );
        assert!(
            s.posted[0].iter().any(|(k, _)| k == "user"),
            "first authorization posts user"
        );
    });
}

#[tokio::test]
async fn apple_second_sign_in_without_user_field_keeps_the_name() {
    let (a, app, _dir) = apple_setup().await;
    let first = Browser::new();
    let done = apple_flow(&a, &app, &first).await;
    assert_signed_in(&app, &first, done).await;

    let second = Browser::new();
    let done = apple_flow(&a, &app, &second).await;
    let session = assert_signed_in(&app, &second, done).await;
    a.seen(|s| {
        assert_eq!(s.posted.len(), 2);
        assert!(
            s.posted[1].iter().all(|(k, _)| k != "user"),
            "Apple sends user only on the first authorization"
        );
    });
    assert_eq!(session["user"]["name"], "Ada Lovelace");
    assert_eq!(email_of(&session), Some("ada@privaterelay.appleid.com"));
}

#[tokio::test]
async fn apple_token_endpoint_gets_a_valid_client_secret_jwt() {
    let (a, app, _dir) = apple_setup().await;
    let browser = Browser::new();
    let done = apple_flow(&a, &app, &browser).await;
    assert_signed_in(&app, &browser, done).await;
    a.seen(|s| {
        assert!(
            !s.client_secrets.is_empty(),
            "client_secret posted in the form"
        );
        for check in &s.client_secrets {
            let (header, claims) = check.as_ref().expect("a valid client secret");
            assert_eq!(header["alg"], "ES256");
            assert_eq!(header["kid"], apple::KEY_ID);
            assert_eq!(claims["iss"], apple::TEAM_ID);
            assert_eq!(claims["sub"], apple::CLIENT_ID);
            assert_eq!(claims["aud"], apple::APPLE_AUDIENCE);
        }
        let form = s.token.last().unwrap();
        assert_eq!(
            form.get("client_id").map(String::as_str),
            Some(apple::CLIENT_ID)
        );
    });
}

// ---------------------------------------------------------------- Microsoft Entra ID

async fn entra_setup() -> (Entra, TestApp) {
    let e = Entra::start().await;
    let app = Setup::default()
        .with_providers(e.provider_toml())
        .spawn()
        .await;
    (e, app)
}

async fn entra_flow(e: &Entra, app: &TestApp, browser: &Browser) -> reqwest::Response {
    run_flow(
        app,
        browser,
        "microsoft-entra-id",
        &format!("{}/common/oauth2/v2.0/authorize?", e.origin),
    )
    .await
}

#[tokio::test]
async fn entra_common_accepts_a_token_whose_iss_is_its_own_tenant() {
    let (e, app) = entra_setup().await;
    let browser = Browser::new();
    let done = entra_flow(&e, &app, &browser).await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(session["user"]["name"], "Abe Lincoln");
    e.seen(|s| {
        assert!(s.discovery.iter().all(|t| t == "common"));
        let claims = fakes::jwt_claims(s.id_tokens.last().unwrap());
        assert_eq!(claims["tid"], entra::TENANT_A);
        assert_eq!(
            claims["iss"],
            format!("{}/{}/v2.0", e.origin, entra::TENANT_A)
        );
    });
}

#[tokio::test]
async fn entra_common_accepts_users_of_any_tenant() {
    let (e, app) = entra_setup().await;
    e.edit(|b| b.tid = entra::TENANT_B.into());
    let browser = Browser::new();
    let done = entra_flow(&e, &app, &browser).await;
    assert_signed_in(&app, &browser, done).await;
}

#[tokio::test]
async fn entra_common_refuses_iss_naming_another_tenant_than_tid() {
    let (e, app) = entra_setup().await;
    e.edit(|b| b.iss_tenant = Some(entra::TENANT_B.into()));
    let browser = Browser::new();
    let response = entra_flow(&e, &app, &browser).await;
    assert_refused(
        &app,
        &browser,
        response,
        "InvalidIdToken",
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

// ---------------------------------------------------------------- the fakes themselves

fn client() -> reqwest::Client {
    Browser::new().client
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Authorize with PKCE and get the code from the redirect.
async fn code_from(url: &str) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{url}");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    query_param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

fn authorize_url(base: &str, client_id: &str, scope: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", "http://127.0.0.1:1/callback/x")
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", &fakes::s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

#[tokio::test]
async fn fake_github_behaves_like_its_docs() {
    let gh = GitHub::start().await;
    let c = client();
    let auth = format!("{}/login/oauth/authorize", gh.base_url);
    let token_url = format!("{}/login/oauth/access_token", gh.base_url);

    // The redirect back carries code, state and the RFC 9207 iss.
    let response = c
        .get(authorize_url(
            &auth,
            github::CLIENT_ID,
            "read:user user:email",
        ))
        .send()
        .await
        .unwrap();
    let loc = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
    assert_eq!(query_param(&loc, "iss"), Some(gh.issuer()));
    let code = query_param(&loc, "code").unwrap();

    // A wrong verifier: HTTP 200 with an error body.
    let form = [
        ("client_id", github::CLIENT_ID),
        ("client_secret", github::CLIENT_SECRET),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:1/callback/x"),
        (
            "code_verifier",
            "wrong-wrong-wrong-wrong-wrong-wrong-wrong-wr",
        ),
    ];
    let r = c
        .post(&token_url)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_verification_code");
    assert!(body["error_uri"]
        .as_str()
        .unwrap()
        .starts_with("https://docs.github.com/"));

    // Without Accept: JSON the answer is form-encoded; Basic auth works.
    let code = code_from(&authorize_url(
        &auth,
        github::CLIENT_ID,
        "read:user user:email",
    ))
    .await;
    let r = c
        .post(&token_url)
        .basic_auth(github::CLIENT_ID, Some(github::CLIENT_SECRET))
        .form(&[("code", code.as_str()), ("code_verifier", VERIFIER)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    let fields = fakes::parse_form(&body);
    assert_eq!(fields["token_type"], "bearer");
    assert_eq!(fields["scope"], "read:user,user:email");
    let token = fields["access_token"].clone();
    assert!(token.starts_with("gho_"));

    // REST: a User-Agent is required; then the user, the emails, the org membership.
    let api = &gh.api_url;
    let r = c
        .get(format!("{api}/user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no User-Agent");
    let get = |path: &str, scheme: &str| {
        c.get(format!("{api}{path}"))
            .header("user-agent", "fake-check")
            .header("authorization", format!("{scheme} {token}"))
            .send()
    };
    let user: Value = get("/user", "token").await.unwrap().json().await.unwrap();
    assert_eq!(user["id"], 583231);
    assert_eq!(user["login"], "monalisa");
    let emails: Value = get("/user/emails", "Bearer")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emails[0]["primary"], true);
    assert_eq!(emails[0]["verified"], true);
    let r = get("/user/memberships/orgs/acme", "Bearer").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no read:org scope");
    assert_eq!(r.headers()["x-oauth-scopes"], "read:user, user:email");

    // With read:org: 404 when not a member, 200 active when one.
    gh.edit(|b| b.orgs = vec!["Acme".into()]);
    let code = code_from(&authorize_url(
        &auth,
        github::CLIENT_ID,
        "read:user read:org",
    ))
    .await;
    let r = c
        .post(&token_url)
        .header("accept", "application/json")
        .form(&[
            ("client_id", github::CLIENT_ID),
            ("client_secret", github::CLIENT_SECRET),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let token: Value = r.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let get = |path: &str| {
        c.get(format!("{api}{path}"))
            .header("user-agent", "fake-check")
            .bearer_auth(&token)
            .send()
    };
    let r = get("/user/memberships/orgs/acme").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["state"], "active");
    assert_eq!(m["organization"]["login"], "Acme");
    let r = get("/user/memberships/orgs/other").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Not Found");
    let r = get("/user/emails").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no user:email scope");
}

#[tokio::test]
async fn fake_discord_behaves_like_its_docs() {
    let d = Discord::start().await;
    let c = client();
    let code = code_from(&authorize_url(
        &format!("{}/oauth2/authorize", d.origin),
        discord::CLIENT_ID,
        "identify",
    ))
    .await;
    let token_url = format!("{}/api/oauth2/token", d.origin);
    let r = c
        .post(&token_url)
        .basic_auth(discord::CLIENT_ID, Some(discord::CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 604800);
    assert_eq!(t["scope"], "identify");
    let me: Value = c
        .get(format!("{}/api/users/@me", d.origin))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], "80351110224678912");
    assert!(
        me.get("email").is_none(),
        "no email without the email scope"
    );
    // The code is single use.
    let r = c
        .post(&token_url)
        .form(&[
            ("client_id", discord::CLIENT_ID),
            ("client_secret", discord::CLIENT_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = c
        .get(format!("{}/api/users/@me", d.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        discord::avatar_url("80351110224678912", Some("a_1269e74af4df7417b13759eae50c83dc")),
        "https://cdn.discordapp.com/avatars/80351110224678912/a_1269e74af4df7417b13759eae50c83dc.gif"
    );
}

#[tokio::test]
async fn fake_facebook_behaves_like_its_docs() {
    let f = Facebook::start().await;
    let c = client();
    let dialog = format!("{}/{}/dialog/oauth", f.origin, facebook::VERSION);
    let response = c
        .get(authorize_url(&dialog, facebook::CLIENT_ID, "email"))
        .send()
        .await
        .unwrap();
    let loc = response.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.ends_with("#_=_"), "{loc}");
    let code = query_param(&loc, "code").unwrap();
    // The documented GET exchange.
    let mut url = url::Url::parse(&format!(
        "{}/{}/oauth/access_token",
        f.origin,
        facebook::VERSION
    ))
    .unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", facebook::CLIENT_ID)
        .append_pair("redirect_uri", "http://127.0.0.1:1/callback/x")
        .append_pair("client_secret", facebook::CLIENT_SECRET)
        .append_pair("code", &code)
        .append_pair("code_verifier", VERIFIER);
    let t: Value = c
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["token_type"], "bearer");
    let token = t["access_token"].as_str().unwrap();
    // Used code: a Graph error object with HTTP 400.
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "OAuthException");
    assert!(e["error"]["code"].is_number());
    // /me: default fields id and name; the token as a query parameter or a bearer header.
    let me: Value = c
        .get(format!("{}/me?access_token={token}", f.origin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"id": "10224386245563279", "name": "Jane Doe"}));
    let me: Value = c
        .get(format!("{}/me?fields=id,name,email,picture", f.origin))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "jane.doe@example.test");
    assert_eq!(me["picture"]["data"]["is_silhouette"], false);
    let r = c
        .get(format!("{}/me?access_token=nope", f.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 190);
}

#[tokio::test]
async fn fake_apple_behaves_like_its_docs() {
    let a = Apple::start().await;
    let c = client();
    let auth = format!("{}/auth/authorize", a.issuer);
    // name/email scopes need form_post.
    let r = c
        .get(authorize_url(&auth, apple::CLIENT_ID, "name email"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let with_form_post = format!(
        "{}&response_mode=form_post",
        authorize_url(&auth, apple::CLIENT_ID, "name email")
    );
    let page = c
        .get(&with_form_post)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, fields) = parse_form_post(&page);
    assert_eq!(action, "http://127.0.0.1:1/callback/x");
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user: Value =
        serde_json::from_str(&field("user").expect("user on first authorization")).unwrap();
    assert_eq!(user["name"]["firstName"], "Ada");
    assert_eq!(user["email"], "ada@privaterelay.appleid.com");
    let code = field("code").unwrap();
    let page = c
        .get(&with_form_post)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        parse_form_post(&page).1.iter().all(|(k, _)| k != "user"),
        "only the first time"
    );

    let now = fakes::now();
    let header = json!({"alg": "ES256", "kid": apple::KEY_ID});
    let claims = |aud: &str, exp: i64| json!({"iss": apple::TEAM_ID, "iat": now, "exp": exp, "aud": aud, "sub": apple::CLIENT_ID});
    let post = |secret: String, code: String| {
        c.post(format!("{}/auth/token", a.issuer))
            .form(&[
                ("client_id", apple::CLIENT_ID.to_string()),
                ("client_secret", secret),
                ("code", code),
                ("grant_type", "authorization_code".into()),
                ("redirect_uri", "http://127.0.0.1:1/callback/x".into()),
            ])
            .send()
    };
    let error = |r: reqwest::Response| async move {
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Wrong aud, too long a life, wrong kid: invalid_client.
    let bad = a.make_client_secret(&header, &claims("https://example.com", now + 600));
    assert_eq!(
        error(post(bad, code.clone()).await.unwrap()).await,
        "invalid_client"
    );
    let bad = a.make_client_secret(
        &header,
        &claims(apple::APPLE_AUDIENCE, now + apple::MAX_SECRET_LIFETIME + 10),
    );
    assert_eq!(
        error(post(bad, code.clone()).await.unwrap()).await,
        "invalid_client"
    );
    let bad = a.make_client_secret(
        &json!({"alg": "ES256", "kid": "OTHER"}),
        &claims(apple::APPLE_AUDIENCE, now + 600),
    );
    assert_eq!(
        error(post(bad, code.clone()).await.unwrap()).await,
        "invalid_client"
    );
    // A good secret: the ID token, with Apple's string booleans and no name.
    let good = a.make_client_secret(&header, &claims(apple::APPLE_AUDIENCE, now + 600));
    let r = post(good.clone(), code.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let id = fakes::jwt_claims(t["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], a.issuer.as_str());
    assert_eq!(id["aud"], apple::CLIENT_ID);
    assert_eq!(id["email_verified"], "true");
    assert_eq!(id["is_private_email"], "true");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert!(id.get("name").is_none());
    assert_eq!(
        error(post(good, code).await.unwrap()).await,
        "invalid_grant",
        "code single use"
    );
    // The PEM is PKCS#8 that aws-lc-rs reads back.
    let pem = a.private_key_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
    )
    .expect("PKCS#8 P-256");
}

#[tokio::test]
async fn fake_entra_behaves_like_its_docs() {
    let e = Entra::start().await;
    let c = client();
    let meta: Value = c
        .get(format!(
            "{}/.well-known/openid-configuration",
            e.common_issuer()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], format!("{}/{{tenantid}}/v2.0", e.origin));
    let keys: Value = c
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &keys["keys"][0];
    let code = code_from(&authorize_url(
        meta["authorization_endpoint"].as_str().unwrap(),
        entra::CLIENT_ID,
        "openid profile email",
    ))
    .await;
    let r = c
        .post(meta["token_endpoint"].as_str().unwrap())
        .form(&[
            ("client_id", entra::CLIENT_ID),
            ("client_secret", entra::CLIENT_SECRET),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
            (
                "code_verifier",
                "not-the-verifier-not-the-verifier-not-the-ve",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 501481);

    let code = code_from(&authorize_url(
        meta["authorization_endpoint"].as_str().unwrap(),
        entra::CLIENT_ID,
        "openid profile email",
    ))
    .await;
    let t: Value = c
        .post(meta["token_endpoint"].as_str().unwrap())
        .basic_auth(entra::CLIENT_ID, Some(entra::CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:1/callback/x"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    // RS256 under the published key.
    let parts: Vec<&str> = id_token.split('.').collect();
    use base64::Engine;
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let public = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: d(key["n"].as_str().unwrap()),
        e: d(key["e"].as_str().unwrap()),
    };
    public
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &d(parts[2]),
        )
        .expect("ID token signed by the published key");
    let claims = fakes::jwt_claims(id_token);
    let template = meta["issuer"].as_str().unwrap();
    assert_eq!(
        claims["iss"],
        template.replace("{tenantid}", claims["tid"].as_str().unwrap())
    );
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["aud"], entra::CLIENT_ID);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    let info: Value = c
        .get(meta["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], claims["sub"]);
}

#[tokio::test]
async fn entra_single_tenant_works_as_plain_oidc() {
    let e = Entra::start().await;
    let toml = format!(
        "[providers.microsoft-entra-id]\ntype = \"oidc\"\nissuer = \"{}/{}/v2.0\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        e.origin,
        entra::TENANT_A,
        entra::CLIENT_ID,
        entra::CLIENT_SECRET
    );
    let app = Setup::default().with_providers(toml).spawn().await;
    let browser = Browser::new();
    let done = run_flow(
        &app,
        &browser,
        "microsoft-entra-id",
        &format!("{}/{}/oauth2/v2.0/authorize?", e.origin, entra::TENANT_A),
    )
    .await;
    let session = assert_signed_in(&app, &browser, done).await;
    assert_eq!(session["user"]["name"], "Abe Lincoln");
}

#[tokio::test]
async fn entra_single_tenant_refuses_another_tenants_iss() {
    let e = Entra::start().await;
    e.edit(|b| b.iss_tenant = Some(entra::TENANT_B.into()));
    let toml = format!(
        "[providers.microsoft-entra-id]\ntype = \"oidc\"\nissuer = \"{}/{}/v2.0\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        e.origin,
        entra::TENANT_A,
        entra::CLIENT_ID,
        entra::CLIENT_SECRET
    );
    let app = Setup::default().with_providers(toml).spawn().await;
    let browser = Browser::new();
    let response = run_flow(
        &app,
        &browser,
        "microsoft-entra-id",
        &format!("{}/{}/oauth2/v2.0/authorize?", e.origin, entra::TENANT_A),
    )
    .await;
    assert_refused(
        &app,
        &browser,
        response,
        "InvalidIdToken",
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
