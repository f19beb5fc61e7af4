//! The container and compose demo (SPEC §5): `Dockerfile`, `docker-compose.yml` and
//! `deploy/`. No Docker engine runs in the tests, so the files are checked for what the demo
//! relies on, the mounted latch config is loaded for real, and the demo's nginx config is run
//! with the system's nginx in front of a real latch, signing in through the dev provider.
use crate::support::browser::{location, Browser};
use crate::support::dev::{approve, authorize_url};
use crate::support::free_port;
use crate::support::latch::{Setup, TestApp};
use crate::support::nginx::Nginx;
use reqwest::StatusCode;
use serde_norway::Value;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
        .iter()
        .map(|s| str_of(s, what).to_string())
        .collect()
}

/// `${NAME:-default}` → `default` (compose interpolation), asserting that shape.
fn compose_default(v: &str, name: &str) -> String {
    let inner = v
        .strip_prefix(&format!("${{{name}:-"))
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("expected ${{{name}:-<demo default>}}, got {v:?}"));
    inner.to_string()
}

/// A bind mount `./host:container[:ro]`: the host path must exist in the repository.
fn bind_mount(volumes: &[String], container: &str) -> String {
    let mount = volumes
        .iter()
        .find(|v| v.split(':').nth(1) == Some(container))
        .unwrap_or_else(|| panic!("nothing mounted at {container}: {volumes:?}"));
    let parts: Vec<&str> = mount.split(':').collect();
    assert_eq!(parts.get(2), Some(&"ro"), "{mount} should be read-only");
    let host = parts[0]
        .strip_prefix("./")
        .expect("a path relative to the repo");
    assert!(
        repo(host).exists(),
        "{mount}: {host} is not in the repository"
    );
    host.trim_end_matches('/').to_string()
}

fn healthcheck_test(svc: &Value, name: &str) -> Vec<String> {
    let hc = &svc["healthcheck"];
    assert!(hc.is_mapping(), "service {name} has no healthcheck");
    strings(&hc["test"], &format!("{name}.healthcheck.test"))
}

#[test]
fn compose_file_describes_the_demo() {
    let c = compose();
    let names: Vec<&str> = c["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    for name in ["latch", "redis", "demo"] {
        assert!(names.contains(&name), "service {name} missing: {names:?}");
    }

    // latch: built from this repository, config mounted read-only, demo secret marked.
    let latch = service(&c, "latch");
    assert_eq!(str_of(&latch["build"], "latch.build"), ".");
    let env = &latch["environment"];
    let secret = compose_default(str_of(&env["LATCH_SECRET"], "LATCH_SECRET"), "LATCH_SECRET");
    assert!(secret.len() >= 32, "the demo secret must pass validation");
    assert!(
        secret.contains("demo"),
        "the default secret is marked as a demo value"
    );
    assert_eq!(str_of(&env["LATCH_LISTEN"], "LATCH_LISTEN"), "0.0.0.0:3000");
    let config_file = bind_mount(
        &strings(&latch["volumes"], "latch.volumes"),
        "/etc/latch/providers.toml",
    );
    assert_eq!(config_file, "deploy/latch/providers.toml");
    assert_eq!(
        healthcheck_test(latch, "latch"),
        ["CMD", "latch-healthcheck"]
    );
    assert_eq!(
        str_of(
            &latch["depends_on"]["redis"]["condition"],
            "latch.depends_on.redis"
        ),
        "service_healthy"
    );
    assert!(
        latch.get("ports").is_none(),
        "latch is reached through nginx only (one origin)"
    );

    // The mounted config is valid with the compose environment, and is what the demo needs.
    let text = read(&config_file);
    let config = latch::config::load_str(&repo(&config_file), &text, &|name| match name {
        "LATCH_SECRET" => Some(secret.clone()),
        "LATCH_LISTEN" => Some("0.0.0.0:3000".into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{config_file} is invalid:\n{e}"));
    assert_eq!(config.server.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(config.server.base_path, "/auth");
    assert_eq!(config.server.listen, "0.0.0.0:3000");
    assert_eq!(config.store.url, "redis://redis:6379");
    // /metrics on its own port, inside the compose network only.
    let metrics = config.server.metrics_listen.expect("metrics_listen is set");
    assert_eq!(metrics.to_string(), "0.0.0.0:9090");
    assert!(
        strings(&latch["expose"], "latch.expose").contains(&metrics.port().to_string()),
        "the metrics port is exposed to the compose network"
    );
    assert!(config.providers.iter().any(|p| p.id == "dev"));
    for commented in ["# [providers.google]", "# [providers.github]"] {
        assert!(text.contains(commented), "{config_file} shows {commented}");
    }
    // The health check asks base_path + /healthz.
    assert_eq!(
        str_of(
            &env["LATCH_HEALTHCHECK_PATH"],
            "latch.environment.LATCH_HEALTHCHECK_PATH"
        ),
        format!("{}/healthz", config.server.base_path)
    );

    // redis: the official image, append-only file on a named volume, pinged.
    let redis = service(&c, "redis");
    assert_eq!(str_of(&redis["image"], "redis.image"), "redis:7");
    let command = strings(&redis["command"], "redis.command").join(" ");
    assert!(command.contains("--appendonly yes"), "{command}");
    assert!(strings(&redis["volumes"], "redis.volumes").contains(&"redis-data:/data".into()));
    assert!(
        c["volumes"].get("redis-data").is_some(),
        "top-level volume redis-data"
    );
    assert_eq!(
        healthcheck_test(redis, "redis"),
        ["CMD", "redis-cli", "ping"]
    );

    // demo: stock nginx on 8080 with this repository's config and page.
    let demo = service(&c, "demo");
    assert_eq!(str_of(&demo["image"], "demo.image"), "nginx:1.27");
    assert_eq!(
        strings(&demo["ports"], "demo.ports"),
        ["127.0.0.1:8080:80"],
        "the demo is published on this machine only"
    );
    // nginx's pinned address is the one proxy latch believes X-Forwarded-For from.
    let nginx_ip: std::net::IpAddr = str_of(
        &demo["networks"]["demo"]["ipv4_address"],
        "demo.networks.demo.ipv4_address",
    )
    .parse()
    .unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 1);
    assert!(config.server.trusted_proxies[0].contains(nginx_ip));
    let subnet = str_of(
        &c["networks"]["demo"]["ipam"]["config"][0]["subnet"],
        "networks.demo.ipam.config[0].subnet",
    );
    let subnet = latch::config::IpNet::parse(subnet).unwrap();
    assert!(
        subnet.contains(nginx_ip),
        "{nginx_ip} is in the demo network"
    );
    // ...and outside the range other containers get addresses from, so none takes it.
    let dynamic = str_of(
        &c["networks"]["demo"]["ipam"]["config"][0]["ip_range"],
        "networks.demo.ipam.config[0].ip_range",
    );
    let dynamic = latch::config::IpNet::parse(dynamic).unwrap();
    assert!(
        !dynamic.contains(nginx_ip),
        "{nginx_ip} is outside ip_range {dynamic:?}"
    );
    for svc in [latch, redis] {
        assert_eq!(strings(&svc["networks"], "networks"), ["demo"]);
    }
    let volumes = strings(&demo["volumes"], "demo.volumes");
    assert_eq!(
        bind_mount(&volumes, "/etc/nginx/conf.d/default.conf"),
        "deploy/nginx/default.conf"
    );
    assert_eq!(bind_mount(&volumes, "/usr/share/nginx/html"), "deploy/demo");
    assert!(repo("deploy/demo/index.html").is_file());
    let nginx = read("deploy/nginx/default.conf");
    assert!(nginx.contains("server latch:3000;"));
    assert!(nginx.contains("location /auth/ {"));
    assert!(nginx.contains("auth_request /_latch/verify;"));
    assert!(nginx.contains("proxy_pass http://latch/auth/verify;"));
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_in_another() {
    let text = read("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    assert!(
        from[0].starts_with("FROM rust:") && from[0].contains("-slim-bookworm AS builder"),
        "{}",
        from[0]
    );
    assert!(
        from[1].starts_with("FROM debian:bookworm-slim"),
        "{}",
        from[1]
    );
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("COPY --from=builder "));

    // Everything after the runtime FROM.
    let runtime_start = lines.iter().position(|l| *l == from[1]).unwrap();
    let runtime = &lines[runtime_start..];
    let has = |prefix: &str| runtime.iter().any(|l| l.starts_with(prefix));
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let user = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&user), "USER {user} is root");
    assert!(has("HEALTHCHECK "));
    assert!(has("EXPOSE 3000"));
    assert!(has("ENTRYPOINT [\"latch\"]"));
    assert!(has(
        "CMD [\"serve\", \"--config\", \"/etc/latch/providers.toml\"]"
    ));
    assert!(text.contains("LATCH_LISTEN=0.0.0.0:3000"));

    // Every COPY source exists and is not excluded from the build context.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    for line in lines.iter().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(repo(source).exists(), "{line}: {source} does not exist");
            let first = source.split('/').next().unwrap();
            assert!(
                !ignored.iter().any(|i| i == first || i == source),
                "{line}: {source} is excluded by .dockerignore"
            );
        }
    }
    assert!(ignored.contains(&"target".to_string()));
}

/// `from` must be in `text` (so a change to the config is noticed here), replaced by `to`.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy/nginx/default.conf has no {from:?}"
    );
    text.replace(from, to)
}

fn start_nginx(port: u16, latch: &TestApp) -> Nginx {
    let conf = read("deploy/nginx/default.conf");
    let conf = rewrite(
        &conf,
        "server latch:3000;",
        &format!("server {};", latch.addr),
    );
    let conf = rewrite(&conf, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    let conf = rewrite(&conf, "root /usr/share/nginx/html;", "root {prefix}/html;");
    Nginx::start(port, &conf, |root| {
        let html = root.join("html");
        std::fs::create_dir(&html).unwrap();
        for entry in std::fs::read_dir(repo("deploy/demo")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), html.join(entry.file_name())).unwrap();
        }
    })
}

#[tokio::test]
async fn demo_nginx_config_signs_in_through_latch() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    // As in the demo: latch under /auth on nginx's origin (loopback, so the dev provider is
    // allowed; its back channel is latch's own listener).
    let app = Setup::default()
        .base_path("/auth")
        .public_url(&origin)
        .spawn()
        .await;
    let nginx = start_nginx(port, &app);
    assert_eq!(nginx.origin, origin);
    let page = format!("{origin}/");
    let browser = Browser::new();

    // Not signed in: the page sends the browser to latch's sign-in page, then back.
    let first = browser.get(&page).await;
    let signin = location(&first, StatusCode::FOUND);
    assert_eq!(
        signin,
        format!("{origin}/auth/signin?callbackUrl={origin}/"),
        "401 from /verify becomes the sign-in redirect"
    );
    // A client-sent user header changes nothing.
    let forged = browser
        .get_with(&page, ("X-Auth-Request-Email", "mallory@example.com"))
        .await;
    assert_eq!(forged.status(), StatusCode::FOUND);

    let signin_page = browser.get(&signin).await;
    assert_eq!(signin_page.status(), StatusCode::OK);
    let html = signin_page.text().await.unwrap().replace("&#x2f;", "/");
    assert!(
        html.contains(&format!("action=\"{origin}/auth/signin/dev\"")),
        "the dev provider's button posts to nginx's origin: {html}"
    );

    // The dev provider, every hop through nginx.
    let email = "compose-demo@example.com";
    let authorize = authorize_url(&origin, &browser, "/auth/signin/dev", &page).await;
    assert!(
        authorize.starts_with(&format!("{origin}/auth/")),
        "the dev provider's page is on nginx's origin: {authorize}"
    );
    let callback = approve(&browser, &authorize, email).await;
    assert!(
        callback.starts_with(&format!("{origin}/auth/callback/dev?")),
        "{callback}"
    );
    let landed = browser.get(&callback).await;
    assert_eq!(location(&landed, StatusCode::FOUND), page);

    // Back at the page: nginx let it through and shows latch's X-Auth-Request-* values.
    let shown = browser.get(&page).await;
    assert_eq!(
        shown.status(),
        StatusCode::OK,
        "signed in, the page is served"
    );
    let header = |name: &str| {
        shown
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("x-auth-request-email").as_deref(), Some(email));
    let user = header("x-auth-request-user").expect("X-Auth-Request-User");
    assert!(!user.is_empty());
    assert!(header("content-type").unwrap().starts_with("text/html"));
    let body = shown.text().await.unwrap();
    assert!(
        body.contains(&format!("<dd id=\"email\">{email}</dd>")),
        "{body}"
    );
    assert!(
        body.contains(&format!("<dd id=\"user\">{user}</dd>")),
        "{body}"
    );
    assert!(!body.contains("<!--#"), "SSI was processed: {body}");

    // latch's own routes are reachable through nginx, health check included.
    let health = browser.get(&format!("{origin}/auth/healthz")).await;
    assert_eq!(health.status(), StatusCode::OK);

    drop(nginx);
    app.stop().await;
}

/// The demo's nginx passes each browser's address in `X-Forwarded-For`, and with nginx in
/// `trusted_proxies` (as `deploy/latch/providers.toml` has it for nginx's pinned address;
/// here nginx is 127.0.0.1) each browser gets its own rate-limit bucket, not one for all.
#[tokio::test]
async fn demo_nginx_gives_latch_each_browser_s_address() {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let app = Setup::default()
        .base_path("/auth")
        .public_url(&origin)
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .limits("signin = \"2/min\"")
        .spawn()
        .await;
    let nginx = start_nginx(port, &app);
    latch::install_crypto_provider();
    let browser_at = |ip: &str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let start = format!("{}/auth/signin/dev", nginx.origin);
    let greedy = browser_at("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(greedy.get(&start).send().await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::FOUND,
            StatusCode::FOUND,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another browser behind the same nginx is not in the greedy one's bucket.
    let other = browser_at("127.0.0.3");
    assert_eq!(
        other.get(&start).send().await.unwrap().status(),
        StatusCode::FOUND
    );
    drop(nginx);
    app.stop().await;
}

/// The image's HEALTHCHECK script (bash /dev/tcp, no curl) against a real latch.
#[tokio::test]
async fn healthcheck_script_reports_latch_health() {
    let app = Setup::default().base_path("/auth").spawn().await;
    let run = |path: &'static str, addr: String| {
        tokio::process::Command::new("bash")
            .arg(repo("deploy/latch/healthcheck"))
            .env("LATCH_HEALTHCHECK_ADDR", addr)
            .env("LATCH_HEALTHCHECK_PATH", path)
            .output()
    };
    let ok = run("/auth/healthz", app.addr.to_string()).await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong_path = run("/healthz", app.addr.to_string()).await.unwrap();
    assert!(!wrong_path.status.success(), "404 is unhealthy");
    let addr = app.addr.to_string();
    app.stop().await;
    let down = run("/auth/healthz", addr).await.unwrap();
    assert!(!down.status.success(), "nothing listening is unhealthy");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(repo("deploy/latch/healthcheck"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "deploy/latch/healthcheck is executable");
}
