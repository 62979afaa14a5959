//! Starting a shell in a PTY, and stopping everything it started.
//!
//! portable-pty starts the child with `setsid`, so the shell leads its own session and
//! process group: one `killpg` reaches every job it started (unless a program
//! deliberately leaves the group, as daemons do). The environment is an allowlist,
//! so none of terminal-host's own variables (the JWT secret above all) reach the shell.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// Variables passed through from terminal-host's environment when set.
const PASSED_THROUGH: &[&str] = &["LANG", "LC_ALL", "TZ"];
/// PATH for shells when terminal-host has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to start.
pub struct ShellSpec<'a> {
    pub shell: &'a Path,
    /// bash rc file with the integration hooks; `None` starts the shell plainly.
    pub rc_file: Option<&'a Path>,
    pub workdir: Option<&'a Path>,
    pub cols: u16,
    pub rows: u16,
    pub session_id: &'a str,
    pub osc_nonce: &'a str,
}

/// A running shell and the ends of its PTY.
pub struct SpawnedShell {
    pub master: Box<dyn MasterPty + Send>,
    pub child: Box<dyn Child + Send + Sync>,
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    /// Process id, which is also the process-group id.
    pub pid: u32,
}

/// Starts the shell.
pub fn spawn(spec: &ShellSpec<'_>) -> anyhow::Result<SpawnedShell> {
    let pair = native_pty_system().openpty(PtySize {
        rows: spec.rows,
        cols: spec.cols,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    let mut cmd = CommandBuilder::new(spec.shell);
    if let Some(rc) = spec.rc_file {
        cmd.args([
            std::ffi::OsStr::new("--rcfile"),
            rc.as_os_str(),
            std::ffi::OsStr::new("-i"),
        ]);
    }
    cmd.env_clear();
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    cmd.env("HOME", &home);
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    );
    cmd.env("SHELL", spec.shell);
    cmd.env("TERM", "xterm-256color");
    cmd.env("COLORTERM", "truecolor");
    cmd.env("ARCANA_SESSION_ID", spec.session_id);
    cmd.env("ARCANA_OSC_NONCE", spec.osc_nonce);
    if let Some(user) = std::env::var_os("USER") {
        cmd.env("USER", &user);
        cmd.env("LOGNAME", &user);
    }
    for name in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if std::env::var_os("LANG").is_none() {
        cmd.env("LANG", "C.UTF-8");
    }
    cmd.cwd(
        spec.workdir
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&home)),
    );

    let child = pair.slave.spawn_command(cmd)?;
    // The slave end belongs to the child now; holding it would keep reads from
    // seeing EOF after the shell exits.
    drop(pair.slave);
    let pid = child
        .process_id()
        .ok_or_else(|| anyhow::anyhow!("the shell has no process id"))?;
    let reader = pair.master.try_clone_reader()?;
    let writer = pair.master.take_writer()?;
    Ok(SpawnedShell {
        master: pair.master,
        child,
        reader,
        writer,
        pid,
    })
}

/// Sends `signal` to the shell's whole process group. A group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid as i32), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pgid, ?signal, error = %e, "cannot signal process group");
    }
}

/// Sets the PTY's size (the shell sees SIGWINCH).
pub fn resize(master: &dyn MasterPty, cols: u16, rows: u16) -> anyhow::Result<()> {
    master.resize(PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    })?;
    Ok(())
}
