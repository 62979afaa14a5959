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

/// Starts terminal-host with the given arguments and environment; it dies with the runner.
pub fn spawn(path: &PathBuf, args: &[String], env: &[(String, String)]) -> std::io::Result<Child> {
    Command::new(path)
        .args(args)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}
