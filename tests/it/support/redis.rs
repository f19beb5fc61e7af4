//! Throw-away `redis-server` processes for tests: a single node, a 3-master cluster, and a
//! master watched by one Sentinel. Each has its own free ports and temp dirs and is killed on
//! drop. Readiness is detected by polling the socket with PING; nothing sleeps for a fixed time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

fn redis_server_bin() -> &'static str {
    "redis-server"
}

fn require(bin: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("`{bin}` is not on PATH; these tests need it: apt-get install -y redis-server");
    }
}

/// A port that was free a moment ago (bind to :0, read it, release it). With `bus`, port +
/// 10000 (the cluster bus) must be free too.
pub fn free_port(bus: bool) -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        drop(l);
        if !bus {
            return port;
        }
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// Sends one inline command and returns the raw reply (or None if nothing answers).
pub fn raw_command(port: u16, command: &str) -> Option<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    // Read until the reply looks complete (a bulk string may arrive in pieces).
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if reply_complete(&out) {
            break;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn reply_complete(b: &[u8]) -> bool {
    let Some(end) = b.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if b.first() == Some(&b'$') {
        let len: i64 = std::str::from_utf8(&b[1..end])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        len < 0 || b.len() >= end + 2 + len as usize + 2
    } else {
        true
    }
}

fn answers_ping(port: u16) -> bool {
    // A server with a password answers -NOAUTH, which also means it is up.
    raw_command(port, "PING").is_some_and(|r| r.starts_with("+PONG") || r.starts_with("-NOAUTH"))
}

/// One `redis-server` process (a plain node, a cluster node or a Sentinel).
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a plain, non-persistent node on a free port.
    pub fn new() -> Self {
        Self::spawn_on_free_port(false, &[])
    }

    /// Starts a plain node with extra `redis-server` arguments (e.g. `--requirepass x`).
    pub fn with_args(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::spawn_on_free_port(false, &args)
    }

    /// Starts a plain node on `port` (e.g. one a store was pointed at before).
    pub fn on_port(port: u16) -> Self {
        let mut s = Self::prepare(port, Vec::new());
        s.start();
        s
    }

    fn spawn_on_free_port(bus: bool, extra: &[String]) -> Self {
        require(redis_server_bin());
        let mut last = String::new();
        for _ in 0..5 {
            let mut s = Self::prepare(free_port(bus), extra.to_vec());
            match s.try_start() {
                Ok(()) => return s,
                Err(e) => last = e, // most likely the port was taken meanwhile
            }
        }
        panic!("could not start redis-server: {last}");
    }

    fn prepare(port: u16, args: Vec<String>) -> Self {
        Self {
            port,
            dir: tempfile::Builder::new()
                .prefix("latch-redis-")
                .tempdir()
                .expect("temp dir"),
            args,
            child: None,
        }
    }

    /// The node's temp dir (its working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(redis_server_bin());
        // A config file (Sentinel) must come first.
        cmd.args(&self.args)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "redis-server on port {} exited with {status}: {}",
                    self.port,
                    tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                ));
            }
            if answers_ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {} never answered PING",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (Re)starts the server on the same port.
    pub fn start(&mut self) {
        // The port was released when the server was killed; retry briefly in case of TIME_WAIT
        // trouble or a slow exit.
        let mut last = String::new();
        for _ in 0..20 {
            match self.try_start() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server: {last}");
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("server not running").id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Default for RedisServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a paused (SIGSTOPped) server.
        self.stop();
    }
}

/// Three masters, no replicas, slots spread with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn new() -> Self {
        require("redis-cli");
        let args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::spawn_on_free_port(true, &args))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| n.addr()))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &self.nodes {
            loop {
                let info = raw_command(n.port(), "CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster never reached cluster_state:ok ({info})"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis+cluster://h:p,h:p,h:p`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.addr()).collect();
        format!("redis+cluster://{}", addrs.join(","))
    }
}

impl Default for RedisCluster {
    fn default() -> Self {
        Self::new()
    }
}

/// One master and one Sentinel watching it as `mymaster`.
pub struct RedisSentinel {
    pub master: RedisServer,
    pub sentinel: RedisServer,
    _conf_dir: TempDir,
}

pub const SENTINEL_SERVICE: &str = "mymaster";

impl RedisSentinel {
    pub fn new() -> Self {
        let master = RedisServer::new();
        let conf_dir = tempfile::Builder::new()
            .prefix("latch-sentinel-")
            .tempdir()
            .expect("temp dir");
        let conf: PathBuf = conf_dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 2000\n",
                master.port()
            ),
        )
        .expect("write sentinel.conf");
        let args = vec![conf.display().to_string(), "--sentinel".to_string()];
        let sentinel = RedisServer::spawn_on_free_port(false, &args);
        // Wait until the Sentinel names the master.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let r = raw_command(
                sentinel.port(),
                &format!("SENTINEL get-master-addr-by-name {SENTINEL_SERVICE}"),
            )
            .unwrap_or_default();
            if r.contains(&master.port().to_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel never knew the master: {r}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            master,
            sentinel,
            _conf_dir: conf_dir,
        }
    }

    /// `redis+sentinel://127.0.0.1:<sentinel port>/mymaster`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://{}/{SENTINEL_SERVICE}",
            self.sentinel.addr()
        )
    }
}

impl Default for RedisSentinel {
    fn default() -> Self {
        Self::new()
    }
}
