//! Abuse limits: per-client rates on the sign-in, callback and token routes (`[limits]`,
//! `X-Forwarded-For` only from `trusted_proxies`), the body limit, the security headers.
use crate::support::latch::{Setup, TestApp};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;

fn client() -> Client {
    latch::install_crypto_provider();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("latch answers")
}

/// `n` GETs of `/signin/dev` (optionally claiming to be `xff`); the statuses.
async fn hammer(app: &TestApp, n: usize, xff: Option<&str>) -> Vec<StatusCode> {
    let c = client();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut req = c.get(app.url("/signin/dev"));
        if let Some(xff) = xff {
            req = req.header("X-Forwarded-For", xff);
        }
        out.push(send(req).await.status());
    }
    out
}

fn limited(statuses: &[StatusCode]) -> usize {
    statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count()
}

#[tokio::test]
async fn signin_past_the_limit_is_429_with_retry_after() {
    let app = Setup::default().limits("signin = \"3/min\"").spawn().await;
    let first = hammer(&app, 3, None).await;
    assert_eq!(limited(&first), 0, "{first:?}");
    // Page for a browser.
    let r = send(client().get(app.url("/signin/dev"))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.headers().contains_key("content-security-policy"));
    assert!(r.text().await.unwrap().contains("TooManyRequests"));
    // JSON for an API client, also on POST.
    let r = send(
        client()
            .post(app.url("/signin/dev"))
            .header("X-Auth-Return-Redirect", "1")
            .form(&[("csrfToken", "x")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "TooManyRequests");
    assert!(body["requestId"].is_string());
    // Other routes and classes are not affected.
    let r = send(client().get(app.url("/signin"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(client().post(app.url("/token"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn token_refresh_and_callback_are_limited() {
    let app = Setup::default()
        .limits("token = \"1/min\"\nrefresh = \"1/min\"\ncallback = \"1/min\"")
        .spawn()
        .await;
    for path in ["/token", "/refresh"] {
        let r = send(client().post(app.url(path))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = send(client().post(app.url(path))).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(r.headers().contains_key("retry-after"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "TooManyRequests");
    }
    let r = send(client().get(app.url("/callback/dev?state=x&code=y"))).await;
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = send(client().get(app.url("/callback/dev?state=x&code=y"))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = Setup::default()
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .limits("signin = \"2/min\"")
        .spawn()
        .await;
    let a = hammer(&app, 3, Some("203.0.113.1")).await;
    assert_eq!(limited(&a), 1, "{a:?}");
    // Another client behind the same proxy has its own bucket; a spoofed left-most entry
    // does not help the first client.
    let b = hammer(&app, 2, Some("203.0.113.2")).await;
    assert_eq!(limited(&b), 0, "{b:?}");
    let a = hammer(&app, 1, Some("198.51.100.7, 203.0.113.1")).await;
    assert_eq!(limited(&a), 1, "{a:?}");
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = Setup::default().limits("signin = \"2/min\"").spawn().await;
    let a = hammer(&app, 2, Some("203.0.113.1")).await;
    assert_eq!(limited(&a), 0, "{a:?}");
    // A new address in the header changes nothing: the peer (127.0.0.1) is limited.
    let b = hammer(&app, 2, Some("203.0.113.2")).await;
    assert_eq!(limited(&b), 2, "{b:?}");
    app.stop().await;
}

#[tokio::test]
async fn off_disables_a_limit() {
    let app = Setup::default()
        .limits("signin = \"off\"\ntoken = \"1/min\"")
        .spawn()
        .await;
    let a = hammer(&app, 40, None).await;
    assert_eq!(limited(&a), 0, "{a:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_with_a_code() {
    let app = Setup::default().spawn().await;
    let big = "x".repeat(100 * 1024);
    let r = send(
        client()
            .post(app.url("/signin/dev"))
            .header("X-Auth-Return-Redirect", "1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "PayloadTooLarge");
    let r = send(client().post(app.url("/signin/dev")).body(big)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("PayloadTooLarge"));
    app.stop().await;
}

fn assert_common_headers(r: &Response, what: &str) {
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert!(h.contains_key("x-request-id"), "{what}");
}

#[tokio::test]
async fn security_headers_on_pages_and_json() {
    let app = Setup::default().spawn().await;
    let page = send(client().get(app.url("/signin"))).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_common_headers(&page, "page");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("style-src 'nonce-"), "{csp}");
    // No HSTS over plain http.
    assert!(!page.headers().contains_key("strict-transport-security"));

    let json = send(client().get(app.url("/session"))).await;
    assert_eq!(json.status(), StatusCode::OK);
    assert_common_headers(&json, "json");
    assert!(json.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    // HSTS on https: flow_refusals::https_public_url_gives_secure_host_prefixed_cookies.
    app.stop().await;
}

#[tokio::test]
async fn oversized_request_headers_get_431() {
    latch::install_crypto_provider();
    let app = crate::support::latch::Setup::default().spawn().await;
    let client = reqwest::Client::new();
    let ok = client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(4 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), reqwest::StatusCode::OK);
    let big = client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(32 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        big.status(),
        reqwest::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // The server is still there for the next client.
    let again = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn instances_on_one_redis_share_one_limit() {
    let redis = crate::support::redis::RedisServer::new();
    let setup = || {
        Setup::default()
            .store(redis.url())
            .limits("signin = \"4/min\"")
    };
    let (a, b) = (setup().spawn().await, setup().spawn().await);
    // Alternating between the instances: four in all pass, not four on each.
    let c = client();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = send(c.get(app.url("/signin/dev"))).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=15).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(response.status());
    }
    assert_eq!(limited(&statuses), 4, "{statuses:?}");
    assert!(
        statuses[..4].iter().all(|s| *s == StatusCode::FOUND),
        "{statuses:?}"
    );
    a.stop().await;
    b.stop().await;
}
