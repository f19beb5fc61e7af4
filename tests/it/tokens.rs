//! Access tokens, the JWKS and refresh-token rotation (SPEC §4), with tokens verified by
//! panva's `jose` (tests/oidc-provider/verify-jwt.mjs), not by latch's own code.
use crate::support::browser::{cookie_value, set_cookie_line, Browser};
use crate::support::dev::signed_in;
use crate::support::flows::{refresh_with, sign_out};
use crate::support::latch::{Setup, TestApp};
use crate::support::redis::RedisServer;
use reqwest::header::COOKIE;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const REFRESH: &str = "latch.refresh-token";
const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");

/// latch with the dev provider and a `[tokens]` table.
async fn spawn(tokens: &str, setup: Setup) -> TestApp {
    setup
        .with_providers(format!(
            "[tokens]\n{tokens}\n\n[providers.dev]\npreset = \"dev\"\n"
        ))
        .spawn()
        .await
}

/// `POST /token` (or `/refresh`) that must succeed: the JSON and the response's refresh cookie.
async fn expect_token(response: Response) -> (Value, String) {
    let status = response.status();
    let cookie = set_cookie_line(&response, REFRESH);
    let cache = response.headers().get("cache-control").cloned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.unwrap(), "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    (body, cookie.expect("a refresh cookie"))
}

async fn post_token(app: &TestApp, browser: &Browser) -> (Value, String) {
    expect_token(browser.post(&app.url("/token")).await).await
}

/// A JSON refusal with `status`: its error code.
async fn refusal(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().len() > 10, "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

/// Runs jose's `jwtVerify` against latch's JWKS.
async fn verify(token: &str, jwks_url: &str, issuer: &str, audience: &str) -> Value {
    crate::support::oidc_provider::install().await;
    let out = tokio::process::Command::new("node")
        .args(["verify-jwt.mjs", token, jwks_url, issuer, audience])
        .current_dir(NODE_DIR)
        .output()
        .await
        .expect("node (Node.js 20+) is needed: apt-get install -y nodejs npm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "verify-jwt.mjs printed {stdout:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn header_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(header["alg"], "ES256");
    header["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn access_token_verifies_with_jose_and_refresh_cookie_is_scoped() {
    let app = spawn(
        "refresh_ttl = \"2h\"",
        Setup::default().base_path("/api/auth"),
    )
    .await;
    let browser = signed_in(&app, "ada@example.com").await;
    let session = browser.json(&app.url("/session")).await;
    let (body, cookie) = post_token(&app, &browser).await;

    // The refresh cookie: HttpOnly, SameSite=Strict, only sent to the refresh route.
    assert!(cookie.starts_with("latch.refresh-token="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/api/auth/refresh"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }
    // What is left of the family's 2 h life: a second may have passed on a busy machine.
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Max-Age in {cookie}"));
    assert!((7195..=7200).contains(&max_age), "{cookie}");
    assert!(!cookie.contains("Secure"), "http: not Secure");
    assert_eq!(cookie_value(&cookie).len(), 43);

    // The JWKS is under base_path, with public keys only.
    let jwks_url = app.url("/.well-known/jwks.json");
    let jwks = browser.json(&jwks_url).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kty"], "EC");
        assert!(k.get("d").is_none(), "private key published: {k}");
    }
    let at_root = browser
        .get(&format!("{}/.well-known/jwks.json", app.origin))
        .await;
    assert_eq!(at_root.status(), StatusCode::NOT_FOUND);

    let token = body["access_token"].as_str().unwrap();
    let kid = header_kid(token);
    assert!(keys.iter().any(|k| k["kid"] == kid.as_str()));
    let verified = verify(token, &jwks_url, &app.base, "api").await;
    assert_eq!(verified["ok"], true, "{verified}");
    let claims = &verified["payload"];
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], "api", "one audience: a string");
    assert_eq!(claims["sub"], session["user"]["id"]);
    assert_eq!(claims["email"], "ada@example.com");
    assert!(claims["name"].is_string() || claims["name"].is_null());
    assert_eq!(claims["sid"].as_str().unwrap().len(), 43);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    // Another audience, another issuer: refused by jose.
    let wrong = verify(token, &jwks_url, &app.base, "billing").await;
    assert_eq!(wrong["ok"], false);
    assert_eq!(wrong["error"], "ERR_JWT_CLAIM_VALIDATION_FAILED", "{wrong}");
    let wrong = verify(token, &jwks_url, &app.origin, "api").await;
    assert_eq!(wrong["ok"], false, "{wrong}");
}

#[tokio::test]
async fn expired_access_token_is_refused() {
    let app = spawn(
        // Long enough that node starting jose under a loaded test run sees it fresh.
        "access_ttl = \"6s\"\naudience = [\"api\", \"admin\"]",
        Setup::default(),
    )
    .await;
    let browser = signed_in(&app, "exp@example.com").await;
    let (body, _) = post_token(&app, &browser).await;
    assert_eq!(body["expires_in"], 6);
    let token = body["access_token"].as_str().unwrap();
    let jwks_url = app.url("/.well-known/jwks.json");
    let fresh = verify(token, &jwks_url, &app.base, "admin").await;
    assert_eq!(fresh["ok"], true, "{fresh}");
    assert_eq!(fresh["payload"]["aud"], json!(["api", "admin"]));

    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let result = verify(token, &jwks_url, &app.base, "api").await;
        if result["ok"] == false {
            assert_eq!(result["error"], "ERR_JWT_EXPIRED", "{result}");
            break;
        }
        assert!(Instant::now() < deadline, "still valid after 12 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn tokens_signed_before_a_key_rotation_still_verify() {
    let app = spawn(
        "key_rotation = \"2s\"\naccess_ttl = \"1m\"",
        Setup::default(),
    )
    .await;
    let browser = signed_in(&app, "rot@example.com").await;
    let (first, _) = post_token(&app, &browser).await;
    let old = first["access_token"].as_str().unwrap().to_string();
    let old_kid = header_kid(&old);
    let deadline = Instant::now() + Duration::from_secs(5);
    let new = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (body, _) = post_token(&app, &browser).await;
        let token = body["access_token"].as_str().unwrap().to_string();
        if header_kid(&token) != old_kid {
            break token;
        }
        assert!(Instant::now() < deadline, "no rotation within 5 s");
    };
    let jwks_url = app.url("/.well-known/jwks.json");
    let jwks = browser.json(&jwks_url).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&header_kid(&new).as_str()));
    for token in [&old, &new] {
        let result = verify(token, &jwks_url, &app.base, "api").await;
        assert_eq!(result["ok"], true, "{result}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_after_grace_revokes_family_and_session() {
    let app = spawn("refresh_grace = \"1s\"", Setup::default()).await;
    let browser = signed_in(&app, "rt@example.com").await;
    let (_, first) = post_token(&app, &browser).await;
    let r1 = cookie_value(&first);

    // Each refresh gives a new access token and a new refresh cookie.
    let (body, second) = expect_token(browser.post(&app.url("/refresh")).await).await;
    let r2 = cookie_value(&second);
    assert_ne!(r1, r2);
    assert!(second.contains("Path=/refresh") && second.contains("SameSite=Strict"));
    let verified = verify(
        body["access_token"].as_str().unwrap(),
        &app.url("/.well-known/jwks.json"),
        &app.base,
        "api",
    )
    .await;
    assert_eq!(verified["payload"]["email"], "rt@example.com", "{verified}");
    let (_, third) = expect_token(browser.post(&app.url("/refresh")).await).await;
    let r3 = cookie_value(&third);
    assert_ne!(r2, r3);
    assert_eq!(browser.cookie(REFRESH).unwrap().value, r3);

    // r1 again, after the grace window: theft assumed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reused = refresh_with(&app, &r1).await;
    let cleared = set_cookie_line(&reused, REFRESH).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        refusal(reused, StatusCode::UNAUTHORIZED).await,
        "RefreshTokenReused"
    );
    // The whole family is gone (the current token too), and so is the session.
    let after = refresh_with(&app, &r3).await;
    assert_eq!(
        refusal(after, StatusCode::UNAUTHORIZED).await,
        "InvalidRefreshToken"
    );
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session, json!({}));
}

#[tokio::test]
async fn racing_refreshes_within_grace_both_succeed() {
    let app = spawn("refresh_grace = \"5s\"", Setup::default()).await;
    let browser = signed_in(&app, "race@example.com").await;
    post_token(&app, &browser).await;
    let r1 = browser.cookie(REFRESH).unwrap().value;
    let (a, b) = tokio::join!(
        browser.send(browser.client.post(app.url("/refresh"))),
        browser.send(browser.client.post(app.url("/refresh")))
    );
    let ((_, ca), (_, cb)) = (expect_token(a).await, expect_token(b).await);
    assert_eq!(
        cookie_value(&ca),
        cookie_value(&cb),
        "both given the current token"
    );
    assert_ne!(cookie_value(&ca), r1);
    // The family goes on from there.
    expect_token(browser.post(&app.url("/refresh")).await).await;
}

#[tokio::test]
async fn sign_out_and_revoke_end_refresh() {
    let app = spawn("", Setup::default()).await;

    // Sign out: the refresh token stops working with the session.
    let browser = signed_in(&app, "out@example.com").await;
    let (_, cookie) = post_token(&app, &browser).await;
    sign_out(&app, &browser, &[]).await;
    let refused = refresh_with(&app, &cookie_value(&cookie)).await;
    assert_eq!(
        refusal(refused, StatusCode::UNAUTHORIZED).await,
        "InvalidRefreshToken"
    );

    // /revoke with the session cookie: the session and its families end.
    let browser = signed_in(&app, "rev@example.com").await;
    let (_, cookie) = post_token(&app, &browser).await;
    let revoked = browser.post(&app.url("/revoke")).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session, json!({}));
    let refused = refresh_with(&app, &cookie_value(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // /revoke with a refresh token only: that family ends, the session stays.
    let browser = signed_in(&app, "fam@example.com").await;
    let (_, cookie) = post_token(&app, &browser).await;
    let (_, other) = post_token(&app, &browser).await;
    let revoked = Browser::new()
        .post_form(&app.url("/revoke"), &[("token", &cookie_value(&cookie))])
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        refresh_with(&app, &cookie_value(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    expect_token(refresh_with(&app, &cookie_value(&other)).await).await;
    let session = browser.json(&app.url("/session")).await;
    assert_eq!(session["user"]["email"], "fam@example.com");
    // An unknown token is no error (RFC 7009).
    let unknown = Browser::new()
        .post_form(&app.url("/revoke"), &[("token", "nonsense")])
        .await;
    assert_eq!(unknown.status(), StatusCode::OK);
}

#[tokio::test]
async fn refusals_are_json_401s_never_500s() {
    let app = spawn("", Setup::default()).await;
    let browser = Browser::new();
    let cases = [
        ("/token", None, "SessionRequired"),
        ("/refresh", None, "InvalidRefreshToken"),
        (
            "/refresh",
            Some(format!("{REFRESH}=garbage")),
            "InvalidRefreshToken",
        ),
        (
            "/refresh",
            Some(format!("{REFRESH}={}", "A".repeat(43))),
            "InvalidRefreshToken",
        ),
        (
            "/token",
            Some(format!("latch.session-token={}", "B".repeat(43))),
            "SessionRequired",
        ),
        ("/revoke", None, "SessionRequired"),
    ];
    for (path, cookie, code) in cases {
        let mut request = browser.client.post(app.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            refusal(response, StatusCode::UNAUTHORIZED).await,
            code,
            "{path}"
        );
    }
}

#[tokio::test]
async fn two_instances_on_one_redis_share_sessions_keys_and_families() {
    let redis = RedisServer::new();
    let a = spawn("", Setup::default().store(redis.url())).await;
    let b = spawn("", Setup::default().store(redis.url())).await;
    // One browser: both instances are on 127.0.0.1, so it sends its cookies to both.
    let browser = signed_in(&a, "two@example.com").await;
    let session = browser.json(&b.url("/session")).await;
    assert_eq!(session["user"]["email"], "two@example.com");

    let (body, _) = post_token(&b, &browser).await;
    let (_, on_a) = expect_token(browser.post(&a.url("/refresh")).await).await;
    let (_, on_b) = expect_token(browser.post(&b.url("/refresh")).await).await;
    assert_ne!(cookie_value(&on_a), cookie_value(&on_b));

    let jwks_a = browser.json(&a.url("/.well-known/jwks.json")).await;
    let jwks_b = browser.json(&b.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks_a, jwks_b);
    // A token from B verifies against A's JWKS.
    let verified = verify(
        body["access_token"].as_str().unwrap(),
        &a.url("/.well-known/jwks.json"),
        &b.base,
        "api",
    )
    .await;
    assert_eq!(verified["ok"], true, "{verified}");
    // Only hashes of refresh tokens are keys.
    let keys = crate::support::redis::raw_command(redis.port(), "KEYS *").unwrap();
    assert!(
        keys.contains("refresh_family:") && keys.contains("signing_key:"),
        "{keys}"
    );
    assert!(
        !keys.contains(&cookie_value(&on_b)),
        "raw refresh token stored as a key"
    );
}
