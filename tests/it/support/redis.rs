//! Throw-away `redis-server` processes for tests: a single node, a 3-master cluster, a
//! master watched by one Sentinel, and a Sentinel set (master, replica, three Sentinels).
//! Each has its own free ports and temp dirs and is killed on drop (also when a test panics:
//! the topology is owned by the test, so unwinding drops it). Readiness is detected by
//! polling (PING, `CLUSTER INFO`, `INFO replication`, `SENTINEL CKQUORUM`); nothing sleeps
//! for a fixed time.
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
        let port = super::free_port();
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
        // A config file (Sentinel) must come first; the other arguments come after the
        // defaults so they can override them (e.g. `--appendonly yes`).
        let (conf, extra) = match self.args.first() {
            Some(a) if !a.starts_with("--") => (Some(a), &self.args[1..]),
            _ => (None, &self.args[..]),
        };
        cmd.args(conf)
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
            .args(extra)
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

    /// Is the process running (started and not stopped)?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
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

/// `redis-cli -p <port> [-a <password>] <args...>`: its stdout (empty if it fails to run).
pub fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--no-auth-warning",
    ]);
    if let Some(pw) = password {
        cmd.args(["-a", pw]);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Polls `f` every 20 ms until it is true; panics with `what` (and `f`'s last state) after
/// `within`.
fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(()) => return,
            Err(state) if Instant::now() > deadline => panic!("{what}: {state}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Three masters (with `replicas` replicas each), slots spread with `redis-cli --cluster
/// create`, optionally behind a password.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    pub password: Option<String>,
}

impl RedisCluster {
    pub fn new() -> Self {
        Self::build(None, 0)
    }

    /// A cluster whose nodes require `password` (`requirepass` and `masterauth`).
    pub fn with_password(password: &str, replicas: usize) -> Self {
        Self::build(Some(password), replicas)
    }

    fn build(password: Option<&str>, replicas: usize) -> Self {
        require("redis-cli");
        let mut args: Vec<String> = [
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
        if let Some(pw) = password {
            args.extend(["--requirepass", pw, "--masterauth", pw].map(String::from));
        }
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| RedisServer::spawn_on_free_port(true, &args))
            .collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| n.addr()))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        if let Some(pw) = password {
            cmd.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            nodes,
            password: password.map(String::from),
        };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        for n in &self.nodes {
            wait_for(
                "cluster never reached cluster_state:ok",
                Duration::from_secs(20),
                || {
                    let info = redis_cli(n.port(), self.password.as_deref(), &["CLUSTER", "INFO"]);
                    if info.contains("cluster_state:ok") {
                        Ok(())
                    } else {
                        Err(info)
                    }
                },
            );
        }
    }

    /// `redis+cluster://[:password@]h:p,h:p,h:p` (every node a seed).
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.addr()).collect();
        let auth = match &self.password {
            Some(pw) => format!(":{pw}@"),
            None => String::new(),
        };
        format!("redis+cluster://{auth}{}", addrs.join(","))
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
        Self::with_config_epoch(0)
    }

    /// As [`RedisSentinel::new`], with the group at `config-epoch` `epoch` (as after that
    /// many failovers): of Sentinels that disagree, the store follows the highest epoch.
    pub fn with_config_epoch(epoch: u64) -> Self {
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
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 2000\n\
                 sentinel config-epoch {SENTINEL_SERVICE} {epoch}\n",
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

/// One master, one replica and three Sentinels (quorum 2) watching them as `mymaster`; the
/// data nodes require `password`. Which node is the master changes with failovers: ask
/// [`SentinelSet::master_port`].
pub struct SentinelSet {
    /// The two data nodes (the first starts as the master).
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
    pub password: String,
    _conf_dirs: Vec<TempDir>,
}

impl SentinelSet {
    pub fn new(password: &str) -> Self {
        require("redis-cli");
        // Diskless replication without the default 5 s delay: a replica syncs at once.
        let data = |extra: &[&str]| {
            let mut args = vec![
                "--requirepass",
                password,
                "--masterauth",
                password,
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ];
            args.extend_from_slice(extra);
            RedisServer::with_args(&args)
        };
        let master = data(&[]);
        let mport = master.port().to_string();
        let replica = data(&["--replicaof", "127.0.0.1", &mport]);
        let mut conf_dirs = Vec::new();
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("latch-sentinel-")
                .tempdir()
                .expect("temp dir");
            let conf = dir.path().join("sentinel.conf");
            // down-after 1 s: a dead master is noticed quickly; failover-timeout 4 s: a
            // second failover of the same group may follow soon after the first.
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {mport} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                     sentinel failover-timeout {SENTINEL_SERVICE} 4000\n\
                     sentinel auth-pass {SENTINEL_SERVICE} {password}\n"
                ),
            )
            .expect("write sentinel.conf");
            let args = vec![conf.display().to_string(), "--sentinel".to_string()];
            sentinels.push(RedisServer::spawn_on_free_port(false, &args));
            conf_dirs.push(dir);
        }
        let set = Self {
            nodes: vec![master, replica],
            sentinels,
            password: password.to_string(),
            _conf_dirs: conf_dirs,
        };
        set.wait_healthy(Duration::from_secs(20));
        set
    }

    /// `redis+sentinel://:<password>@s1,s2,s3/mymaster`.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.sentinels.iter().map(|s| s.addr()).collect();
        format!(
            "redis+sentinel://:{}@{}/{SENTINEL_SERVICE}",
            self.password,
            addrs.join(",")
        )
    }

    /// The master's port as the first running Sentinel names it.
    pub fn master_port(&self) -> u16 {
        let s = self.sentinels.iter().find(|s| s.is_running()).unwrap();
        let out = redis_cli(
            s.port(),
            None,
            &["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no master named by the Sentinel: {out:?}"))
    }

    /// The data node listening on `port`.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes.iter_mut().find(|n| n.port() == port).unwrap()
    }

    /// What each Sentinel answers for `get-master-addr-by-name`.
    fn masters_named(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| {
                redis_cli(
                    s.port(),
                    None,
                    &["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE],
                )
            })
            .collect()
    }

    /// Waits until every Sentinel names the same running master, that master has an online
    /// replica the Sentinels see with a working link, and the Sentinels can authorize a
    /// failover (`SENTINEL CKQUORUM`).
    pub fn wait_healthy(&self, within: Duration) {
        wait_for("the Sentinel set never became healthy", within, || {
            let names = self.masters_named();
            if names.iter().any(|n| n != &names[0]) {
                return Err(format!("Sentinels disagree: {names:?}"));
            }
            let master = self.master_port();
            if !self
                .nodes
                .iter()
                .any(|n| n.port() == master && n.is_running())
            {
                return Err(format!("master {master} is not running"));
            }
            let info = redis_cli(master, Some(&self.password), &["INFO", "replication"]);
            if !(info.contains("role:master") && info.contains("state=online")) {
                return Err(format!("master {master}: {info}"));
            }
            for s in &self.sentinels {
                let replicas =
                    redis_cli(s.port(), None, &["SENTINEL", "replicas", SENTINEL_SERVICE]);
                let healthy = replicas.contains("master-link-status\nok")
                    && !replicas.contains("s_down")
                    && !replicas.contains("disconnected");
                if !healthy {
                    return Err(format!("sentinel {}: replicas {replicas}", s.port()));
                }
                let quorum = redis_cli(s.port(), None, &["SENTINEL", "CKQUORUM", SENTINEL_SERVICE]);
                if !quorum.starts_with("OK 3 usable") {
                    return Err(format!("sentinel {}: {quorum}", s.port()));
                }
            }
            Ok(())
        });
    }

    /// The two faults the failover tests put the group through, by name:
    /// `"SENTINEL FAILOVER"` (asked of the first Sentinel) or `"SIGKILL of the master"`.
    pub fn cause(&mut self, fault: &str) {
        match fault {
            "SENTINEL FAILOVER" => {
                let out = redis_cli(
                    self.sentinels[0].port(),
                    None,
                    &["SENTINEL", "FAILOVER", SENTINEL_SERVICE],
                );
                assert_eq!(out.trim(), "OK", "{out}");
            }
            "SIGKILL of the master" => {
                let master = self.master_port();
                self.node_mut(master).stop();
            }
            other => panic!("no such fault: {other}"),
        }
    }

    /// Waits until every Sentinel names a master other than `old`; returns its port.
    pub fn wait_new_master(&self, old: u16, within: Duration) -> u16 {
        wait_for("no new master was elected", within, || {
            let ports = self.masters_named();
            if ports
                .iter()
                .all(|p| !p.contains(&old.to_string()) && p.contains("127.0.0.1"))
            {
                Ok(())
            } else {
                Err(format!("{ports:?}"))
            }
        });
        self.master_port()
    }
}
