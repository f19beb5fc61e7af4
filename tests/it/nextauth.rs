//! The real `next-auth/react` client (npm `next-auth` v4, pinned in tests/browser), unchanged,
//! in Chromium against latch at `base_path = "/api/auth"`: the page it runs in is on latch's
//! origin, so its relative `/api/auth/*` calls reach latch as a Next.js app's would.
use crate::browser::run_script;
use crate::support::latch::Setup;
use serde_json::Value;

#[tokio::test]
async fn next_auth_react_client_works_unchanged() {
    let app = Setup::default().base_path("/api/auth").spawn().await;
    let report = run_script(
        "nextauth.mjs",
        &[
            ("LATCH_ORIGIN", app.origin.as_str()),
            ("EMAIL", "ada@example.com"),
        ],
    )
    .await;
    let app_url = format!("{}/app", app.origin);

    // getProviders(), getCsrfToken(), getSession() before signing in.
    assert_eq!(report["providers"]["dev"]["id"], "dev", "{report}");
    assert_eq!(
        report["providers"]["dev"]["signinUrl"],
        app.url("/signin/dev"),
        "{report}"
    );
    assert!(
        report["csrfToken"].as_str().is_some_and(|t| t.len() >= 32),
        "{report}"
    );
    assert_eq!(report["sessionBefore"], Value::Null, "{report}");

    // signIn('dev', {redirect: false, callbackUrl}): v4 posts json=true and reads {url};
    // for an OAuth provider it then navigates there (it resolves undefined by design).
    let exchanges = report["exchanges"].as_array().unwrap();
    let signin = exchanges
        .iter()
        .find(|e| e["path"] == "/api/auth/signin/dev")
        .unwrap_or_else(|| panic!("no POST /api/auth/signin/dev: {report}"));
    assert_eq!(signin["status"], 200, "{report}");
    assert_eq!(signin["request"]["json"], "true");
    assert_eq!(signin["request"]["callbackUrl"], app_url.as_str());
    let url = signin["body"]["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/dev/dev/authorize?")), "{url}");
    assert_eq!(report["signInReturned"], "undefined", "{report}");
    assert_eq!(
        report["providerUrl"], url,
        "the browser went to latch's {{url}}"
    );

    // getSession() after the provider step.
    let session = &report["sessionAfterSignIn"];
    assert_eq!(session["user"]["email"], "ada@example.com", "{report}");
    assert_eq!(session["user"]["name"], "ada", "{report}");
    assert!(session["expires"].is_string(), "{report}");

    // useSession().update(data): v4 POSTs {csrfToken, data} as JSON; latch checks the token,
    // answers the session as GET does, and data changes no identity.
    let update = exchanges
        .iter()
        .find(|e| e["path"] == "/api/auth/session")
        .unwrap_or_else(|| panic!("no POST /api/auth/session: {report}"));
    assert_eq!(update["status"], 200, "{report}");
    assert_eq!(update["request"]["csrfToken"], report["csrfToken"]);
    assert_eq!(
        update["request"]["data"]["user"]["email"],
        "mallory@example.com"
    );
    assert_eq!(update["body"]["user"], session["user"], "{report}");
    assert_eq!(
        report["updateReturned"]["user"], session["user"],
        "{report}"
    );
    assert_eq!(report["sessionAfterUpdate"]["user"], session["user"]);

    // signOut({redirect: false}) returns latch's {url}; the session is gone.
    assert_eq!(
        report["signOutReturned"],
        serde_json::json!({ "url": app_url }),
        "{report}"
    );
    let signout = exchanges
        .iter()
        .find(|e| e["path"] == "/api/auth/signout")
        .unwrap_or_else(|| panic!("no POST /api/auth/signout: {report}"));
    assert_eq!(signout["request"]["json"], "true");
    assert_eq!(report["sessionAfterSignOut"], Value::Null, "{report}");
    app.stop().await;
}
