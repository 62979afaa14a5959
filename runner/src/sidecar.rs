//! Native sidecars started by `arcana up` next to the components: terminal-host,
//! which serves PTY shells (WebAssembly cannot). It is found next to the `arcana`
//! binary; when it has not been built, `up` says so and serves the components alone.
//!
//! The runner supervises it: an unexpected exit is logged, the process reaped (no
//! zombie), and a new one started on the same address after a backoff that doubles from
//! 200 ms to 10 s (and starts over once a process has stayed up a minute). Whether it is
//! up and how often it was restarted shows in `/api/arcana/status` (`terminal_host`) and
//! `/metrics`. It stops with the runner, and exits by itself if the runner is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Where the terminal-host binary would be: beside the running `arcana` executable.
pub fn terminal_host_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("terminal-host");
    path.exists().then_some(path)
}

/// What the supervisor tells the rest of the runner.
#[derive(Debug, Default)]
pub struct SidecarState {
    up: AtomicBool,
    restarts: AtomicU64,
    pid: AtomicU64,
}

impl SidecarState {
    /// Whether a terminal-host process is running now.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How many times it was started again after exiting unexpectedly.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The running process's id (0 when none).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed) as u32
    }
}

/// A supervised terminal-host; stopped when dropped or by [`Supervised::stop`].
pub struct Supervised {
    /// `http://ADDR` where it serves (the same across restarts).
    pub url: String,
    pub state: Arc<SidecarState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// First wait before a restart; doubled per quick failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long a stopped terminal-host may take to close its sessions before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Supervised {
    /// Starts terminal-host with `args` (which must hold `--listen ADDR`) and `env`,
    /// waits until it listens, and supervises it from then on.
    pub async fn start(
        path: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Supervised> {
        let (child, url) = spawn(path, args, env).await?;
        // Restarts listen where the first one did, even when it was given port 0.
        let mut args = args.to_vec();
        if let Some(i) = args.iter().position(|a| a == "--listen") {
            args[i + 1] = url.trim_start_matches("http://").to_string();
        }
        let state = Arc::new(SidecarState::default());
        state.up.store(true, Ordering::Relaxed);
        state
            .pid
            .store(child.id().unwrap_or(0) as u64, Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(
            child,
            path.to_path_buf(),
            args,
            env.to_vec(),
            state.clone(),
            stopped,
        ));
        Ok(Supervised {
            url,
            state,
            stop,
            task,
        })
    }

    /// Stops terminal-host (SIGTERM, then SIGKILL after the grace time) and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn supervise(
    mut child: Child,
    path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    state: Arc<SidecarState>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                state.up.store(false, Ordering::Relaxed);
                state.pid.store(0, Ordering::Relaxed);
                tracing::warn!(status = ?status.ok(), "terminal-host exited; starting it again in {backoff:?}");
            }
            _ = stopped.changed() => {
                terminate(&mut child).await;
                state.up.store(false, Ordering::Relaxed);
                return;
            }
        }
        if started.elapsed() > HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match spawn(&path, &args, &env).await {
                Ok((next, url)) => {
                    state.restarts.fetch_add(1, Ordering::Relaxed);
                    state
                        .pid
                        .store(next.id().unwrap_or(0) as u64, Ordering::Relaxed);
                    state.up.store(true, Ordering::Relaxed);
                    tracing::info!(%url, restarts = state.restarts(), "terminal-host started again");
                    child = next;
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "terminal-host did not start; retrying in {backoff:?}"
                    );
                }
            }
        }
    }
}

/// SIGTERM (sessions close cleanly), SIGKILL if it is still there after the grace time.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Starts terminal-host, waits for the `Serving http://...` line it prints once
/// listening, and returns it with that URL. The child is killed if its handle is
/// dropped, so it never outlives the runner.
async fn spawn(
    path: &Path,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<(Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(path)
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let wait = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("Serving ") {
                return Ok(url.trim().to_string());
            }
        }
        anyhow::bail!("terminal-host exited before listening (see its log above)")
    };
    let url = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| anyhow::anyhow!("terminal-host did not start within 60 s"))??;
    // Keep draining its stdout so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}
