//! Groups and per-app policies (SPEC §6): Debian's nginx guards two virtual hosts with
//! different `[[policies]]` in front of one latch, through `auth_request` + `GET /verify`.
//! The dev provider's page takes groups, so users with and without them sign in.
use crate::support::browser::{location, Browser};
use crate::support::dev::start_signin;
use crate::support::flows::{access_token, session};
use crate::support::latch::{Setup, TestApp};
use crate::support::nginx::Nginx;
use reqwest::StatusCode;

const POLICIES: &str = r#"
[[policies]]
hosts = ["admin.test"]
allowed_groups = ["admins"]

[[policies]]
hosts = ["app.test"]
paths = ["/reports"]
allowed_email_domains = ["example.com"]
"#;

/// Signs `browser` in at the dev provider as `email` in `groups` (comma-separated).
async fn sign_in(app: &TestApp, browser: &Browser, email: &str, groups: &str) {
    let start = start_signin(app, browser, "dev", "/").await;
    let authorize = url::Url::parse(&location(&start, StatusCode::FOUND)).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("email".into(), email.into()));
    form.push(("groups".into(), groups.into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut submit = authorize.clone();
    submit.set_query(None);
    let approved = browser.post_form(submit.as_str(), &form).await;
    let done = browser.get(&location(&approved, StatusCode::FOUND)).await;
    assert_eq!(done.status(), StatusCode::FOUND, "signed in");
}

/// nginx on a free port with two virtual hosts behind latch's `/verify`; each answers a
/// static page with the user and groups latch sent. It forwards the raw `$http_host` (the
/// example uses `$host`) so that latch's own reading of odd host spellings is tested.
fn nginx_in_front_of(app: &TestApp) -> Nginx {
    let port = crate::support::free_port();
    let server = |name: &str| {
        format!(
            "server {{\n\
               listen 127.0.0.1:{port};\n\
               server_name {name};\n\
               root {{prefix}}/www;\n\
               location = /latch/verify {{\n\
                 internal;\n\
                 proxy_pass {latch}/verify;\n\
                 proxy_pass_request_body off;\n\
                 proxy_set_header Content-Length \"\";\n\
                 proxy_set_header Host $http_host;\n\
                 proxy_set_header X-Forwarded-Host $http_host;\n\
                 proxy_set_header X-Original-URI $request_uri;\n\
               }}\n\
               location / {{\n\
                 auth_request /latch/verify;\n\
                 auth_request_set $user $upstream_http_x_auth_request_user;\n\
                 auth_request_set $groups $upstream_http_x_auth_request_groups;\n\
                 add_header X-User $user always;\n\
                 add_header X-Groups $groups always;\n\
                 try_files /ok.txt =404;\n\
               }}\n\
             }}\n",
            latch = app.origin,
        )
    };
    let conf = format!("{}{}", server("admin.test"), server("app.test"));
    Nginx::start(port, &conf, |root| {
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::write(root.join("www/ok.txt"), "ok\n").unwrap();
    })
}

/// `GET path` at nginx for virtual host `host`, with the browser's latch cookie.
async fn visit(nginx: &Nginx, browser: &Browser, host: &str, path: &str) -> reqwest::Response {
    let cookie = browser
        .cookie("latch.session-token")
        .map(|c| format!("latch.session-token={}", c.value))
        .unwrap_or_default();
    browser
        .client
        .get(format!("{}{path}", nginx.origin))
        .header("host", host)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn nginx_guards_two_hosts_with_their_own_policies() {
    let app = Setup::default()
        .with_providers(format!("[providers.dev]\npreset = \"dev\"\n{POLICIES}"))
        .spawn()
        .await;
    let nginx = nginx_in_front_of(&app);
    let ada = Browser::new();
    sign_in(&app, &ada, "ada@example.com", "admins, staff").await;
    let bob = Browser::new();
    sign_in(&app, &bob, "bob@other.org", "").await;
    let nobody = Browser::new();

    // admin.test: only the admins group.
    let ok = visit(&nginx, &ada, "admin.test", "/").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-groups"], "admins,staff");
    assert!(!ok.headers()["x-user"].is_empty());
    assert_eq!(
        visit(&nginx, &bob, "admin.test", "/").await.status(),
        StatusCode::FORBIDDEN
    );
    // Host spellings nginx still serves as admin.test (it reads up to the first colon and
    // drops a trailing dot): latch places them the same way.
    for host in [
        "admin.test:x",
        "admin.test:1:2",
        "ADMIN.TEST.",
        "admin.test:443.",
    ] {
        assert_eq!(
            visit(&nginx, &bob, host, "/").await.status(),
            StatusCode::FORBIDDEN,
            "{host}"
        );
    }
    assert_eq!(
        visit(&nginx, &nobody, "admin.test", "/").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // app.test: anyone signed in, but /reports only for example.com addresses, however the
    // path is spelled.
    assert_eq!(
        visit(&nginx, &bob, "app.test", "/").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        visit(&nginx, &ada, "app.test", "/reports/q3")
            .await
            .status(),
        StatusCode::OK
    );
    for path in [
        "/reports",
        "/reports/q3?x=1",
        "/%72eports/q3",
        "/public/%2e%2e/reports",
        "/public/%2E%2E%2Freports",
        "//reports",
    ] {
        assert_eq!(
            visit(&nginx, &bob, "app.test", path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(
        visit(&nginx, &nobody, "app.test", "/").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Groups reach `/session`, the access token and `/verify` (also by bearer token), and
/// `?allowed_groups=` narrows `/verify` (oauth2-proxy's form).
#[tokio::test]
async fn groups_reach_the_apps_and_allowed_groups_narrows_verify() {
    let app = Setup::default().spawn().await;
    let ada = Browser::new();
    sign_in(&app, &ada, "ada@example.com", "admins,staff").await;
    let bob = Browser::new();
    sign_in(&app, &bob, "bob@example.com", "").await;

    assert_eq!(
        session(&app, &ada).await["user"]["groups"],
        serde_json::json!(["admins", "staff"])
    );
    assert_eq!(
        session(&app, &bob).await["user"]["groups"],
        serde_json::json!([])
    );
    let token = access_token(&app, &ada, "/token", &[]).await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["groups"], serde_json::json!(["admins", "staff"]));

    let verify = ada.get(&app.url("/verify")).await;
    assert_eq!(verify.headers()["x-auth-request-groups"], "admins,staff");
    assert!(bob
        .get(&app.url("/verify"))
        .await
        .headers()
        .get("x-auth-request-groups")
        .is_none());
    for (browser, query, want) in [
        (&ada, "?allowed_groups=admins", StatusCode::OK),
        (&ada, "?allowed_groups=ops,staff", StatusCode::OK),
        (&ada, "?allowed_groups=ops", StatusCode::FORBIDDEN),
        (&bob, "?allowed_groups=admins", StatusCode::FORBIDDEN),
        (&bob, "", StatusCode::OK),
        // Asked, but naming no group: a mistake, not "no restriction".
        (&ada, "?allowed_groups=", StatusCode::BAD_REQUEST),
        (&ada, "?allowed_groups=,", StatusCode::BAD_REQUEST),
    ] {
        let answer = browser.get(&app.url(&format!("/verify{query}"))).await;
        assert_eq!(answer.status(), want, "{query}");
        if want == StatusCode::FORBIDDEN {
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(body["error"], "PolicyDenied");
        }
    }
    // A bearer token carries its groups to /verify too.
    let by_token = reqwest::Client::new()
        .get(app.url("/verify?allowed_groups=admins"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), StatusCode::OK);
    assert_eq!(by_token.headers()["x-auth-request-groups"], "admins,staff");
    // The page for the code, for a proxy that sends the browser there on 403.
    let page = Browser::new()
        .get(&app.url("/error?error=PolicyDenied"))
        .await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().await.unwrap().contains("access to this page"));
}

/// The group shapes of real providers, as the fake sends them: Keycloak's paths, Okta's
/// names, Entra's object ids (in the ID token), GitLab's (in userinfo only), a custom
/// `groups_claim` with one string; names that cannot travel in a header are dropped.
#[tokio::test]
async fn provider_group_shapes_reach_the_session() {
    use crate::support::flows::through_provider;
    use crate::support::hostile::{Behavior, Hostile};
    use serde_json::{json, Value};
    let cases: Vec<(&str, &str, Behavior, Value)> = vec![
        (
            "keycloak",
            "",
            Behavior {
                claims: Box::new(|c| c["groups"] = json!(["/staff", "/staff/admins"])),
                ..Behavior::default()
            },
            json!(["/staff", "/staff/admins"]),
        ),
        (
            "okta",
            "",
            Behavior {
                claims: Box::new(|c| c["groups"] = json!(["Everyone", "Engineering", "a,b", ""])),
                ..Behavior::default()
            },
            json!(["Everyone", "Engineering"]),
        ),
        (
            "entra",
            "",
            Behavior {
                claims: Box::new(|c| c["groups"] = json!(["8a6f3c2e-0c52-4f5a-9d3e-1b2c3d4e5f60"])),
                ..Behavior::default()
            },
            json!(["8a6f3c2e-0c52-4f5a-9d3e-1b2c3d4e5f60"]),
        ),
        (
            "gitlab",
            "",
            Behavior {
                userinfo_extra: Some(json!({"groups": ["acme", "acme/web"]})),
                ..Behavior::default()
            },
            json!(["acme", "acme/web"]),
        ),
        (
            "custom claim",
            "groups_claim = \"roles\"\n",
            Behavior {
                claims: Box::new(|c| {
                    c["roles"] = json!("admin");
                    c["groups"] = json!(["ignored"]);
                }),
                ..Behavior::default()
            },
            json!(["admin"]),
        ),
    ];
    for (what, extra, behavior, want) in cases {
        let hostile = Hostile::start().await;
        hostile.set(behavior);
        let app = Setup::default()
            .with_providers(format!("{}{extra}", hostile.provider_toml()))
            .spawn()
            .await;
        let browser = Browser::new();
        let done = through_provider(&app, &browser, "/signin/hostile?callbackUrl=/").await;
        assert_eq!(done.status(), StatusCode::FOUND, "{what}");
        assert_eq!(
            session(&app, &browser).await["user"]["groups"],
            want,
            "{what}"
        );
    }
}
