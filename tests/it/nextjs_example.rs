//! examples/nextjs, for real: `npm ci`, `next build`, `next start` on a free port beside latch
//! (`base_path = "/api/auth"`, `public_url` = the Next.js app's origin, `access_ttl = "5s"`),
//! then Chromium (tests/browser/nextjs.mjs) signs in with next-auth/react's `signIn("dev")`,
//! sees the dashboard (middleware on latch's `/verify`, a server component on `/session`),
//! calls the API (jose on latch's JWKS), lets the access token expire and sees five parallel
//! calls share one `/refresh`, signs out and is sent to sign-in by the middleware, and meets
//! an API that refuses even a fresh token: one refresh, one retry, then sign-out, no loop;
//! and, once the session ended elsewhere, a refused refresh that leads to sign-in.
use crate::browser::run_script;
use crate::support::free_port;
use crate::support::latch::Setup;
use crate::support::node::npm_ci;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nextjs");
const NEXT: &str = "node_modules/next/dist/bin/next";
const SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/screenshots/nextjs-dashboard.png"
);

/// `next build` with latch's address (the rewrites are fixed at build time).
async fn next_build(latch_url: &str) {
    let out = Command::new("node")
        .args([NEXT, "build"])
        .current_dir(DIR)
        .env("LATCH_URL", latch_url)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), out)
        .await
        .expect("next build finishes within 10 minutes")
        .expect("node runs");
    assert!(
        out.status.success(),
        "next build failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `next start` on `port`, once it says it is ready; its output goes to the test's stderr.
async fn next_start(port: u16, env: &[(&str, &str)]) -> Child {
    let mut child = Command::new("node")
        .args([NEXT, "start", "-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(DIR)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Node.js 20+) is needed: apt-get install -y nodejs npm");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            eprintln!("next: {line}");
            if line.contains("Ready in") {
                return;
            }
        }
        panic!("next start exited before it was ready");
    };
    tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("next start is ready within 60 s");
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("next: {line}");
        }
    });
    child
}

#[tokio::test]
async fn nextjs_example_signs_in_refreshes_once_and_signs_out() {
    let started = Instant::now();
    npm_ci(
        DIR,
        "node_modules/.package-lock.json",
        "the Next.js example",
    )
    .await;
    let installed = started.elapsed();

    // latch's port first: the build needs it for the rewrite.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let latch_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    next_build(&latch_url).await;
    let built = started.elapsed();

    let port = free_port();
    // The browser's origin is `localhost`: Next.js's NextURL rewrites every loopback host
    // (127.0.0.1, [::1]) in a middleware redirect to `localhost`, so an app reached as
    // 127.0.0.1 would be sent to another origin (without its cookies). A real hostname is
    // left alone. Next.js itself listens on 127.0.0.1.
    let origin = format!("http://localhost:{port}");
    let direct = format!("http://127.0.0.1:{port}");
    let issuer = format!("{origin}/api/auth");
    let mut next = next_start(
        port,
        &[
            ("LATCH_URL", latch_url.as_str()),
            ("LATCH_ISSUER", issuer.as_str()),
            ("LATCH_CLOCK_TOLERANCE", "0"),
        ],
    )
    .await;
    let app = Setup::default()
        .base_path("/api/auth")
        .public_url(&origin)
        .with_providers("[tokens]\naccess_ttl = \"5s\"\n\n[providers.dev]\npreset = \"dev\"\n")
        .spawn_on(listener)
        .await;

    // The rewrite reaches latch, which names the app's origin in its URLs.
    latch::install_crypto_provider();
    let client = reqwest::Client::new();
    let providers: Value = client
        .get(format!("{direct}/api/auth/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        providers["dev"]["signinUrl"],
        format!("{origin}/api/auth/signin/dev")
    );

    let report = run_script(
        "nextjs.mjs",
        &[
            ("APP", origin.as_str()),
            ("EMAIL", "ada@example.com"),
            ("SCREENSHOT", SCREENSHOT),
        ],
    )
    .await;
    let browsed = started.elapsed();
    let signin = format!("{origin}/api/auth/signin?callbackUrl=%2Fdashboard");

    // Signed out, /dashboard: the middleware's redirect to latch's sign-in page.
    assert_eq!(
        report["signedOutDashboard"]["url"],
        signin.as_str(),
        "{report}"
    );
    assert!(
        report["signedOutDashboard"]["answers"]
            .as_array()
            .unwrap()
            .contains(&json!({"method": "GET", "path": "/dashboard", "status": 307})),
        "{report}"
    );
    assert_eq!(report["statusBefore"], "You are signed out.", "{report}");

    // Signed in: the server component shows latch's /session user.
    assert_eq!(report["dashboard"]["email"], "ada@example.com", "{report}");
    assert_eq!(report["dashboard"]["name"], "ada", "{report}");
    assert_eq!(
        report["dashboard"]["id"], report["session"]["user"]["id"],
        "{report}"
    );
    assert_eq!(
        report["homeEmail"], "ada@example.com",
        "useSession(): {report}"
    );

    // The API: one POST /token, one verified call, nothing in storage.
    let first = &report["firstCall"];
    assert_eq!(
        (first["ok"].as_u64(), first["refreshes"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );
    assert_eq!(first["answer"]["email"], "ada@example.com", "{report}");
    assert_eq!(
        first["answer"]["sub"], report["session"]["user"]["id"],
        "{report}"
    );
    assert_eq!(
        report["counts"]["firstCall"],
        json!({"token": 1, "refresh": 0, "refreshOk": 0, "me200": 1, "me401": 0, "signout": 0}),
        "{report}"
    );
    assert_eq!(report["tokenStored"], false, "{report}");
    assert_eq!(report["tokenLifetime"], 5, "{report}");

    // Expired: five 401s, exactly one refresh, five retries answered.
    let parallel = &report["parallel"];
    assert_eq!(
        (parallel["ok"].as_u64(), parallel["failed"].as_u64()),
        (Some(5), Some(0)),
        "{report}"
    );
    assert_eq!(parallel["refreshes"], 1, "{report}");
    assert_eq!(
        report["counts"]["parallel"],
        json!({"token": 0, "refresh": 1, "refreshOk": 1, "me200": 5, "me401": 5, "signout": 0}),
        "{report}"
    );

    // signOut(): latch ends the session; /dashboard's middleware sends to sign-in.
    assert_eq!(report["signedOut"]["url"], signin.as_str(), "{report}");
    assert_eq!(report["signedOut"]["session"], json!({}), "{report}");
    assert_eq!(report["counts"]["signedOut"]["signout"], 1, "{report}");

    // An API refusing every token: one refresh, one retry, a sign-out, and no more calls.
    let refusing = &report["refusingApi"];
    assert_eq!(refusing["url"], signin.as_str(), "{report}");
    assert_eq!(refusing["apiCalls"], 2, "{report}");
    assert_eq!(refusing["session"], json!({}), "{report}");
    let counts = &report["counts"]["refusingApi"];
    assert_eq!(
        (
            counts["token"].as_u64(),
            counts["refresh"].as_u64(),
            counts["signout"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{report}"
    );

    // The session ended elsewhere: the refresh is refused (401) and signIn() goes to sign-in,
    // with this page as callbackUrl.
    let refused = &report["refusedRefresh"];
    assert_eq!(
        (refused["ok"].as_u64(), refused["revoke"].as_u64()),
        (Some(1), Some(200)),
        "{report}"
    );
    let to_signin = format!(
        "{origin}/api/auth/signin?callbackUrl={}",
        url::form_urlencoded::byte_serialize(format!("{origin}/dashboard").as_bytes())
            .collect::<String>()
    );
    assert_eq!(refused["url"], to_signin.as_str(), "{report}");
    assert_eq!(refused["session"], json!({}), "{report}");
    assert_eq!(
        report["counts"]["refusedRefresh"],
        json!({"token": 0, "refresh": 1, "refreshOk": 0, "me200": 0, "me401": 1, "signout": 0}),
        "{report}"
    );
    assert_eq!(report["consoleErrors"], json!([]), "{report}");

    // The API refuses a missing or malformed token itself (RFC 6750 challenges).
    let me = format!("{direct}/api/me");
    let bare = client.get(&me).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
    let bad = client
        .get(&me)
        .header(AUTHORIZATION, "Bearer not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    println!(
        "nextjs example: npm ci {:.1?}, next build {:.1?}, start + browser {:.1?}",
        installed,
        built - installed,
        browsed - built
    );
    next.kill().await.unwrap();
    app.stop().await;
}
