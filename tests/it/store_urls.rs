//! Every documented store URL form, from the config file through the real binary: `latch
//! check` accepts it and prints it with the password hidden, `latch serve` starts with it,
//! and no password appears in anything either prints, for valid URLs and refused ones.
use reqwest::StatusCode;

use crate::support::browser::http_client;
use crate::support::latch_bin::{check, config_with_store, serve};
use crate::support::redis::{free_port, RedisServer};

const PW: &str = "hunter2-Very-Secret";

/// Each form, with a password, pointing at ports where nothing listens.
fn forms() -> Vec<String> {
    let [a, b, c] = [free_port(false), free_port(false), free_port(false)];
    vec![
        format!("redis://app:{PW}@127.0.0.1:{a}/0"),
        format!("rediss://:{PW}@127.0.0.1:{a}"),
        format!("redis+sentinel://:{PW}@127.0.0.1:{a},127.0.0.1:{b}/mymaster"),
        format!("redis+sentinel://app:{PW}@127.0.0.1:{a},127.0.0.1:{b},127.0.0.1:{c}/mymaster/2"),
        format!("redis+cluster://:{PW}@127.0.0.1:{a},127.0.0.1:{b},127.0.0.1:{c}"),
        format!("rediss+cluster://app:{PW}@127.0.0.1:{a},127.0.0.1:{b}"),
    ]
}

#[tokio::test]
async fn check_accepts_every_form_and_prints_it_without_the_password() {
    for url in forms() {
        let (code, stdout, stderr) = check(&config_with_store(&url)).await;
        assert_eq!(code, Some(0), "{url}: {stdout}{stderr}");
        let shown = stdout
            .lines()
            .find_map(|l| l.strip_prefix("store: "))
            .unwrap_or_else(|| panic!("no store line: {stdout}"));
        assert_eq!(shown, url.replace(PW, "***"), "{url}");
        assert!(
            !stdout.contains(PW) && !stderr.contains(PW),
            "{url}: {stdout}{stderr}"
        );
    }
}

#[tokio::test]
async fn check_refuses_bad_forms_with_line_and_key_and_no_password() {
    for (url, why) in [
        (
            format!("redis+sentinel://:{PW}@127.0.0.1:1,127.0.0.1:x/mymaster"),
            "bad port",
        ),
        (
            format!("redis+sentinel://:{PW}@127.0.0.1:1,127.0.0.1:2"),
            "service name",
        ),
        (format!("redis+cluster://:{PW}@127.0.0.1:1/2"), "no path"),
        (format!("redis+cluster://:{PW}@"), "no host"),
        (format!("redis://:{PW}@0.0.0.0:6379"), "wildcard"),
        // A password with an unencoded '/' cannot be parsed: it is still not shown.
        (
            format!("redis://app:{PW}/x@127.0.0.1:1"),
            "not a valid redis://",
        ),
    ] {
        let (code, stdout, stderr) = check(&config_with_store(&url)).await;
        assert_eq!(code, Some(2), "{url}: {stdout}{stderr}");
        assert!(
            stderr.contains("providers.toml:7: store.url:") && stderr.contains(why),
            "{url}: {stderr}"
        );
        assert!(
            !stdout.contains(PW) && !stderr.contains(PW),
            "{url}: {stderr}"
        );
    }
}

/// `latch serve` starts with each form while nothing answers (the store connects lazily),
/// answers 503 on `/readyz` and `/session`, and its debug log names the store with the
/// password hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_every_form_and_never_logs_the_password() {
    let runs = forms().into_iter().map(|url| async move {
        let latch = serve(&config_with_store(&url)).await;
        let client = http_client();
        let ready = client.get(latch.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{url}");
        let body = ready.text().await.unwrap();
        assert!(!body.contains(PW), "{url}: {body}");
        let session = client
            .get(latch.url("/session"))
            .header("cookie", format!("latch.session-token={}", "A".repeat(43)))
            .send()
            .await
            .unwrap();
        assert_eq!(session.status(), StatusCode::SERVICE_UNAVAILABLE, "{url}");
        let output = latch.kill().await;
        assert!(output.contains("latch is listening"), "{url}: {output}");
        assert!(
            output.contains(&url.replace(PW, "***")),
            "{url}: the redacted URL is logged at debug: {output}"
        );
        assert!(!output.contains(PW), "{url}: {output}");
    });
    futures_join_all(runs).await;
}

/// With a live, password-protected Redis: the right password serves (200 on `/readyz`), a
/// wrong one is a 503 whose logs and body show neither password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_real_password_protected_redis() {
    let redis = RedisServer::with_args(&["--requirepass", PW]);
    let right = format!("redis://:{PW}@127.0.0.1:{}", redis.port());
    let client = http_client();
    let latch = serve(&config_with_store(&right)).await;
    let ready = client.get(latch.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let output = latch.kill().await;
    assert!(!output.contains(PW), "{output}");

    let wrong_pw = "wrong-Password-42";
    let wrong = format!("redis://:{wrong_pw}@127.0.0.1:{}", redis.port());
    let latch = serve(&config_with_store(&wrong)).await;
    let ready = client.get(latch.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = ready.text().await.unwrap();
    let output = latch.kill().await;
    for shown in [&body, &output] {
        assert!(!shown.contains(PW) && !shown.contains(wrong_pw), "{shown}");
    }
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    runs: impl Iterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for r in runs {
        set.spawn(r);
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}
