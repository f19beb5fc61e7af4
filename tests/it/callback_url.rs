//! No open redirect: `callbackUrl` may only lead to public_url's origin or trusted_origins.
use crate::support::browser::{location, Browser};
use crate::support::dev::dev_flow;
use crate::support::latch::Setup;
use reqwest::StatusCode;

#[tokio::test]
async fn callback_url_attacks_fall_back_to_public_url() {
    let app = Setup::default()
        .server(
            "trusted_origins = [\"http://app.example.test:8080\", \"https://*.trusted.example\"]",
        )
        .spawn()
        .await;
    let public = format!("{}/", app.origin);
    let cases: &[(&str, Option<String>)] = &[
        ("https://evil.example", None),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("/\t/evil.example", None),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ("https://trusted.example.evil.example/", None),
        ("https://eviltrusted.example/", None),
        ("http://app.example.test:8080.evil.example/", None),
        ("http://app.example.test:8081/", None),
        ("https://app.example.test:8080/", None),
        ("http://user@app.example.test:8080/", None),
        (
            "/dashboard?tab=1",
            Some(format!("{}/dashboard?tab=1", app.origin)),
        ),
        (
            "http://app.example.test:8080/page",
            Some("http://app.example.test:8080/page".into()),
        ),
        (
            "https://a.trusted.example/x",
            Some("https://a.trusted.example/x".into()),
        ),
    ];
    let browser = Browser::new();
    for (attack, expected) in cases {
        let done = dev_flow(&app, &browser, "dev", "eve@example.com", attack).await;
        let landed = location(&done, StatusCode::FOUND);
        let want = expected.clone().unwrap_or_else(|| public.clone());
        assert_eq!(landed, want, "callbackUrl {attack:?}");
    }
}
