//! Native sidecars started by `arcana up` next to the components: terminal-host,
//! which serves PTY shells (WebAssembly cannot). It is found next to the `arcana`
//! binary; when it has not been built, `up` says so and serves the components alone.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Where the terminal-host binary would be: beside the running `arcana` executable.
pub fn terminal_host_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("terminal-host");
    path.exists().then_some(path)
}

/// Starts terminal-host with the given arguments and environment, waits for the
/// `Serving http://...` line it prints once listening, and returns it with that URL.
/// The child is killed when the handle is dropped, so it never outlives the runner.
pub async fn spawn(
    path: &PathBuf,
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
    let url = tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .map_err(|_| anyhow::anyhow!("terminal-host did not start within 60 s"))??;
    // Keep draining its stdout so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}
