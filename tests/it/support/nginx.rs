//! Debian's nginx run from a temporary prefix (for tests that put it in front of latch);
//! killed on drop.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn find_nginx() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("nginx is not installed; these tests run it in front of latch (apt-get install -y nginx-light)");
}

pub struct Nginx {
    child: Child,
    pub origin: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// The temporary prefix (for files a server block refers to).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts nginx on `127.0.0.1:port` with `server_conf` (what the nginx image reads from
    /// `conf.d/*.conf`) inside an `http` block like the image's; `prepare` may write files
    /// into the prefix first (its path is `{prefix}` in `server_conf`).
    pub fn start(port: u16, server_conf: &str, prepare: impl FnOnce(&Path)) -> Nginx {
        let nginx = find_nginx();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // nginx's workers may run as another user (when the tests run as root).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(root);
        let r = root.display();
        std::fs::write(
            root.join("default.conf"),
            server_conf.replace("{prefix}", &r.to_string()),
        )
        .unwrap();
        let main = format!(
            "worker_processes 1;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               types {{ text/html html; }}\n\
               default_type application/octet-stream;\n\
               access_log off;\n\
               client_body_temp_path {r}/body;\n\
               proxy_temp_path {r}/proxy;\n\
               fastcgi_temp_path {r}/fastcgi;\n\
               uwsgi_temp_path {r}/uwsgi;\n\
               scgi_temp_path {r}/scgi;\n\
               include {r}/default.conf;\n\
             }}\n"
        );
        std::fs::write(root.join("nginx.conf"), main).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-g")
            .arg(format!(
                "daemon off; master_process off; pid {r}/nginx.pid; error_log stderr;"
            ))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display()));
        let mut nginx = Nginx {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited with {status} (its errors are above)");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
