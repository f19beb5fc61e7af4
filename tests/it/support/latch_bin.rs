//! Runs the real `latch` binary (`latch check`, `latch serve`) with a config file, keeping
//! everything it prints so tests can assert on it (e.g. that a password never appears).
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A config file in its own temp dir.
pub struct ConfigFile {
    pub dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
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

/// `latch check --config <file>`: (exit code, stdout, stderr).
pub async fn check(config: &str) -> (Option<i32>, String, String) {
    let file = config_file(config);
    let out = Command::new(env!("CARGO_BIN_EXE_latch"))
        .arg("check")
        .arg("--config")
        .arg(&file.path)
        .env_remove("LATCH_LISTEN")
        .env_remove("LATCH_SECRET")
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

/// A running `latch serve` (killed on drop).
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:<port>`, from its "latch is listening" line.
    pub origin: String,
    output: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    _config: ConfigFile,
}

/// Starts `latch serve` with `config` (which must listen on `127.0.0.1:0`) and debug logs,
/// and waits (at most 20 s) for its "latch is listening" line.
pub async fn serve(config: &str) -> Served {
    let file = config_file(config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch"))
        .arg("serve")
        .arg("--config")
        .arg(&file.path)
        .env_remove("LATCH_LISTEN")
        .env_remove("LATCH_SECRET")
        .env("RUST_LOG", "latch=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut readers = Vec::new();
    for reader in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let (output, tx) = (output.clone(), tx.clone());
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let origin = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = rx.recv().await {
            if !line.contains("latch is listening") {
                continue;
            }
            let listen = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listen="))
                .unwrap_or_else(|| panic!("no listen= in {line}"));
            return Some(format!("http://{listen}"));
        }
        None
    })
    .await;
    let origin = match origin {
        Ok(Some(o)) => o,
        _ => panic!(
            "latch serve never said it listens:\n{}",
            output.lock().unwrap()
        ),
    };
    Served {
        child,
        origin,
        output,
        readers,
        _config: file,
    }
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Everything printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Kills the process and returns everything it printed.
    pub async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        // The readers end at EOF once the process is gone.
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        self.output()
    }
}

/// A plain HTTP client (no redirects followed), with the process's crypto provider set.
pub fn http_client() -> reqwest::Client {
    latch::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
