//! The sign-in load of bench/login.sh and bench/compare.sh: complete logins through latch (or
//! Auth.js, `--flow authjs`) and a real OpenID provider (tests/oidc-provider, panva's
//! oidc-provider), each one as a browser does it, over plain HTTP, every redirect followed by
//! hand:
//!
//! 1. latch: `GET <base>/signin/<provider>?callbackUrl=/` → 302 to the provider's `/auth?…`;
//!    Auth.js: `GET <base>/auth/csrf` (JSON `csrfToken`), then `POST <base>/auth/signin/<provider>`
//!    with the form `csrfToken` + `callbackUrl=<base>/` → 302 to the provider's `/auth?…`;
//! 2. `GET` that → 303 to `/interaction/<uid>`, whose login page is fetched (`GET`, 200);
//! 3. `POST /interaction/<uid>/login` (`login=<name>`: login and consent in one step) → 303
//!    to `/auth/<uid>` → 303 to `<base>/callback/<provider>?code=…&state=…&iss=…` (Auth.js:
//!    `<base>/auth/callback/<provider>?…`);
//! 4. `GET` that → 302 to `<base>/` with the session cookie set (`latch.session-token`,
//!    `authjs.session-token`);
//! 5. `GET <base>/session` (Auth.js: `<base>/auth/session`) must name the user
//!    (`<name>@example.test`).
//!
//! Steps 2 and 3, the provider's side, are the same code for both flows.
//!
//! `workers` tasks take logins from one counter until `logins` are done. Each worker is its own
//! browser: its own connections and cookie jar, emptied before each login (so every login
//! goes through the provider's login form, not its remembered session). `users` picks the
//! login names: `each` (a new user per login), `worker` (one user per worker, so each user
//! gathers logins/workers sessions) or `one` (every login the same user). Any failed login, or
//! not finishing within `max seconds`, is an error exit.
//!
//!   login_load <base url> <provider id> <logins> <workers> <each|worker|one> <name prefix> <max seconds>
//!       [--flow latch|authjs] [--cookie-out <file>]
//!
//! Prints one line: `BENCH logins=… failures=… seconds=… lps=… p50_ms=… p99_ms=… max_ms=…`.
//! `--cookie-out` writes the session cookie of one successful login (`name=value`, mode 0600)
//! to the file, for a load on the session route afterwards.
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

const SESSION_COOKIE: &str = "latch.session-token";
/// Auth.js's session cookie on plain HTTP (`__Secure-` prefixed on HTTPS).
const AUTHJS_SESSION_COOKIE: &str = "authjs.session-token";

/// One cookie as a browser keeps it: per host (not port) and path.
struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

/// A browser stand-in: a client that follows no redirect, and a cookie jar.
struct Browser {
    client: reqwest::Client,
    jar: Vec<Cookie>,
}

type Failure = String;

impl Browser {
    fn new() -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Browser {
            client,
            jar: Vec::new(),
        }
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?;
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| c.host == host && path_matches(url.path(), &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Keeps the response's cookies (RFC 6265's default path; `Max-Age=0`, an `Expires` in
    /// 1970 or an empty value deletes).
    fn remember(&mut self, url: &Url, response: &Response) {
        let host = url.host_str().unwrap_or_default().to_string();
        for line in response.headers().get_all(SET_COOKIE) {
            let Ok(line) = line.to_str() else { continue };
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let p = url.path();
            let mut path = p[..p.rfind('/').unwrap_or(0).max(1)].to_string();
            let mut expired = value.is_empty();
            for attr in parts {
                let attr = attr.trim();
                let lower = attr.to_ascii_lowercase();
                if lower.starts_with("path=") {
                    path = attr[5..].to_string();
                } else if lower == "max-age=0"
                    || (lower.starts_with("expires=") && lower.contains("1970"))
                {
                    expired = true;
                }
            }
            self.jar
                .retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !expired {
                self.jar.push(Cookie {
                    host: host.clone(),
                    path,
                    name: name.to_string(),
                    value: value.to_string(),
                });
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        let mut request = request.build().map_err(|e| e.to_string())?;
        let url = request.url().clone();
        if let Some(cookies) = self.cookie_header(&url) {
            request
                .headers_mut()
                .insert(COOKIE, cookies.parse().map_err(|_| "cookie header")?);
        }
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        self.remember(&url, &response);
        Ok(response)
    }

    async fn get(&mut self, url: &str) -> Result<Response, Failure> {
        let request = self.client.get(url);
        self.send(request).await
    }
}

fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request.as_bytes().get(cookie.len()) == Some(&b'/')))
}

/// The redirect's `Location`, resolved against the request URL, if the status is `status`;
/// the body is read either way, so the connection goes back to the pool.
async fn location(response: Response, status: StatusCode, step: &str) -> Result<String, Failure> {
    let url = response.url().clone();
    let got = response.status();
    let raw = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.unwrap_or_default();
    if got != status {
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!(
            "{step}: {url} answered {got}, not {status}: {excerpt}"
        ));
    }
    let raw = raw.ok_or_else(|| format!("{step}: {url} gave no Location"))?;
    url.join(&raw)
        .map(|u| u.to_string())
        .map_err(|e| format!("{step}: bad Location {raw:?}: {e}"))
}

/// Whose routes a login goes through: latch's, or Auth.js's (`@auth/express` mounted at
/// `/auth`, bench/authjs/server.mjs). The provider's side is the same for both.
#[derive(Clone, Copy, PartialEq)]
enum Flow {
    Latch,
    Authjs,
}

impl Flow {
    fn callback(self, base: &str, provider: &str) -> String {
        match self {
            Flow::Latch => format!("{base}/callback/{provider}?"),
            Flow::Authjs => format!("{base}/auth/callback/{provider}?"),
        }
    }

    fn session_url(self, base: &str) -> String {
        match self {
            Flow::Latch => format!("{base}/session"),
            Flow::Authjs => format!("{base}/auth/session"),
        }
    }

    fn session_cookie(self) -> &'static str {
        match self {
            Flow::Latch => SESSION_COOKIE,
            Flow::Authjs => AUTHJS_SESSION_COOKIE,
        }
    }
}

/// latch's start: `GET /signin/<provider>?callbackUrl=/` → 302 to the provider, with a
/// `latch.*` cookie (the flow's state).
async fn start_latch(browser: &mut Browser, base: &str, provider: &str) -> Result<String, Failure> {
    let start = browser
        .get(&format!("{base}/signin/{provider}?callbackUrl=/"))
        .await?;
    let authorize = location(start, StatusCode::FOUND, "GET /signin").await?;
    if !browser.jar.iter().any(|c| c.name.starts_with("latch.")) {
        return Err("GET /signin set no latch cookie".into());
    }
    Ok(authorize)
}

/// Auth.js's start, as its client (`signIn()` of next-auth/react) does it: `GET /auth/csrf`
/// (JSON `csrfToken`, and the `authjs.csrf-token` cookie), then `POST /auth/signin/<provider>`
/// with the form `csrfToken` + `callbackUrl` → 302 to the provider, with the PKCE and
/// callback-URL cookies.
async fn start_authjs(
    browser: &mut Browser,
    base: &str,
    provider: &str,
) -> Result<String, Failure> {
    let csrf = browser.get(&format!("{base}/auth/csrf")).await?;
    let status = csrf.status();
    let body: serde_json::Value = csrf
        .json()
        .await
        .map_err(|e| format!("GET /auth/csrf: {e}"))?;
    let token = match body["csrfToken"].as_str() {
        Some(token) if status == StatusCode::OK => token.to_string(),
        _ => {
            return Err(format!(
                "GET /auth/csrf answered {status} without a csrfToken"
            ))
        }
    };
    if !browser.jar.iter().any(|c| c.name == "authjs.csrf-token") {
        return Err("GET /auth/csrf set no authjs.csrf-token cookie".into());
    }
    let callback_url = format!("{base}/");
    let request = browser
        .client
        .post(format!("{base}/auth/signin/{provider}"))
        .form(&[
            ("csrfToken", token.as_str()),
            ("callbackUrl", callback_url.as_str()),
        ]);
    let start = browser.send(request).await?;
    let authorize = location(start, StatusCode::FOUND, "POST /auth/signin").await?;
    if !authorize.contains("/auth?") {
        return Err(format!("POST /auth/signin sent the browser to {authorize}"));
    }
    Ok(authorize)
}

/// The provider's side, shared by both flows: from its authorization URL to the redirect back
/// to the client (`<callback>?code=…&state=…&iss=…`), which is returned.
async fn at_provider(
    browser: &mut Browser,
    authorize: &str,
    issuer_prefix: &mut Option<String>,
    login: &str,
) -> Result<String, Failure> {
    // Remembered from the first login: every later one must go to the same place.
    let prefix = authorize
        .split("/auth?")
        .next()
        .unwrap_or_default()
        .to_string();
    match issuer_prefix {
        Some(known) if *known != prefix => {
            return Err(format!("the sign-in sent the browser to {authorize}"))
        }
        _ => *issuer_prefix = Some(prefix),
    }
    let to_interaction = browser.get(authorize).await?;
    let interaction = location(to_interaction, StatusCode::SEE_OTHER, "GET /auth").await?;
    if !interaction.contains("/interaction/") {
        return Err(format!("GET /auth sent the browser to {interaction}"));
    }
    let page = browser.get(&interaction).await?;
    let status = page.status();
    let _ = page.bytes().await;
    if status != StatusCode::OK {
        return Err(format!("GET {interaction} answered {status}"));
    }
    let request = browser
        .client
        .post(format!("{interaction}/login"))
        .form(&[("login", login)]);
    let logged_in = browser.send(request).await?;
    let resume = location(logged_in, StatusCode::SEE_OTHER, "POST /login").await?;
    let back = browser.get(&resume).await?;
    location(back, StatusCode::SEE_OTHER, "GET /auth/<uid>").await
}

/// One complete sign-in as `login`, from an empty jar; checked at the flow's session route.
/// Returns the session cookie as `name=value`.
async fn sign_in(
    browser: &mut Browser,
    flow: Flow,
    base: &str,
    provider: &str,
    issuer_prefix: &mut Option<String>,
    login: &str,
) -> Result<String, Failure> {
    browser.jar.clear();
    let authorize = match flow {
        Flow::Latch => start_latch(browser, base, provider).await?,
        Flow::Authjs => start_authjs(browser, base, provider).await?,
    };
    let callback = at_provider(browser, &authorize, issuer_prefix, login).await?;
    if !callback.starts_with(&flow.callback(base, provider)) {
        return Err(format!("the provider sent the browser to {callback}"));
    }
    let done = browser.get(&callback).await?;
    let home = location(done, StatusCode::FOUND, "GET /callback").await?;
    if home != format!("{base}/") {
        return Err(format!("GET /callback sent the browser to {home}"));
    }
    let cookie_name = flow.session_cookie();
    let Some(cookie) = browser.jar.iter().find(|c| c.name == cookie_name) else {
        return Err("GET /callback set no session cookie".into());
    };
    let cookie = format!("{}={}", cookie.name, cookie.value);
    let session_url = flow.session_url(base);
    let session = browser.get(&session_url).await?;
    let status = session.status();
    let body: serde_json::Value = session
        .json()
        .await
        .map_err(|e| format!("GET {session_url}: {e}"))?;
    let want = format!("{login}@example.test");
    if status != StatusCode::OK || body["user"]["email"] != want.as_str() {
        return Err(format!(
            "GET {session_url} answered {status} {body}, not {want}"
        ));
    }
    Ok(cookie)
}

#[derive(Clone, Copy, PartialEq)]
enum Users {
    Each,
    Worker,
    One,
}

struct Job {
    flow: Flow,
    base: String,
    provider: String,
    logins: usize,
    users: Users,
    prefix: String,
    until: Instant,
    next: AtomicUsize,
}

/// What one worker did: its logins' latencies (µs), its failures, and the session cookie of
/// its last successful login.
struct Done {
    latencies: Vec<u64>,
    failures: Vec<Failure>,
    cookie: Option<String>,
}

/// One worker's logins.
async fn worker(job: Arc<Job>, w: usize) -> Done {
    let mut browser = Browser::new();
    let mut issuer_prefix = None;
    let mut done = Done {
        latencies: Vec::new(),
        failures: Vec::new(),
        cookie: None,
    };
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.logins || Instant::now() >= job.until {
            break;
        }
        let login = match job.users {
            Users::Each => format!("{}-{w}-{i}", job.prefix),
            Users::Worker => format!("{}-{w}", job.prefix),
            Users::One => job.prefix.clone(),
        };
        let started = Instant::now();
        let result = tokio::time::timeout_at(
            job.until.into(),
            sign_in(
                &mut browser,
                job.flow,
                &job.base,
                &job.provider,
                &mut issuer_prefix,
                &login,
            ),
        )
        .await
        .unwrap_or_else(|_| Err("not finished within the time bound".into()));
        match result {
            Ok(cookie) => {
                done.latencies.push(started.elapsed().as_micros() as u64);
                done.cookie = Some(cookie);
            }
            Err(e) => done.failures.push(format!("login {i} ({login}): {e}")),
        }
    }
    done
}

const USAGE: &str = "usage: login_load <base url> <provider id> <logins> <workers> <each|worker|one> <name prefix> <max seconds> [--flow latch|authjs] [--cookie-out <file>]";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (positional, options) = args.split_at(args.len().min(7));
    let [base, provider, logins, workers, users, prefix, seconds] = positional else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let (mut flow, mut cookie_out) = (Flow::Latch, None);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match (option.as_str(), options.next().map(String::as_str)) {
            ("--flow", Some("latch")) => flow = Flow::Latch,
            ("--flow", Some("authjs")) => flow = Flow::Authjs,
            ("--cookie-out", Some(file)) => cookie_out = Some(file.to_string()),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let logins: usize = logins.parse().expect("logins");
    let workers: usize = workers.parse().expect("workers");
    let seconds: f64 = seconds.trim_end_matches('s').parse().expect("max seconds");
    let users = match users.as_str() {
        "each" => Users::Each,
        "worker" => Users::Worker,
        "one" => Users::One,
        other => panic!("users must be each, worker or one, not {other:?}"),
    };
    assert!(
        logins > 0 && workers > 0 && logins <= 100_000,
        "logins in 1..=100000, workers > 0"
    );
    latch::install_crypto_provider(); // reqwest is built without a rustls provider of its own
    let started = Instant::now();
    let job = Arc::new(Job {
        flow,
        base: base.trim_end_matches('/').to_string(),
        provider: provider.clone(),
        logins,
        users,
        prefix: prefix.clone(),
        until: started + Duration::from_secs_f64(seconds),
        next: AtomicUsize::new(0),
    });
    let tasks: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker(job.clone(), w)))
        .collect();
    let (mut latencies, mut failures, mut cookie) = (Vec::new(), Vec::new(), None);
    for task in tasks {
        let done = task.await.expect("worker");
        latencies.extend(done.latencies);
        failures.extend(done.failures);
        cookie = cookie.or(done.cookie);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        latencies[((latencies.len() - 1) as f64 * p / 100.0).round() as usize] as f64 / 1000.0
    };
    let missing = logins - latencies.len() - failures.len();
    println!(
        "BENCH logins={} failures={} seconds={elapsed:.2} lps={:.1} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        latencies.len(),
        failures.len() + missing,
        latencies.len() as f64 / elapsed,
        pct(50.0),
        pct(99.0),
        pct(100.0),
    );
    for failure in failures.iter().take(5) {
        eprintln!("failed: {failure}");
    }
    if missing > 0 {
        eprintln!("{missing} logins not started within {seconds} s");
    }
    if !failures.is_empty() || missing > 0 {
        std::process::exit(1);
    }
    // A live session for a later load on the session route (bench/compare.sh); only the
    // file's owner may read it.
    if let Some(file) = cookie_out {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let cookie = cookie.expect("a successful login");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| f.write_all(cookie.as_bytes()))
            .unwrap_or_else(|e| panic!("--cookie-out {file}: {e}"));
    }
}
