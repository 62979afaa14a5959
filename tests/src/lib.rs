//! Test harness: starts the real backend — the `arcana` runner, or real `spin up` with
//! terminal-host beside it (see [`host`]) — on an ephemeral port with a temporary
//! database and gives tests its URL. Every test gets its own process and
//! database, so tests run in parallel without seeing each other's data.
//!
//! The binaries and wasm components must be built first; `scripts/test` does that.
//! Compiled components are cached in `target/arcana-test-cache`, so each runner start
//! deserializes instead of compiling.

pub mod backend;
pub mod balancer;
pub mod host;
pub mod origin;
pub mod shell;
pub mod sqld;
pub mod sse;
pub mod stand_in;

pub use host::Host;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The master key every test backend seals provider keys with (id `test1`).
pub const TEST_MASTER_KEY: &str =
    "7e57000000000000000000000000000000000000000000000000000000007e57";

/// The JWT secret every test backend uses, so tests can forge tokens on purpose.
pub const TEST_JWT_SECRET: &str = "arcana-test-secret-0123456789abcdef0123456789";

/// The token Prometheus scrapers present at `/metrics` in every test backend.
pub const TEST_METRICS_TOKEN: &str = "arcana-test-metrics-token-0123456789";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cargo target folder.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A built native binary (`arcana`, `terminal-host`).
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing; run scripts/test (or `cargo build --bins`) first",
        path.display()
    );
    path
}

/// How to start a runner.
pub struct RunnerOptions {
    /// The manifest to serve (default: the repository's spin.toml).
    pub manifest: PathBuf,
    /// Extra environment variables (`SPIN_VARIABLE_...`).
    pub env: Vec<(String, String)>,
    /// Extra arguments to `arcana up`.
    pub args: Vec<String>,
    /// Runtime config text; `None` uses an embedded file in the temp folder.
    pub runtime_config: Option<String>,
    /// Start terminal-host too (on a free port): `arcana up` starts its own; beside
    /// Spin the harness starts one on the same database.
    pub with_terminal_host: bool,
    /// Which host serves the components (default: the test's, see [`Host::current`]).
    pub host: Host,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            manifest: repo_root().join("spin.toml"),
            env: vec![
                ("SPIN_VARIABLE_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
                (
                    "SPIN_VARIABLE_LLM_MASTER_KEYS".into(),
                    format!("test1:{TEST_MASTER_KEY}"),
                ),
                (
                    "SPIN_VARIABLE_METRICS_TOKEN".into(),
                    TEST_METRICS_TOKEN.into(),
                ),
                // Titles are a second provider call per new conversation; the suites
                // that count calls or read the last prompt would see it. The title
                // tests turn it back on.
                ("SPIN_VARIABLE_GENERATE_TITLES".into(), "false".into()),
            ],
            args: Vec::new(),
            runtime_config: None,
            with_terminal_host: false,
            host: Host::current(),
        }
    }
}

impl RunnerOptions {
    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Adds arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
}

/// A running backend (`arcana up`, or `spin up` plus terminal-host); killed when dropped.
pub struct Runner {
    child: Child,
    /// Which host serves the components.
    pub host: Host,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// terminal-host's URL when it was asked for.
    pub terminal_url: Option<String>,
    /// The temporary folder holding the database and logs.
    pub dir: tempfile::TempDir,
    stderr_path: PathBuf,
    /// terminal-host started beside Spin (the runner starts its own).
    sidecar: Option<TerminalHost>,
    /// Where terminal-host keeps the shells' homes (outside `dir`, which only the
    /// service user may enter, as shells run as another user).
    pub shell_homes: ShellHomes,
}

/// A folder for the shells' homes, removed when dropped.
pub struct ShellHomes(PathBuf);

impl ShellHomes {
    fn new() -> ShellHomes {
        ShellHomes(std::env::temp_dir().join(format!("arcana-test-homes-{}", uuid_like())))
    }

    /// The folder (terminal-host creates it).
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ShellHomes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Runner {
    /// Starts the repository's application with default options.
    pub fn start() -> Runner {
        Runner::start_with(RunnerOptions::default())
    }

    /// Starts with options; panics with the host's log if it does not come up.
    pub fn start_with(opts: RunnerOptions) -> Runner {
        let host = opts.host;
        match Runner::try_start(opts) {
            Ok(r) => r,
            Err(log) => panic!("{} did not start:\n{log}", host.name()),
        }
    }

    /// Starts, or returns the host's output when it exits or never listens.
    pub fn try_start(opts: RunnerOptions) -> Result<Runner, String> {
        let dir = tempfile::tempdir().unwrap();
        let rc_path = dir.path().join("runtime-config.toml");
        let rc = opts.runtime_config.clone().unwrap_or_else(|| {
            // The state folder is the repository's, for every manifest: the local LLM
            // engine finds the installed model there (`arcana models`).
            format!(
                "state_dir = \"{}\"\n[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
                repo_root().join(".spin").display(),
                dir.path().join("arcana.db").display()
            )
        });
        std::fs::write(&rc_path, rc).unwrap();
        let stderr_path = dir.path().join("runner.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let shell_homes = ShellHomes::new();
        let mut command = match opts.host {
            Host::Runner => runner_command(&opts, &rc_path),
            Host::Spin => spin_command(&opts, &rc_path, dir.path())?,
        };
        let mut child = command
            .env("RUST_LOG", "info")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            // Shells of a terminal-host it starts get their own homes, as in TerminalHost.
            .env("HOME", dir.path())
            .env("ARCANA_SHELL_HOME_ROOT", shell_homes.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Its own process group, so that dropping the runner stops everything it
            // started: `spin up` runs the app in a child `spin trigger http` that
            // outlives a killed parent (hundreds leaked over a suite before this).
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", opts.host.name()));
        let stdout = child.stdout.take().unwrap();
        let stdout_path = dir.path().join("stdout.log");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut copy = std::fs::File::create(stdout_path).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = copy.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if let Some(url) = line.strip_prefix("Serving ") {
                    let _ = tx.send((false, url.trim().to_string()));
                }
                if let Some(url) = line.strip_prefix("Terminal ") {
                    let _ = tx.send((true, url.trim().to_string()));
                }
            }
        });
        let own_terminal = opts.with_terminal_host && opts.host == Host::Runner;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut url = None;
        let mut terminal_url = None;
        let mut runner = loop {
            if let Ok((is_terminal, u)) = rx.recv_timeout(Duration::from_millis(20)) {
                if is_terminal {
                    terminal_url = Some(u);
                } else {
                    url = Some(u);
                }
            }
            if let Some(u) = &url
                && (!own_terminal || terminal_url.is_some())
            {
                break Runner {
                    child,
                    host: opts.host,
                    url: u.clone(),
                    terminal_url,
                    dir,
                    stderr_path,
                    sidecar: None,
                    shell_homes,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                let out =
                    std::fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default();
                return Err(format!("exited with {status}:\n{out}{log}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(format!("did not listen within 120 s:\n{log}"));
            }
        };
        if opts.with_terminal_host && opts.host == Host::Spin {
            // On Spin platforms terminal-host runs beside the app on the same database.
            let sidecar = TerminalHost::start(&runner, &["--log-format", "json"]);
            runner.terminal_url = Some(sidecar.url.clone());
            runner.sidecar = Some(sidecar);
        }
        Ok(runner)
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Everything the host logged so far; under Spin, the components' logs too.
    pub fn log(&self) -> String {
        let mut log =
            std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        log.push_str(&std::fs::read_to_string(&self.stderr_path).unwrap_or_default());
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("spin-logs")) {
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                log.push_str(&std::fs::read_to_string(f).unwrap_or_default());
            }
        }
        if let Some(sidecar) = &self.sidecar {
            log.push_str(&sidecar.log());
        }
        log
    }

    /// Stops the process and hands over its folder (database included), so a test can
    /// inspect or reuse the data with another runner.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.sidecar = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// Path of the embedded database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("arcana.db")
    }

    /// The process id of the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `arcana up` on an ephemeral port.
fn runner_command(opts: &RunnerOptions, rc_path: &Path) -> Command {
    let terminal_args: &[&str] = if opts.with_terminal_host {
        &["--terminal-listen", "127.0.0.1:0"]
    } else {
        &["--no-terminal-host"]
    };
    let mut command = Command::new(binary("arcana"));
    command
        .arg("up")
        .arg("--from")
        .arg(&opts.manifest)
        .args(["--listen", "127.0.0.1:0"])
        .args(terminal_args)
        .arg("--runtime-config-file")
        .arg(rc_path)
        .arg("--cache-dir")
        .arg(target_dir().join("arcana-test-cache"))
        .args(&opts.args);
    command
}

/// Real `spin up`, as a user runs it: every migration applied with `--sqlite @file`
/// (Spin runs them at each start; they are idempotent), component logs in a folder,
/// compiled code cached across tests.
fn spin_command(opts: &RunnerOptions, rc_path: &Path, dir: &Path) -> Result<Command, String> {
    if !opts.args.is_empty() {
        return Err(format!(
            "arguments {:?} are the runner's; this test cannot run on Spin",
            opts.args
        ));
    }
    let spin = host::spin_binary().ok_or("no Spin binary")?;
    // Spin has no "port 0": take a free port and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut command = Command::new(spin);
    command
        .arg("up")
        .arg("--from")
        .arg(&opts.manifest)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--runtime-config-file")
        .arg(rc_path)
        .arg("--log-dir")
        .arg(dir.join("spin-logs"));
    let migrations = opts
        .manifest
        .parent()
        .map(|d| d.join("migrations"))
        .filter(|d| d.is_dir());
    if let Some(folder) = migrations {
        // As README "On real Spin": an embedded file gets WAL first (it stays set in the
        // file), then the migration files in order.
        let remote = opts
            .runtime_config
            .as_deref()
            .is_some_and(|rc| rc.contains("\"libsql\""));
        if !remote {
            command.arg("--sqlite").arg("PRAGMA journal_mode=WAL");
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            command.arg("--sqlite").arg(format!("@{}", f.display()));
        }
    }
    // Spin's wasmtime cache lives under the cache home; share it so each test does
    // not compile the components again.
    command.env("XDG_CACHE_HOME", target_dir().join("spin-test-cache"));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if !opts
        .env
        .iter()
        .any(|(k, _)| k == "SPIN_VARIABLE_STARTED_AT")
    {
        command.env("SPIN_VARIABLE_STARTED_AT", started.to_string());
    }
    Ok(command)
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.sidecar = None;
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIGKILL to the process group `leader` leads (see [`Runner::try_start`]).
fn kill_group(leader: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(leader as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// An HTTP client that never uses a proxy and bounds every request in time.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A small local HTTP server answering `body` with 200 to every request, for
/// outbound-HTTP tests. Returns its address; it stops when the runtime does.
pub async fn static_server(body: &'static str) -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// `ws://HOST/ws/shell/{id}{query}` for a server at `http://HOST` (terminal-host, or a
/// balancer in front of several).
pub fn shell_ws_url(base: &str, session_id: &str, query: &str) -> String {
    format!(
        "{}/ws/shell/{session_id}{query}",
        base.replacen("http://", "ws://", 1)
    )
}

/// A running `terminal-host`, sharing a runner's database; killed when dropped.
pub struct TerminalHost {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log_path: PathBuf,
}

impl TerminalHost {
    /// Starts terminal-host on the runner's database with extra arguments.
    pub fn start(runner: &Runner, args: &[&str]) -> TerminalHost {
        TerminalHost::try_start(runner, args)
            .unwrap_or_else(|log| panic!("terminal-host did not start:\n{log}"))
    }

    /// Starts, or returns its log when it exits before listening.
    pub fn try_start(runner: &Runner, args: &[&str]) -> Result<TerminalHost, String> {
        TerminalHost::try_start_binary(runner, &binary("terminal-host"), args)
    }

    /// Starts a given terminal-host build (the benchmarks run the optimized one).
    pub fn try_start_binary(
        runner: &Runner,
        program: &std::path::Path,
        args: &[&str],
    ) -> Result<TerminalHost, String> {
        let log_path = runner
            .dir
            .path()
            .join(format!("terminal-host-{}.log", uuid_like()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(program)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--runtime-config-file")
            .arg(runner.dir.path().join("runtime-config.toml"))
            .args(args)
            .env("SPIN_VARIABLE_JWT_SECRET", TEST_JWT_SECRET)
            .env("SPIN_VARIABLE_METRICS_TOKEN", TEST_METRICS_TOKEN)
            .env("RUST_LOG", "info")
            .env("HOME", runner.dir.path())
            // Shells get fresh homes of their own: the machine's ~/.bashrc stays out.
            .env("ARCANA_SHELL_HOME_ROOT", runner.shell_homes.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn terminal-host");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("Serving ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(TerminalHost {
            child,
            url,
            log_path,
        })
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// `ws://.../ws/shell/{id}` plus a query string.
    pub fn ws_url(&self, session_id: &str, query: &str) -> String {
        shell_ws_url(&self.url, session_id, query)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (a crash) and waits for it.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks for a clean shutdown (SIGTERM) and waits up to 20 s.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "terminal-host did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for TerminalHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128 ^ rand_u64() as u128
    )
}

pub(crate) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    h.finish()
}

/// The processes whose parent is `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let after = stat.rsplit(')').next().unwrap_or("");
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if ppid == pid {
                out.push(p);
            }
        }
    }
    out
}

/// The children of `pid` running the program `comm` (e.g. `terminal-host`).
pub fn children_named(pid: u32, comm: &str) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// Logs in and returns the access token; panics when the login fails.
pub async fn login(runner: &Runner, username: &str, password: &str) -> String {
    let body: serde_json::Value = client()
        .post(runner.at("/api/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .expect("login returned a token")
        .to_string()
}

/// `GET url` (with a bearer token when given) as JSON; panics when it is not JSON.
pub async fn get_json(url: &str, token: Option<&str>) -> serde_json::Value {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// The id of the user a token belongs to (`GET /api/auth/me`).
pub async fn user_id(runner: &Runner, token: &str) -> String {
    let me = get_json(&runner.at("/api/auth/me"), Some(token)).await;
    me["id"].as_str().expect("me has an id").to_string()
}

/// Registers the first user (who becomes admin) and returns their token.
pub async fn register_admin(runner: &Runner, username: &str, password: &str) -> String {
    let resp = client()
        .post(runner.at("/api/auth/register"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "registering the first user");
    login(runner, username, password).await
}

/// Sends an authenticated request with an optional JSON body; returns status and JSON
/// (`null` when the body is not JSON).
pub async fn call(
    runner: &Runner,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut req = client()
        .request(method.parse().unwrap(), runner.at(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}
