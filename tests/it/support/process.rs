//! The real `latch` binary as a child process, with its log (stderr) captured in a file: for
//! tests that read what latch logged, panics included.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LatchProcess {
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    child: Child,
    log: PathBuf,
    config: PathBuf,
    /// The `[server]` lines written before the caller's part of the file.
    server: String,
    _dir: tempfile::TempDir,
}

impl LatchProcess {
    /// Starts `latch serve --log-format json` on a free port; `config` gets the origin and
    /// returns everything after the `[server]` lines `listen`, `public_url` and `secret`.
    pub async fn start(config: impl FnOnce(&str) -> String) -> LatchProcess {
        latch::install_crypto_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let origin = format!("http://127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("providers.toml");
        let server = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{origin}\"\nsecret = \"{}\"\n",
            super::latch::SECRET,
        );
        std::fs::write(&path, format!("{server}{}", config(&origin))).unwrap();
        let log = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env_remove("LATCH_LISTEN")
            .env_remove("LATCH_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let process = LatchProcess {
            origin,
            child,
            log,
            config: path,
            server,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = client.get(process.url("/healthz")).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "latch did not start: {}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Replaces the configuration file (after the same `[server]` lines as at start).
    pub fn rewrite_config(&self, rest: &str) {
        std::fs::write(&self.config, format!("{}{rest}", self.server)).unwrap();
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// What latch has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines (JSON objects) so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Is the process still running (not crashed)?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then the whole log.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for LatchProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
