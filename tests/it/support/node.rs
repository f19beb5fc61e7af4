//! Node.js programs the tests run (the browser scripts, the OpenID provider, the SPA
//! example's API): each folder's pinned packages installed once per run, and servers that
//! announce their port, killed when their child handle drops.
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `npm ci` in `dir` unless `marker` (a path under it) exists, so `cargo test` alone works;
/// `what` names the tests that need it.
pub async fn npm_ci(dir: &str, marker: &str, what: &str) {
    // One install at a time; a folder installed meanwhile is not installed again.
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = INSTALLING.lock().await;
    if Path::new(dir).join(marker).exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .await
        .unwrap_or_else(|e| {
            panic!("npm (Node.js 20+) is needed for {what}: apt-get install -y nodejs npm ({e})")
        });
    assert!(status.success(), "npm ci in {dir} failed");
}

/// `node <script>` in `dir` on a free port (`PORT=0`) with `env`, which prints
/// `LISTENING <port>` first: the child (killed when dropped) and its origin.
pub async fn start_server(
    dir: &str,
    script: &str,
    env: &[(&str, &str)],
    stdin: Stdio,
    within: Duration,
) -> (Child, String) {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(dir)
        .env("PORT", "0")
        .envs(env.iter().copied())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Node.js 20+) is needed: apt-get install -y nodejs npm");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(within, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} starts within {within:?}"))
        .unwrap()
        .unwrap_or_else(|| panic!("{script} prints LISTENING <port>"));
    let port: u16 = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {script}: {line}"));
    (child, format!("http://127.0.0.1:{port}"))
}
