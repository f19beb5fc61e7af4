//! A bounded HTTP fuzzer against the real binary: a few thousand random requests (seeded,
//! the seed printed on failure; `LATCH_FUZZ_SEED=<n>` replays one run) over known and random
//! routes, methods, queries, cookies, headers and bodies. No answer may be a 5xx other than a
//! provider's 502/504 or the store's 503, and nothing may panic. Also here, since it needs
//! latch's own log: provider text is stripped of control characters before it is logged.
use crate::support::browser::{location, query_param, Browser};
use crate::support::dev::finish_at_dev;
use crate::support::flows;
use crate::support::hostile::Hostile;
use crate::support::latch_bin::LatchProcess;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

const REQUESTS: usize = 3000;
const WORKERS: usize = 8;
/// Generous for a loaded debug build; a quiet machine takes a few seconds.
const TIME_LIMIT: Duration = Duration::from_secs(60);

const ROUTES: &[&str] = &[
    "/",
    "/signin",
    "/signin/dev",
    "/signin/hostile",
    "/signin/nope",
    "/signin/down",
    "/callback/down",
    "/callback/dev",
    "/callback/hostile",
    "/callback/nope",
    "/signout",
    "/error",
    "/session",
    "/csrf",
    "/providers",
    "/verify",
    "/token",
    "/refresh",
    "/revoke",
    "/.well-known/jwks.json",
    "/healthz",
    "/readyz",
    "/metrics",
    "/provider-token/dev",
    "/provider-token/hostile",
    "/dev/dev/authorize",
    "/dev/dev/token",
    "/dev/dev/jwks",
    "/dev/dev/userinfo",
    "/dev/dev/.well-known/openid-configuration",
    "/account",
    "/introspect",
];
const PARAMS: &[&str] = &[
    "callbackUrl",
    "error",
    "error_description",
    "state",
    "code",
    "iss",
    "csrfToken",
    "json",
    "redirect_uri",
    "client_id",
    "response_type",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "email",
    "token",
    "grant_type",
    "code_verifier",
    "allowed_groups",
    "user",
    "everywhere",
    "audience",
    "logout_token",
];
const COOKIES: &[&str] = &[
    "latch.session-token",
    "latch.flow",
    "latch.flow-xs",
    "latch.csrf-token",
    "latch.refresh-token",
    "__Host-latch.session-token",
    "x",
];
const HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "x-auth-return-redirect",
    "authorization",
    "origin",
    "sec-fetch-site",
    "x-forwarded-for",
    "x-request-id",
    "x-original-uri",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-proto",
    "host",
    "referer",
    "user-agent",
    "x-random",
];
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "FUZZ",
];

/// Printable text that often holds the characters parsers trip on.
fn text(rng: &mut StdRng, max: usize) -> String {
    const TRICKY: &[&str] = &[
        "%",
        "%00",
        "%0a",
        "%zz",
        "..",
        "/",
        "//",
        "\\",
        "?",
        "#",
        "&",
        "=",
        ";",
        "\"",
        "'",
        "<script>",
        "${",
        "javascript:",
        "https://evil.test",
        "http://127.0.0.1:1",
        "é",
        "💥",
        " ",
        "+",
        ",",
        "*",
        "null",
        "-1",
        "99999999999999999999",
        "true",
    ];
    let len = rng.random_range(0..=max);
    let mut out = String::new();
    while out.len() < len {
        if rng.random_bool(0.3) {
            out.push_str(TRICKY.choose(rng).unwrap());
        } else {
            out.push(rng.random_range(b' '..=b'~') as char);
        }
    }
    out
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A header value reqwest will send (visible ASCII and spaces, no CR/LF).
fn header_text(rng: &mut StdRng, max: usize) -> String {
    text(rng, max)
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect()
}

struct Known {
    /// A real session cookie and a matching CSRF pair, so signed-in routes are reached.
    session: String,
    csrf_cookie: String,
    csrf_token: String,
}

/// A random request, what it was (for the failure message), and whether it has a body.
fn random_request(
    rng: &mut StdRng,
    client: &reqwest::Client,
    origin: &str,
    known: &Known,
) -> (reqwest::RequestBuilder, String, bool) {
    let method = *METHODS.choose(rng).unwrap();
    let mut path = if rng.random_bool(0.8) {
        ROUTES.choose(rng).unwrap().to_string()
    } else {
        (0..rng.random_range(1..4))
            .map(|_| format!("/{}", encode(&text(rng, 12)).replace("%2F", "/")))
            .collect()
    };
    if rng.random_bool(0.05) {
        path.push_str(&"/a".repeat(rng.random_range(1..200)));
    }
    let mut query: Vec<String> = (0..rng.random_range(0..5))
        .map(|_| {
            let key = if rng.random_bool(0.85) {
                PARAMS.choose(rng).unwrap().to_string()
            } else {
                text(rng, 8)
            };
            let max = if rng.random_bool(0.05) { 4000 } else { 40 };
            format!("{}={}", encode(&key), encode(&text(rng, max)))
        })
        .collect();
    if rng.random_bool(0.1) {
        query.push(text(rng, 10).replace(['#', ' '], ""));
    }
    let url = if query.is_empty() {
        format!("{origin}{path}")
    } else {
        format!("{origin}{path}?{}", query.join("&"))
    };
    let mut request = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        &url,
    );

    let mut cookies = Vec::new();
    if rng.random_bool(0.3) {
        cookies.push(format!("latch.session-token={}", known.session));
    }
    if rng.random_bool(0.3) {
        cookies.push(format!("latch.csrf-token={}", known.csrf_cookie));
    }
    for _ in 0..rng.random_range(0..3) {
        let name = COOKIES.choose(rng).unwrap();
        cookies.push(format!("{name}={}", header_text(rng, 60).replace(';', "")));
    }
    if rng.random_bool(0.05) {
        cookies.push(header_text(rng, 200));
    }
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    for _ in 0..rng.random_range(0..4) {
        let name = *HEADERS.choose(rng).unwrap();
        let value = match name {
            "accept" => ["application/json", "text/html", "*/*", ""]
                .choose(rng)
                .unwrap()
                .to_string(),
            "content-type" => [
                "application/x-www-form-urlencoded",
                "application/json",
                "multipart/form-data; boundary=x",
                "text/plain",
            ]
            .choose(rng)
            .unwrap()
            .to_string(),
            "authorization" => format!(
                "{} {}",
                ["Bearer", "Basic", "bearer", ""].choose(rng).unwrap(),
                header_text(rng, 80)
            ),
            "origin" => ["https://evil.test", "null", origin, ""]
                .choose(rng)
                .unwrap()
                .to_string(),
            "x-forwarded-for" => ["1.2.3.4", "::1, 10.0.0.1", "garbage", "300.1.1.1"]
                .choose(rng)
                .unwrap()
                .to_string(),
            _ => header_text(rng, 60),
        };
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
            request = request.header(name, v);
        }
    }
    let body_kind = rng.random_range(0..10);
    let body: Vec<u8> = match body_kind {
        0..=3 => Vec::new(),
        4..=6 => {
            let mut form: Vec<String> = (0..rng.random_range(0..6))
                .map(|_| format!("{}={}", PARAMS.choose(rng).unwrap(), encode(&text(rng, 40))))
                .collect();
            if rng.random_bool(0.5) {
                form.push(format!("csrfToken={}", encode(&known.csrf_token)));
            }
            form.join("&").into_bytes()
        }
        7 => format!(
            "{{\"token\": \"{}\"}}",
            text(rng, 40).replace(['"', '\\'], "")
        )
        .into_bytes(),
        8 => (0..rng.random_range(0..512))
            .map(|_| rng.random())
            .collect(),
        _ => vec![b'a'; rng.random_range(60_000..70_000)],
    };
    let description = format!(
        "{method} {} (cookies: {}, body: {} bytes)",
        &url[origin.len()..],
        cookies.len(),
        body.len()
    );
    let has_body = !body.is_empty();
    if has_body {
        request = request.body(body);
    }
    (request, description, has_body)
}

/// Signs in at the dev provider the way a browser does: the session and CSRF pair.
async fn sign_in(latch: &LatchProcess) -> Known {
    let browser = Browser::new();
    let csrf_token = flows::csrf_token(latch, &browser).await;
    let start = flows::post_signin(latch, &browser, &csrf_token, "dev", "/").await;
    let done = finish_at_dev(&browser, &start, "fuzz@example.com").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    Known {
        session: browser
            .cookie("latch.session-token")
            .expect("signed in")
            .value,
        csrf_cookie: browser
            .cookie("latch.csrf-token")
            .expect("csrf cookie")
            .value,
        csrf_token,
    }
}

#[tokio::test]
async fn random_requests_never_get_a_5xx_or_a_panic() {
    let seed: u64 = std::env::var("LATCH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let hostile = Hostile::start().await;
    let hostile_toml = hostile.provider_toml();
    let mut latch = LatchProcess::start(|_| {
        format!(
            "trusted_origins = [\"https://*.apps.example\"]\n\n[store]\nurl = \"memory://\"\n\n\
             [limits]\nsignin = \"100000/min\"\ncallback = \"100000/min\"\ntoken = \"100000/min\"\nrefresh = \"100000/min\"\n\n\
             [providers.dev]\npreset = \"dev\"\n\n{hostile_toml}\n\
             [providers.down]\ntype = \"oidc\"\nname = \"Down\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\ntimeout = \"1s\"\n"
        )
    })
    .await;
    let known = std::sync::Arc::new(sign_in(&latch).await);
    // A connection per request: a server may close a connection after answering without
    // reading a body, and a pooled one would then fail the next request for no fault of latch.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, origin, known) = (client.clone(), latch.origin.clone(), known.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
            let mut bad = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for _ in 0..REQUESTS / WORKERS {
                let (request, description, has_body) =
                    random_request(&mut rng, &client, &origin, &known);
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        *statuses.entry(status).or_default() += 1;
                        let body = response.text().await.unwrap_or_default();
                        // A HEAD answer has no body to name its code.
                        let head = description.starts_with("HEAD ");
                        let allowed = match status {
                            502..=504 if head => true,
                            502 => body.contains("ProviderError") || body.contains("Configuration"),
                            503 => body.contains("StoreUnavailable"),
                            504 => body.contains("ProviderTimeout"),
                            s => s < 500,
                        };
                        if !allowed {
                            bad.push(format!(
                                "{status} for {description}: {}",
                                &body[..body.len().min(300)]
                            ));
                        }
                    }
                    // HTTP/1.1 lets a server answer and close before it has read a body
                    // (a 413, a route that takes none): the client may then fail writing it.
                    // A crash or a panic behind such a close is caught by the log checks.
                    Err(e) if has_body && !e.is_timeout() => {
                        *statuses.entry(0).or_default() += 1;
                    }
                    Err(e) => {
                        let mut chain = e.to_string();
                        let mut source = std::error::Error::source(&e);
                        while let Some(s) = source {
                            chain.push_str(&format!(": {s}"));
                            source = s.source();
                        }
                        bad.push(format!("no answer for {description}: {chain}"))
                    }
                }
            }
            (bad, statuses)
        }));
    }
    let mut bad = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for w in workers {
        let (b, s) = w.await.unwrap();
        bad.extend(b);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        latch.running(),
        "latch exited (seed {seed}):\n{}",
        latch.log()
    );
    let log = latch.stop().await;
    assert!(
        bad.is_empty(),
        "seed {seed}: {} bad answers, first:\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        !log.contains("panicked"),
        "seed {seed}: a panic in the log:\n{log}"
    );
    for line in log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        assert_ne!(line["status"], 500, "seed {seed}: {line}");
    }
    assert!(
        elapsed < TIME_LIMIT,
        "seed {seed}: {REQUESTS} requests took {elapsed:?}"
    );
    // The run reached more than the front door.
    for status in [200, 302, 400, 401, 403, 404, 405, 413] {
        assert!(
            statuses.contains_key(&status),
            "seed {seed}: no {status} in {statuses:?}"
        );
    }
    // Status 0: closed while the body was being sent.
    eprintln!("fuzz: seed {seed}, {REQUESTS} requests in {elapsed:?}: {statuses:?}");
}

/// `printable`: an `error`/`error_description` on the callback is provider (or attacker) text;
/// it reaches the log without control characters (no forged log lines, no terminal escapes)
/// and cut to 200 characters.
#[tokio::test]
async fn provider_error_text_is_logged_without_control_characters() {
    let latch = LatchProcess::start(|_| {
        "[store]\nurl = \"memory://\"\n\n[providers.dev]\npreset = \"dev\"\n".to_string()
    })
    .await;
    let browser = Browser::new();
    let start = browser.get(&latch.url("/signin/dev?callbackUrl=/")).await;
    let authorize = location(&start, StatusCode::FOUND);
    let state = query_param(&authorize, "state").unwrap();
    let error = "server_error\n{\"level\":\"INFO\",\"message\":\"forged\"}";
    let description = format!("\u{1b}[31mred\u{7}\r\n{}", "x".repeat(300));
    let callback = format!(
        "{}?state={}&iss={}&error={}&error_description={}",
        latch.url("/callback/dev"),
        encode(&state),
        encode(&latch.url("/dev/dev")),
        encode(error),
        encode(&description)
    );
    let refused = browser.get(&callback).await;
    assert!(refused.status().is_client_error() || refused.status().is_redirection());
    let request_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let log = latch.log_lines();
    let line = log
        .iter()
        .find(|l| l["span"]["request_id"] == request_id.as_str() && l["reason"].is_string())
        .unwrap_or_else(|| panic!("no refusal line for {request_id}: {log:?}"));
    let reason = line["reason"].as_str().unwrap();
    let clean_error = "server_error{\"level\":\"INFO\",\"message\":\"forged\"}";
    let clean_description = format!("[31mred{}", "x".repeat(200 - "[31mred".len()));
    assert_eq!(
        reason,
        format!("provider returned error={clean_error:?} {clean_description:?}"),
        "{line}"
    );
    latch.stop().await;
}
