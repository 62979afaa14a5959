//! One origin for a browser, on either host: the runner serves terminal-host's paths
//! itself (its one-origin proxy); in front of real `spin up` the shipped nginx
//! configuration (`deploy/nginx/arcana.conf.template`, Debian's nginx) joins the Spin
//! application and a terminal-host of its own that accepts that origin.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Host, Runner, TerminalHost, repo_root};

/// Where a browser reaches the whole backend.
pub struct Origin {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    nginx: Option<Child>,
    _terminal: Option<TerminalHost>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(mut child) = self.nginx.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether nginx can be run here (`ARCANA_REQUIRE_NGINX=1` makes its absence a failure).
pub fn nginx_available() -> bool {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var_os("ARCANA_REQUIRE_NGINX").is_some() {
        panic!("ARCANA_REQUIRE_NGINX is set but nginx is not installed");
    }
    found
}

impl Origin {
    /// The origin in front of `runner`: the runner's own address (it must run its own
    /// terminal-host), or nginx in front of Spin. `None` (after saying SKIPPED) when the
    /// host is Spin and nginx is missing.
    pub fn start(runner: &Runner) -> Option<Origin> {
        match runner.host {
            Host::Runner => {
                assert!(
                    runner.terminal_url.is_some(),
                    "start the runner with its terminal-host"
                );
                Some(Origin {
                    url: runner.url.clone(),
                    nginx: None,
                    _terminal: None,
                    _dir: None,
                })
            }
            Host::Spin => {
                if !nginx_available() {
                    eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
                    return None;
                }
                Some(Origin::nginx(runner))
            }
        }
    }

    fn nginx(runner: &Runner) -> Origin {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let terminal =
            TerminalHost::start(runner, &["--log-format", "json", "--allowed-origins", &url]);
        let dir = tempfile::tempdir().unwrap();
        let template =
            std::fs::read_to_string(repo_root().join("deploy/nginx/arcana.conf.template")).unwrap();
        let snippet = template
            .replace("${ARCANA_LISTEN}", &format!("127.0.0.1:{port}"))
            .replace(
                "${ARCANA_API_UPSTREAM}",
                runner.url.trim_start_matches("http://"),
            )
            .replace(
                "${ARCANA_TERMINAL_UPSTREAM}",
                terminal.url.trim_start_matches("http://"),
            );
        assert!(
            !snippet.contains("${"),
            "every placeholder filled:\n{snippet}"
        );
        std::fs::write(dir.path().join("arcana.conf"), snippet).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), main_config(dir.path())).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Origin {
            url,
            nginx: Some(child),
            _terminal: Some(terminal),
            _dir: Some(dir),
        }
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The same address for WebSockets.
    pub fn ws(&self, path: &str) -> String {
        format!("{}{}", self.url.replacen("http://", "ws://", 1), path)
    }
}

/// nginx's main file around the shipped snippet: in the foreground, everything in `dir`.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
           access_log {d}/access.log;\n\
           client_body_temp_path {d}/client_body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           include {d}/arcana.conf;\n\
         }}\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
