//! Real-browser flows: Chromium (the system package, driven by `playwright-core` from
//! tests/browser) signs in and out of latch the way a person does, with clicks and with the
//! keyboard alone, against the dev provider and against a real OpenID provider.
use crate::support::latch::{Setup, TestApp};
use crate::support::node::npm_ci;
use crate::support::oidc_provider::OidcProvider;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs tests/browser's pinned packages once per run (`npm ci`).
async fn install() {
    npm_ci(DIR, "node_modules/.package-lock.json", "the browser tests").await;
}

/// Runs `tests/browser/<script>` with `env`; returns its one JSON report, asserting `ok`.
pub async fn run_script(script: &str, env: &[(&str, &str)]) -> Value {
    assert!(
        Path::new(CHROMIUM).exists(),
        "Chromium is needed for the browser tests ({CHROMIUM} is missing): apt-get install -y chromium"
    );
    install().await;
    let mut command = Command::new("node");
    command
        .arg(script)
        .current_dir(DIR)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("node is installed");
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 60 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("{script} printed no JSON report\nstdout: {stdout}\nstderr: {stderr}")
        });
    assert_eq!(
        report["ok"],
        true,
        "{script} failed: {}\nsteps: {}\nstderr: {stderr}",
        report["error"].as_str().unwrap_or_default(),
        report["steps"]
    );
    report
}

/// Signs in and out in Chromium; returns the script's report after the common checks.
async fn browser_flow(app: &TestApp, mode: &str, who: &str, screenshot: Option<&str>) -> Value {
    let mut env = vec![
        ("LATCH_BASE", app.base.as_str()),
        ("MODE", mode),
        ("EMAIL", who),
    ];
    if let Some(path) = screenshot {
        env.push(("SCREENSHOT", path));
    }
    let report = run_script("flows.mjs", &env).await;
    let session_url = app.url("/session");
    assert_eq!(report["landedUrl"], session_url.as_str(), "{report}");
    assert_eq!(report["sessionAfterSignOut"], json!({}), "{report}");
    assert!(
        !report["cookiesAfterSignOut"]
            .as_array()
            .unwrap()
            .contains(&json!("latch.session-token")),
        "{report}"
    );
    let csp: Vec<&Value> = report["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().unwrap().contains("Content Security Policy"))
        .collect();
    assert!(csp.is_empty(), "the pages break their own CSP: {csp:?}");
    report
}

#[tokio::test]
async fn chromium_signs_in_and_out_with_the_dev_provider() {
    let app = Setup::default().spawn().await;
    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots/signin.png");
    let report = browser_flow(&app, "dev-click", "grace@example.com", Some(screenshot)).await;
    println!("sign-in page screenshot: {screenshot}");
    assert!(Path::new(screenshot).is_file());
    assert_eq!(report["title"], "Sign in");
    assert!(
        report["buttons"][0]
            .as_str()
            .unwrap()
            .contains("Sign in with"),
        "{report}"
    );
    assert!(
        report["providerUrl"]
            .as_str()
            .unwrap()
            .starts_with(&app.url("/dev/dev/authorize?")),
        "{report}"
    );
    let user = &report["sessionAfterSignIn"]["user"];
    assert_eq!(user["email"], "grace@example.com", "{report}");
    assert_eq!(user["name"], "grace", "{report}");
    assert!(report["sessionAfterSignIn"]["expires"].is_string());
    assert!(
        report["signoutText"]
            .as_str()
            .unwrap()
            .contains("grace@example.com"),
        "the sign-out page names the user: {report}"
    );
    app.stop().await;
}

#[tokio::test]
async fn chromium_keyboard_only_sign_in_and_out() {
    let app = Setup::default().spawn().await;
    let report = browser_flow(&app, "dev-keyboard", "linus@example.com", None).await;
    assert_eq!(
        report["sessionAfterSignIn"]["user"]["email"], "linus@example.com",
        "{report}"
    );
    // Each control is reached with a few Tab presses, none is skipped.
    for step in ["signin", "email", "signout"] {
        let tabs = report["tabs"][step].as_u64().unwrap();
        assert!(
            (1..=6).contains(&tabs),
            "{step}: {tabs} Tab presses: {report}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn chromium_signs_in_at_oidc_provider() {
    let (provider, app) = OidcProvider::with_app().await;
    let report = browser_flow(&app, "oidc-click", "bob", None).await;
    assert!(
        report["buttons"][0]
            .as_str()
            .unwrap()
            .contains("oidc-provider"),
        "{report}"
    );
    assert!(
        report["providerUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/interaction/", provider.issuer)),
        "{report}"
    );
    let user = &report["sessionAfterSignIn"]["user"];
    assert_eq!(user["email"], "bob@example.test", "{report}");
    assert_eq!(user["name"], "Bob", "{report}");
    app.stop().await;
}

/// SPEC §4's account page in Chromium: two devices, the laptop ends the phone's session from
/// the page, and the phone is signed out at once; the page fits a phone's screen.
#[tokio::test]
async fn chromium_ends_another_device_from_the_account_page() {
    let app = Setup::default().spawn().await;
    let screenshot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/screenshots/account.png"
    );
    let report = run_script(
        "account.mjs",
        &[
            ("LATCH_BASE", app.base.as_str()),
            ("EMAIL", "ada@example.com"),
            ("SCREENSHOT", screenshot),
        ],
    )
    .await;
    println!("account page screenshot: {screenshot}");
    assert_eq!(report["title"], "Your account", "{report}");
    assert_eq!(report["phoneRows"], 2, "{report}");
    assert!(
        report["overflow"].as_i64().unwrap() <= 0,
        "wider than a phone: {report}"
    );
    let before = report["rowsBefore"].as_array().unwrap();
    assert_eq!(before.len(), 2, "{report}");
    assert!(
        before
            .iter()
            .all(|r| r.as_str().unwrap().contains("Headless Chrome on Linux")),
        "{report}"
    );
    let after = report["rowsAfter"].as_array().unwrap();
    assert_eq!(after.len(), 1, "{report}");
    assert!(
        after[0].as_str().unwrap().contains("this device"),
        "{report}"
    );
    assert_eq!(report["phoneSession"], json!({}), "{report}");
    assert_eq!(
        report["phoneAccountLandedAt"],
        app.url("/signin"),
        "{report}"
    );
    assert_eq!(
        report["laptopSession"]["user"]["email"], "ada@example.com",
        "{report}"
    );
    // (Chromium asks for /favicon.ico beside the JSON of /session: that 404 is not the page's.)
    let page_errors: Vec<&Value> = report["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().contains("404 (Not Found)"))
        .collect();
    assert!(page_errors.is_empty(), "{page_errors:?}");
    app.stop().await;
}
