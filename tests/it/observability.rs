//! `/metrics` and the logs: counters move with sign-ins and refusals, and the JSON log of a
//! whole session (sign-in, tokens, refresh, sign-out) names its requests and leaks no secret.
use crate::support::browser::{location, query_param, set_cookie_line, Browser};
use crate::support::dev::signed_in;
use crate::support::dev::{approve, dev_callback};
use crate::support::flows::{csrf_token, post_signin};
use crate::support::latch::Setup;
use crate::support::latch_bin::Serve;
use crate::support::refusal::assert_callback_refused;
use reqwest::StatusCode;
use serde_json::Value;

/// The sample lines of `name` whose labels include every one of `labels`.
fn samples<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_sign_ins_and_refusals() {
    let app = Setup::default().spawn().await;
    let browser = signed_in(&app, "ada@example.com").await;

    // A replayed callback: the state was used up by the first one.
    let replay = Browser::new();
    let start = "/signin/dev?callbackUrl=/";
    let callback = dev_callback(&app, &replay, start, "bob@example.com").await;
    let first = replay.get(&callback).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let second = replay.get(&callback).await;
    assert_callback_refused(&app, &replay, second, "InvalidState").await;
    // An unknown provider is counted, but not under its (user-chosen) name.
    let unknown = replay.get(&app.url("/signin/no-such-thing")).await;
    assert!(unknown.status().is_client_error());

    let response = browser.get(&app.url("/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    // One recorder per process: other tests' sign-ins count too, so only lower bounds.
    let started = samples(&text, "latch_signin_started_total", &[r#"provider="dev""#]);
    assert!(started.iter().any(|l| value(l) >= 2.0), "{text}");
    let completed = samples(
        &text,
        "latch_signin_completed_total",
        &[r#"provider="dev""#],
    );
    assert!(completed.iter().any(|l| value(l) >= 2.0), "{text}");
    let failed = samples(
        &text,
        "latch_signin_failed_total",
        &[r#"provider="dev""#, r#"code="InvalidState""#],
    );
    assert!(failed.iter().any(|l| value(l) >= 1.0), "{text}");
    assert!(
        !samples(
            &text,
            "latch_signin_failed_total",
            &[r#"provider="unknown""#]
        )
        .is_empty(),
        "{text}"
    );
    assert!(!text.contains("no-such-thing"), "{text}");
    assert!(
        !samples(
            &text,
            "latch_callback_duration_seconds_bucket",
            &[r#"provider="dev""#]
        )
        .is_empty(),
        "{text}"
    );
    assert!(
        !samples(
            &text,
            "latch_provider_call_duration_seconds_count",
            &[r#"provider="dev""#, r#"endpoint="token""#]
        )
        .is_empty(),
        "{text}"
    );
    assert!(
        text.contains("latch_http_requests_total{status=\"302\"}"),
        "{text}"
    );

    // The same process-wide figures from a second server under a base path.
    let other = Setup::default().base_path("/auth").spawn().await;
    let text = Browser::new()
        .get(&other.url("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("latch_signin_completed_total"), "{text}");
    other.stop().await;
    app.stop().await;
}

const SERVER_SECRET: &str = "obs-server-secret-4b1d9c0e7f2a6d8e3c5b";
const CLIENT_SECRET: &str = "obs-client-secret-9e8d7c6b5a4f3e2d1c0b";

fn cookie_value(line: &str) -> String {
    let pair = line.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

/// The real binary, `--log-format json`, `RUST_LOG=debug`: a whole session's log carries a
/// request id on every request's line and none of the session's secrets.
#[tokio::test]
async fn json_log_of_a_session_names_requests_and_leaks_no_secret() {
    let mut latch = Serve::default()
        .json()
        .rust_log("debug")
        .secret(SERVER_SECRET)
        .on_free_port(|_| {
            format!(
                "\n[store]\nurl = \"memory://\"\n\n\
                 [providers.dev]\npreset = \"dev\"\n\n\
                 [providers.corp]\ntype = \"oidc\"\nname = \"Corp\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"corp\"\nclient_secret = \"{CLIENT_SECRET}\"\n"
            )
        })
        .await;
    let url = |path: &str| latch.url(path);
    let browser = Browser::new();

    // Sign in, keeping every secret the flow hands out.
    let csrf = csrf_token(&latch, &browser).await;
    let start = post_signin(&latch, &browser, &csrf, "dev", "/").await;
    let flow = cookie_value(&set_cookie_line(&start, "latch.flow").expect("flow cookie"));
    let authorize = location(&start, StatusCode::FOUND);
    let state = query_param(&authorize, "state").unwrap();
    let callback = approve(&browser, &authorize, "ada@example.com").await;
    let code = query_param(&callback, "code").unwrap();
    let done = browser.get(&callback).await;
    let session = cookie_value(&set_cookie_line(&done, "latch.session-token").unwrap());
    assert_eq!(location(&done, StatusCode::FOUND), url("/"));
    let request_id = done.headers()["x-request-id"].to_str().unwrap().to_string();
    // A replayed callback: a refusal, logged with its reason.
    let replayed = browser.get(&callback).await;
    assert_eq!(
        location(&replayed, StatusCode::SEE_OTHER),
        url("/error?error=InvalidState"),
        "a refused callback redirects to the error page"
    );
    let refused_id = replayed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();

    // Tokens: issue, then rotate.
    let issued = browser.post(&url("/token")).await;
    assert_eq!(issued.status(), StatusCode::OK);
    let refresh_1 = cookie_value(&set_cookie_line(&issued, "latch.refresh-token").unwrap());
    let issued: Value = issued.json().await.unwrap();
    let access_1 = issued["access_token"].as_str().unwrap().to_string();
    let rotated = browser.post(&url("/refresh")).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let refresh_2 = cookie_value(&set_cookie_line(&rotated, "latch.refresh-token").unwrap());
    let rotated: Value = rotated.json().await.unwrap();
    let access_2 = rotated["access_token"].as_str().unwrap().to_string();

    // Sign out.
    let out = browser
        .post_form(
            &url("/signout"),
            &[("csrfToken", &csrf), ("callbackUrl", "/bye")],
        )
        .await;
    assert_eq!(out.status(), StatusCode::FOUND);
    let metrics = browser.get(&url("/metrics")).await.text().await.unwrap();
    for name in [
        "latch_signin_started_total{provider=\"dev\"} 1",
        "latch_signin_completed_total{provider=\"dev\"} 1",
        "latch_tokens_issued_total 2",
        "latch_token_refreshes_total 1",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }

    // Stop it the way a service manager would, and read all it wrote.
    latch.terminate().await;
    let stdout = latch.stdout();
    let stderr = latch.log();
    let all = format!("{stdout}\n{stderr}");

    let secrets = [
        ("session cookie", session.as_str()),
        ("CSRF token", csrf.as_str()),
        ("flow cookie", flow.as_str()),
        ("authorization code", code.as_str()),
        ("state", state.as_str()),
        ("access token", access_1.as_str()),
        ("rotated access token", access_2.as_str()),
        ("refresh token", refresh_1.as_str()),
        ("rotated refresh token", refresh_2.as_str()),
        ("client secret", CLIENT_SECRET),
        ("server secret", SERVER_SECRET),
    ];
    for (what, secret) in secrets {
        assert!(
            secret.len() >= 16,
            "{what} is too short to grep for: {secret:?}"
        );
        assert!(!all.contains(secret), "the {what} is in the log:\n{all}");
        // The CSRF token is `value|hash`: neither half may appear either.
        for part in secret.split(['|', '%']).filter(|p| p.len() >= 16) {
            assert!(
                !all.contains(part),
                "part of the {what} is in the log:\n{all}"
            );
        }
        // The access token's signature part.
        if let Some(signature) = secret.rsplit('.').next().filter(|s| s.len() >= 16) {
            assert!(
                !all.contains(signature),
                "the {what}'s signature is in the log"
            );
        }
    }

    // Every line is JSON; every line written while answering a request names the request.
    assert!(stdout.trim().is_empty(), "logs go to stderr: {stdout}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let in_request = |line: &Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "request"))
    };
    let mut served = 0;
    for line in &lines {
        let message = line["message"].as_str().unwrap_or_default();
        let target = line["target"].as_str().unwrap_or_default();
        let request_line = in_request(line)
            || target.starts_with("latch::web")
            || target.starts_with("latch::flow")
            || [
                "served",
                "sign-in started",
                "signed in",
                "signed out",
                "request refused",
            ]
            .contains(&message);
        if request_line {
            let id = line["span"]["request_id"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty(),
                "a request's line without request_id: {line}"
            );
        }
        if message == "served" {
            served += 1;
        }
    }
    assert!(served >= 10, "{served} requests logged:\n{stderr}");
    // The callback's own lines carry the id its response named.
    let callback_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == request_id.as_str())
        .collect();
    assert!(
        callback_lines.iter().any(|l| l["message"] == "signed in"),
        "{request_id}: {callback_lines:?}"
    );
    // The redirected refusal's one line: its code, the precise reason, under its request id.
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request refused" && l["code"] == "InvalidState")
        .filter(|l| l["span"]["request_id"] == refused_id.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{refused_id}: {stderr}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("already used")),
        "{}",
        refused[0]
    );
    assert_eq!(refused[0]["redirected"], true, "{}", refused[0]);
}
