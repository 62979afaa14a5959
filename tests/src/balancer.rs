//! Real HAProxy (Debian's `haproxy` package) running the repository's
//! `deploy/haproxy/haproxy.cfg` in front of API instances and terminal-hosts, for the
//! scale-out tests and benchmarks. Without `haproxy` on PATH a test prints SKIPPED,
//! unless `ARCANA_REQUIRE_HAPROXY=1` (CI), where it fails.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running HAProxy; killed when dropped.
pub struct Balancer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Whether `haproxy` is installed (prints SKIPPED, or panics under `ARCANA_REQUIRE_HAPROXY=1`).
pub fn available(test: &str) -> bool {
    let ok = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ARCANA_REQUIRE_HAPROXY").as_deref() != Ok("1"),
            "haproxy is not installed but ARCANA_REQUIRE_HAPROXY=1 (apt install haproxy)"
        );
        eprintln!("SKIPPED: {test}: haproxy is not installed (apt install haproxy)");
    }
    ok
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

impl Balancer {
    /// Starts the shipped config with two API instances and two terminal-hosts (URLs),
    /// and waits until every server passed its health check.
    pub fn start(apis: [&str; 2], terminals: [&str; 2]) -> Balancer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("haproxy.log");
        let config = crate::repo_root().join("deploy/haproxy/haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("ARCANA_LB_BIND", format!("127.0.0.1:{port}"))
            .env("ARCANA_API_1", host_port(apis[0]))
            .env("ARCANA_API_2", host_port(apis[1]))
            .env("ARCANA_TERMINAL_1", host_port(terminals[0]))
            .env("ARCANA_TERMINAL_2", host_port(terminals[1]))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("spawn haproxy");
        let b = Balancer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        // Health checks every 500 ms, two to rise: every server is up within seconds.
        std::thread::sleep(Duration::from_millis(1500));
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// `ws://…/ws/shell/{id}{query}` through the balancer.
    pub fn ws_url(&self, session_id: &str, query: &str) -> String {
        crate::shell_ws_url(&self.url, session_id, query)
    }

    /// HAProxy's log so far (its warnings, servers going down and up, included).
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.push_str(&std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default());
        log
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
