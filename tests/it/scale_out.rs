//! Many instances on one Redis behind Debian's nginx as a round-robin load balancer
//! (SPEC §5): a sign-in whose hops land on different instances, sessions valid on all,
//! refresh rotation and reuse detection across instances, and one instance stopped under
//! load costing at most the requests it had in flight.
use crate::support::browser::{location, Browser};
use crate::support::free_port;
use crate::support::hostile::Hostile;
use crate::support::latch::{Setup, TestApp};
use crate::support::nginx::Nginx;
use crate::support::redis::RedisServer;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

const INSTANCES: usize = 3;

struct Cluster {
    nginx: Nginx,
    _provider: Hostile,
    instances: Vec<TestApp>,
    _redis: RedisServer,
}

impl Cluster {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.nginx.origin)
    }
}

/// Three latch instances on one Redis, nginx in front (round-robin, the instance that
/// answered in `X-Upstream`), every instance's `public_url` nginx's origin. The provider is
/// one OpenID provider outside latch that all instances share (the built-in development
/// provider keeps its codes and keys in its own process, so it serves one instance only).
async fn cluster() -> Cluster {
    let redis = RedisServer::new();
    let provider = Hostile::start().await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(
            Setup::default()
                .store(redis.url())
                .public_url(&origin)
                .server("trusted_proxies = [\"127.0.0.1\"]")
                .with_providers(format!(
                    "[tokens]\nrefresh_grace = \"1s\"\n\n{}",
                    provider.provider_toml()
                ))
                .spawn()
                .await,
        );
    }
    let servers: String = instances
        .iter()
        .map(|i| format!("    server {} max_fails=1 fail_timeout=30s;\n", i.addr))
        .collect();
    let conf = format!(
        "upstream latch {{\n{servers}}}\n\
         server {{\n\
           listen 127.0.0.1:{port};\n\
           location / {{\n\
             proxy_pass http://latch;\n\
             proxy_set_header Host $http_host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             add_header X-Upstream $upstream_addr always;\n\
           }}\n\
         }}\n"
    );
    let nginx = Nginx::start(port, &conf, |_| {});
    Cluster {
        nginx,
        _provider: provider,
        instances,
        _redis: redis,
    }
}

fn upstream(response: &reqwest::Response) -> String {
    response.headers()["x-upstream"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn instances_behind_a_round_robin_balancer_act_as_one() {
    let c = cluster().await;
    let browser = Browser::new();

    // Sign in through nginx; note which instance answered each hop.
    let mut served = Vec::new();
    let page = browser.get(&c.url("/signin")).await;
    served.push(upstream(&page));
    let start = start_signin_at(&c, &browser).await;
    served.push(upstream(&start));
    // The provider answers at once with a redirect back to the callback.
    let back = browser.get(&location(&start, StatusCode::FOUND)).await;
    let callback = location(&back, StatusCode::FOUND);
    let done = browser.get(&callback).await;
    served.push(upstream(&done));
    assert_eq!(location(&done, StatusCode::FOUND), c.url("/"));

    // The session is good on every instance: consecutive requests go round the ring.
    for _ in 0..INSTANCES {
        let r = browser.get(&c.url("/session")).await;
        served.push(upstream(&r));
        let s: Value = r.json().await.unwrap();
        assert_eq!(s["user"]["email"], "mallory@example.test", "{s}");
    }
    let distinct: HashSet<&String> = served.iter().collect();
    assert_eq!(
        distinct.len(),
        INSTANCES,
        "every instance served: {served:?}"
    );

    // Refresh rotation across instances, then reuse of a rotated token after the grace
    // window: caught wherever it lands, and the session ends on every instance.
    let token = browser.post(&c.url("/token")).await;
    assert_eq!(token.status(), StatusCode::OK);
    let first = browser.cookie("latch.refresh-token").unwrap().value;
    let mut rotated = Vec::new();
    for _ in 0..INSTANCES {
        let r = browser.post(&c.url("/refresh")).await;
        rotated.push(upstream(&r));
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(
        rotated.iter().collect::<HashSet<_>>().len(),
        INSTANCES,
        "{rotated:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reused = reqwest::Client::new()
        .post(c.url("/refresh"))
        .header(COOKIE, format!("latch.refresh-token={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"], "RefreshTokenReused");
    for _ in 0..INSTANCES {
        let s = browser.json(&c.url("/session")).await;
        assert_eq!(s, serde_json::json!({}), "revoked on every instance");
    }
}

async fn start_signin_at(c: &Cluster, browser: &Browser) -> reqwest::Response {
    // `start_signin` takes a TestApp for its URLs; through nginx the origin is nginx's.
    let csrf = browser.json(&c.url("/csrf")).await;
    let token = csrf["csrfToken"].as_str().unwrap().to_string();
    browser
        .post_form(
            &c.url("/signin/hostile"),
            &[("csrfToken", token.as_str()), ("callbackUrl", "/")],
        )
        .await
}

#[tokio::test]
async fn one_instance_stopped_under_load_costs_only_its_requests_in_flight() {
    let mut c = cluster().await;
    let browser = Browser::new();
    let start = start_signin_at(&c, &browser).await;
    // The provider answers at once with a redirect back to the callback.
    let back = browser.get(&location(&start, StatusCode::FOUND)).await;
    let callback = location(&back, StatusCode::FOUND);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::FOUND);
    let cookie = format!(
        "latch.session-token={}",
        browser.cookie("latch.session-token").unwrap().value
    );
    let nginx = Arc::new(c.url("/session"));

    // 4 clients × 60 requests; one instance stops (gracefully) a quarter of the way in.
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (url, cookie, done) = (nginx.clone(), cookie.clone(), done.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut failed = 0;
            for _ in 0..60 {
                let ok = match client
                    .get(url.as_str())
                    .header(COOKIE, &cookie)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|s| s["user"]["email"] == "mallory@example.test"),
                    _ => false,
                };
                if !ok {
                    failed += 1;
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            failed
        });
    }
    // A quarter of the requests done: one instance goes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while done.load(std::sync::atomic::Ordering::SeqCst) < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let stopped = c.instances.remove(1);
    stopped.stop().await;
    let at_stop = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        at_stop < 200,
        "the load must go on after the stop ({at_stop} done)"
    );
    let mut failed = 0;
    while let Some(f) = tasks.join_next().await {
        failed += f.unwrap();
    }
    // nginx passes an idempotent request that found the instance gone to the next one, so
    // at most the requests the stopped instance had in flight (one per client) fail.
    assert!(failed <= 4, "{failed} of 240 requests failed");
    // The others serve on, the session included.
    for _ in 0..INSTANCES {
        let s = browser.json(&c.url("/session")).await;
        assert_eq!(s["user"]["email"], "mallory@example.test");
    }
}
