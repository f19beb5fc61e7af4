//! The real `latch` binary as a child process: `latch check` run once, or `latch serve`
//! running until its [`LatchProcess`] guard drops, which kills it (also when the test fails,
//! since unwinding drops the guard). What it prints goes to files beside its config, so a
//! test reads everything latch logged up to its last answer, panics included.
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::latch::SECRET;

/// How long `latch serve` may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERMed latch may take to stop before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A config file in its own temp dir.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn config_file(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("providers.toml");
    std::fs::write(&path, text).unwrap();
    ConfigFile { dir, path }
}

/// A minimal valid config with `store_url`, listening on `127.0.0.1:0`.
pub fn config_with_store(store_url: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://localhost:3000\"\n\
         secret = \"0123456789abcdef0123456789abcdef\"\n\n[store]\nurl = \"{store_url}\"\n\n\
         [providers.dev]\npreset = \"dev\"\n"
    )
}

/// `latch <args> --config <config>`, without the variables that would override the file.
pub fn std_command(args: &[&str], config: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latch"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LATCH_CONFIG")
        .env_remove("LATCH_LISTEN")
        .env_remove("LATCH_SECRET");
    command
}

/// [`std_command`] for async tests; killed if dropped before it ends.
pub fn command(args: &[&str], config: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(std_command(args, config));
    command.kill_on_drop(true);
    command
}

/// Runs `latch <args>` on `config` to its end (`RUST_LOG=warn`), asserting it succeeded
/// (its stderr in the message); returns its stdout.
pub async fn run_ok(args: &[&str], config: &Path) -> String {
    let out = command(args, config)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "latch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `latch check --config <file>`: (exit code, stdout, stderr).
pub async fn check(config: &str) -> (Option<i32>, String, String) {
    let file = config_file(config);
    let out = command(&["check"], &file.path)
        .env("RUST_LOG", "latch=debug")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `latch serve` with `config` (which must listen on `127.0.0.1:0`) and debug logs,
/// and waits (at most 20 s) for its "latch is listening" line.
pub async fn serve(config: &str) -> LatchProcess {
    Serve::default().config(config).await
}

/// How `latch serve` is run: text logs at `RUST_LOG=latch=debug` unless told otherwise.
pub struct Serve {
    json: bool,
    rust_log: String,
    secret: String,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            json: false,
            rust_log: "latch=debug".into(),
            secret: SECRET.into(),
        }
    }
}

impl Serve {
    /// `--log-format json`.
    pub fn json(mut self) -> Self {
        self.json = true;
        self
    }

    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.into();
        self
    }

    /// `server.secret` of [`Serve::on_free_port`] (default [`SECRET`]).
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.into();
        self
    }

    /// `config` is the whole file; latch says where it listens.
    pub async fn config(self, config: &str) -> LatchProcess {
        self.spawn(String::new(), config).await
    }

    /// On a free port whose origin is `public_url`: `[server]` with `listen`, `public_url`
    /// and `secret`, then what `rest` returns for the origin.
    pub async fn on_free_port(self, rest: impl FnOnce(&str) -> String) -> LatchProcess {
        let port = super::free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let server = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{origin}\"\nsecret = \"{}\"\n",
            self.secret,
        );
        let rest = rest(&origin);
        let process = self.spawn(server, &rest).await;
        assert_eq!(process.origin, origin, "latch listens where it was told");
        process
    }

    async fn spawn(self, server: String, rest: &str) -> LatchProcess {
        latch::install_crypto_provider();
        let file = config_file(&format!("{server}{rest}"));
        let stdout = file.dir.path().join("stdout.log");
        let stderr = file.dir.path().join("stderr.log");
        let mut args = vec!["serve"];
        if self.json {
            args.extend(["--log-format", "json"]);
        }
        let child = std_command(&args, &file.path)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        // From here on the guard owns the child: a panic below kills it.
        let mut process = LatchProcess {
            origin: String::new(),
            child,
            stdout,
            stderr,
            server,
            file,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        process.origin = loop {
            if let Some(listen) = process.log().lines().find_map(listening) {
                break format!("http://{listen}");
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("latch serve exited with {status}:\n{}", process.output());
            }
            assert!(
                Instant::now() < deadline,
                "latch serve never said it listens:\n{}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        process
    }
}

/// The address in latch's "latch is listening" line, in either log format.
fn listening(line: &str) -> Option<String> {
    if !line.contains("latch is listening") {
        return None;
    }
    if line.starts_with('{') {
        let line: serde_json::Value = serde_json::from_str(line).ok()?;
        return line["listen"].as_str().map(String::from);
    }
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("no listen= in {line}"));
    Some(listen.to_string())
}

/// A running `latch serve`; killed when dropped.
pub struct LatchProcess {
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    /// The `[server]` lines written before the caller's part of the file.
    server: String,
    file: ConfigFile,
}

impl LatchProcess {
    /// `latch serve --log-format json` at `RUST_LOG=info` on a free port (see
    /// [`Serve::on_free_port`]).
    pub async fn start(rest: impl FnOnce(&str) -> String) -> LatchProcess {
        Serve::default()
            .json()
            .rust_log("info")
            .on_free_port(rest)
            .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Replaces the configuration file (after the same `[server]` lines as at start).
    pub fn rewrite_config(&self, rest: &str) {
        std::fs::write(&self.file.path, format!("{}{rest}", self.server)).unwrap();
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// What latch has logged (its stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// What latch has printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Everything printed so far: stdout, then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout(), self.log())
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

    /// SIGTERM, the way a service manager stops it; killed if it takes over 10 s.
    pub async fn terminate(&mut self) {
        if self.running() {
            self.signal("TERM");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.running() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.wait();
    }

    /// [`LatchProcess::terminate`], then everything it printed.
    pub async fn stop(mut self) -> String {
        self.terminate().await;
        self.output()
    }

    /// SIGKILL, then everything it printed.
    pub async fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output()
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
