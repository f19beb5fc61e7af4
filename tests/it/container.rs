//! The image and the docker-compose demo, run for real with podman (issue 14). Ignored by
//! `cargo test`: they need podman, the images the files name (or deploy/local-images.sh's
//! stand-ins) and minutes of CPU. `deploy/container-test.sh` prepares all that and runs them:
//! `cargo test --test it -- --ignored --test-threads=1 container::`.
//! PODMAN and PODMAN_COMPOSE name the programs (default `podman`, `podman-compose`).
use crate::support::browser::{location, Browser};
use crate::support::dev::{approve, authorize_url};
use crate::support::free_port;
use reqwest::StatusCode;
use serde_json::Value;
use std::net::TcpListener as StdListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tag docker-compose.yml gives the image, so the compose test reuses this build.
const IMAGE: &str = "latch:local";
/// Measured here: 109.7 MB (the stand-in debian:bookworm-slim is 77.9 MB, the official one
/// about 75 MB; the rest is ca-certificates and the latch binary). Room for a larger
/// binary, not for a toolchain or a second copy of the base.
const IMAGE_BOUND: u64 = 120_000_000;
/// The compose project of the test: not `latch-demo`, so a developer's demo volume survives.
const PROJECT: &str = "latch-demo-test";
const LABEL: &str = "latch.container-test=true";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// Runs a command in the repository, within `limit`; its output, whatever the status.
async fn run(program: &str, args: &[&str], limit: Duration) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (run deploy/container-test.sh)"));
    tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {limit:?}"))
        .unwrap()
}

/// Runs a command that must succeed; its stdout.
async fn ok(program: &str, args: &[&str], limit: Duration) -> String {
    let out = run(program, args, limit).await;
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn podman(args: &[&str]) -> String {
    ok(&program("PODMAN", "podman"), args, Duration::from_secs(120)).await
}

/// A world-readable file for a read-only bind mount (the container user is not root).
fn write_mounted(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// `text` with the one line starting `key = ` replaced, asserting it is there.
fn replace_line(text: &str, key: &str, line: &str) -> String {
    let prefix = format!("{key} = ");
    assert_eq!(
        text.lines().filter(|l| l.starts_with(&prefix)).count(),
        1,
        "expected one `{prefix}…` line"
    );
    text.lines()
        .map(|l| if l.starts_with(&prefix) { line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Polls `url` until it answers 200; at the deadline, the last answer.
async fn wait_ok(url: &str, limit: Duration) -> Result<(), String> {
    latch::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        let last = match client.get(url).send().await {
            Ok(r) if r.status() == StatusCode::OK => return Ok(()),
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(format!("{url} not 200 within {limit:?} (last: {last})"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes its container, and its anonymous volume, however the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(program("PODMAN", "podman"))
            .args(["rm", "--force", "--volumes", "--time", "0", &self.0])
            .stdout(Stdio::null())
            .status();
    }
}

async fn build_image() {
    let started = Instant::now();
    ok(
        &program("PODMAN", "podman"),
        // `docker` format, as docker builds: podman's default (OCI) drops HEALTHCHECK.
        &[
            "build",
            "--pull=never",
            "--format",
            "docker",
            "-t",
            IMAGE,
            "-f",
            "Dockerfile",
            ".",
        ],
        Duration::from_secs(30 * 60),
    )
    .await;
    println!("podman build: {:.1?}", started.elapsed());
}

#[tokio::test]
#[ignore = "builds and runs the image with podman: deploy/container-test.sh"]
async fn image_builds_small_and_runs_read_only_as_its_user() {
    build_image().await;
    let inspect: Value = serde_json::from_str(&podman(&["image", "inspect", IMAGE]).await).unwrap();
    let image = &inspect[0];
    let size = image["Size"].as_u64().unwrap();
    println!("image size: {:.1} MB", size as f64 / 1e6);
    assert!(size < IMAGE_BOUND, "{IMAGE} is {size} bytes");
    assert_eq!(image["Config"]["User"], "latch:latch", "{image}");
    let health = &image["Healthcheck"]["Test"];
    assert_eq!(*health, serde_json::json!(["CMD", "latch-healthcheck"]));

    // The sample config, with the two lines a container deployment changes: the published
    // origin, and the SQLite file in the image's data directory (next to the read-only
    // config it would not be writable).
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let sample = std::fs::read_to_string(repo().join("providers.toml")).unwrap();
    let config = replace_line(&sample, "public_url", &format!("public_url = \"{origin}\""));
    let config = replace_line(&config, "url", "url = \"sqlite:///var/lib/latch/latch.db\"");
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("providers.toml");
    write_mounted(&config_file, &config);

    let name = format!("latch-image-test-{}", std::process::id());
    let container = Container(name.clone());
    let mount = format!("{}:/etc/latch/providers.toml:ro", config_file.display());
    let publish = format!("127.0.0.1:{port}:3000");
    podman(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--label",
        LABEL,
        "--read-only",
        // The data directory is a volume, as in any deployment; the image owns it to latch.
        "--volume",
        "/var/lib/latch",
        "--volume",
        &mount,
        "--publish",
        &publish,
        IMAGE,
    ])
    .await;
    if let Err(e) = wait_ok(&format!("{origin}/healthz"), Duration::from_secs(30)).await {
        panic!("{e}\n{}", podman(&["logs", &name]).await);
    }

    // The image's own health check command, run by podman inside the container.
    podman(&["healthcheck", "run", &name]).await;
    let state = podman(&["inspect", "--format", "{{.State.Health.Status}}", &name]).await;
    assert_eq!(state.trim(), "healthy");

    // latch is PID 1 and runs as the image's user, uid 10001.
    let status = podman(&["exec", &name, "cat", "/proc/1/status"]).await;
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["10001"; 4],
        "{uid}"
    );
    // Read-only root file system and config, even for root; the data volume is writable.
    for path in ["/usr/local/bin/probe", "/etc/latch/providers.toml"] {
        let out = run(
            &program("PODMAN", "podman"),
            &["exec", "--user", "0", &name, "touch", path],
            Duration::from_secs(60),
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Read-only file system"),
            "{path}: {err}"
        );
    }
    podman(&["exec", &name, "test", "-w", "/var/lib/latch"]).await;

    // A dev-provider sign-in through the published port; the session lands in SQLite.
    {
        let browser = Browser::new();
        let callback = format!("{origin}/session");
        let authorize = authorize_url(&origin, &browser, "/signin/dev", &callback).await;
        assert!(
            authorize.starts_with(&format!("{origin}/dev/dev/authorize?")),
            "{authorize}"
        );
        let callback_url = approve(&browser, &authorize, "ada@example.com").await;
        let done = browser.get(&callback_url).await;
        assert_eq!(location(&done, StatusCode::FOUND), callback);
        let session = browser.json(&callback).await;
        assert_eq!(session["user"]["email"], "ada@example.com", "{session}");
    }
    podman(&["exec", &name, "test", "-s", "/var/lib/latch/latch.db"]).await;

    // SIGTERM: latch shuts down on its own, well within podman's 10 s.
    let started = Instant::now();
    podman(&["stop", "--time", "10", &name]).await;
    let code = podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]).await;
    println!(
        "stopped in {:.1?}, exit code {}",
        started.elapsed(),
        code.trim()
    );
    assert_eq!(code.trim(), "0", "{}", podman(&["logs", &name]).await);
    drop(container);
}

/// The compose demo's files, plus an override when 127.0.0.1:8080 is taken on this machine.
struct Demo {
    files: Vec<String>,
    port: u16,
}

impl Demo {
    fn new() -> Demo {
        let mut files = vec!["docker-compose.yml".to_string()];
        if StdListener::bind("127.0.0.1:8080").is_ok()
            && std::env::var_os("LATCH_DEMO_PORT").is_none()
        {
            return Demo { files, port: 8080 };
        }
        // The demo's port is fixed for its users; here another port, and the latch config's
        // public_url to match, come from an override file (docker-compose.yml stays as is).
        let port = std::env::var("LATCH_DEMO_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(free_port);
        let dir = repo().join("target/container-test");
        let config = std::fs::read_to_string(repo().join("deploy/latch/providers.toml")).unwrap();
        let config = replace_line(
            &config,
            "public_url",
            &format!("public_url = \"http://localhost:{port}\""),
        );
        let config_file = dir.join("providers.toml");
        write_mounted(&config_file, &config);
        let overrides = format!(
            "services:\n  latch:\n    volumes: !override\n      - {}:/etc/latch/providers.toml:ro\n  \
             demo:\n    ports: !override\n      - \"127.0.0.1:{port}:80\"\n",
            config_file.display()
        );
        let override_file = dir.join("compose.override.yml");
        std::fs::write(&override_file, overrides).unwrap();
        files.push(override_file.display().to_string());
        println!(
            "127.0.0.1:8080 is taken: the demo runs on {port} ({})",
            override_file.display()
        );
        Demo { files, port }
    }

    /// `podman-compose -p PROJECT -f … <args>`.
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["-p", PROJECT];
        for f in &self.files {
            all.extend(["-f", f.as_str()]);
        }
        all.extend(args);
        all
    }

    async fn compose(&self, args: &[&str]) -> String {
        let compose = program("PODMAN_COMPOSE", "podman-compose");
        ok(&compose, &self.args(args), Duration::from_secs(30 * 60)).await
    }

    /// `up -d`, timed, then waits until latch answers through nginx.
    async fn up(&self, extra: &[&str]) {
        let started = Instant::now();
        self.compose(&[&["up", "-d"], extra].concat()).await;
        let url = format!("http://localhost:{}/auth/healthz", self.port);
        if let Err(e) = wait_ok(&url, Duration::from_secs(90)).await {
            let compose = program("PODMAN_COMPOSE", "podman-compose");
            let logs = run(&compose, &self.args(&["logs"]), Duration::from_secs(60)).await;
            panic!("{e}\n{}", String::from_utf8_lossy(&logs.stdout));
        }
        println!(
            "compose up {extra:?}: {:.1?} until {url} answered",
            started.elapsed()
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new(program("PODMAN_COMPOSE", "podman-compose"))
            .args(self.args(&["down", "--volumes"]))
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The compose project's containers, running or not (their ids).
async fn containers_left() -> String {
    let filter = format!("label=io.podman.compose.project={PROJECT}");
    let left = podman(&["ps", "--all", "--quiet", "--filter", &filter]).await;
    left.trim().to_string()
}

#[tokio::test]
#[ignore = "runs docker-compose.yml with podman-compose: deploy/container-test.sh"]
async fn compose_demo_signs_in_in_chromium_and_the_session_survives_a_restart() {
    let demo = Demo::new();
    demo.up(&["--build"]).await;
    let page = format!("http://localhost:{}/", demo.port);
    let screenshot = repo().join("target/screenshots/compose-demo.png");
    let _ = std::fs::remove_file(&screenshot);
    let report = crate::browser::run_script(
        "demo.mjs",
        &[
            ("DEMO_URL", page.as_str()),
            ("EMAIL", "grace@example.com"),
            ("SCREENSHOT", screenshot.to_str().unwrap()),
        ],
    )
    .await;
    println!("protected page screenshot: {}", screenshot.display());
    assert!(screenshot.is_file());
    let signin = report["signinUrl"].as_str().unwrap();
    assert_eq!(
        signin,
        // nginx's @signin writes the callbackUrl unencoded; latch reads it as is.
        format!(
            "http://localhost:{}/auth/signin?callbackUrl={page}",
            demo.port
        ),
        "{report}"
    );
    assert_eq!(report["shown"]["heading"], "Signed in", "{report}");
    assert_eq!(report["shown"]["email"], "grace@example.com", "{report}");
    assert_eq!(report["shown"]["name"], "grace", "{report}");
    assert!(
        !report["shown"]["user"].as_str().unwrap().is_empty(),
        "{report}"
    );
    // (A 404 for /favicon.ico is the one console error: the demo has no icon.)
    let csp = report["consoleErrors"].to_string();
    assert!(!csp.contains("Content Security Policy"), "{report}");
    let cookie = report["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap(),
                c["value"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    assert!(cookie.contains("session-token="), "{report}");

    // down and up again: the session is in Redis's append-only file on the redis-data volume.
    demo.compose(&["down"]).await;
    assert_eq!(containers_left().await, "", "containers left after down");
    demo.up(&[]).await;
    {
        latch::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let signed_in = client
            .get(&page)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::OK);
        assert_eq!(
            signed_in.headers()["x-auth-request-email"],
            "grace@example.com"
        );
        let body = signed_in.text().await.unwrap();
        assert!(body.contains(r#"<dd id="name">grace</dd>"#), "{body}");
        let anonymous = client.get(&page).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::FOUND, "no cookie, no page");
    }
    drop(demo);
    assert_eq!(containers_left().await, "", "containers left after down");
}
