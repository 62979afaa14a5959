//! Starting a shell in a PTY, reading and writing it without threads, and stopping
//! everything it started.
//!
//! The PTY's master end is non-blocking and registered with tokio (`AsyncFd`), so the
//! session's own task reads and writes it: no thread per session, no channel between
//! the socket and the PTY. The shell is started through terminal-host's own binary in
//! launcher mode ([`crate::launch`]): the launcher makes the PTY its controlling
//! terminal in a new session, applies the resource limits, drops to the shell user
//! and `exec`s the shell (or the sandbox around it), so no `unsafe` pre-exec hook is
//! needed. tokio reaps the child (no waiter thread). The environment is an allowlist,
//! so none of terminal-host's own variables (the JWT secret above all) reach the shell.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::Child;

use crate::launch::{ChildSetup, Sandbox};

/// Variables passed through from terminal-host's environment when set.
const PASSED_THROUGH: &[&str] = &["LANG", "LC_ALL", "TZ"];
/// PATH for shells when terminal-host has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Most output read from the PTY before it is handed on (one WebSocket frame).
pub const READ_CHUNK: usize = 64 * 1024;
/// The most one read of a Linux PTY master returns (its line discipline's buffer less
/// one byte); a read returning less found the buffer empty.
const PTY_READ_MAX: usize = 4095;

/// Who shells run as, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct ShellUser {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

/// Resource limits of every process of a shell (0: unlimited).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ShellLimits {
    pub max_processes: u64,
    pub cpu_secs: u64,
    pub max_file_bytes: u64,
    pub max_memory_bytes: u64,
}

/// What to start.
pub struct ShellSpec<'a> {
    pub shell: &'a Path,
    /// bash rc file with the integration hooks; `None` starts the shell plainly.
    pub rc_file: Option<&'a Path>,
    /// The shell's home and working directory.
    pub home: &'a Path,
    pub cols: u16,
    pub rows: u16,
    pub session_id: &'a str,
    pub osc_nonce: &'a str,
    pub user: &'a ShellUser,
    pub limits: ShellLimits,
    pub sandbox: Option<&'a Sandbox>,
}

/// A running shell and the master end of its PTY.
pub struct SpawnedShell {
    pub pty: Pty,
    pub child: Child,
    /// Process id, which is also the session and process-group id.
    pub pid: u32,
}

/// Starts the shell.
pub fn spawn(spec: &ShellSpec<'_>) -> io::Result<SpawnedShell> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    rustix::termios::tcsetwinsize(&master, winsize(spec.cols, spec.rows))?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave: OwnedFd = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::io::ioctl_fionbio(&master, true)?;

    let mut shell_args: Vec<String> = Vec::new();
    if let Some(rc) = spec.rc_file {
        shell_args.extend(["--rcfile".into(), rc.display().to_string(), "-i".into()]);
    }
    let mut cmd = match spec.sandbox {
        None => tokio::process::Command::new(spec.shell),
        Some(sandbox) => {
            let read_only: Vec<PathBuf> = spec
                .rc_file
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .into_iter()
                .collect();
            let mut c = tokio::process::Command::new(&sandbox.bwrap);
            c.args(crate::launch::bwrap_args(spec.home, &read_only, sandbox))
                .arg("--")
                .arg(spec.shell);
            c
        }
    };
    cmd.args(&shell_args)
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .env_clear();
    ChildSetup::new(spec.user.uid, spec.user.gid, spec.limits, spec.home)?.install(&mut cmd);
    cmd.env("HOME", spec.home);
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    );
    cmd.env("SHELL", spec.shell);
    cmd.env("TERM", "xterm-256color");
    cmd.env("COLORTERM", "truecolor");
    cmd.env("USER", &spec.user.name);
    cmd.env("LOGNAME", &spec.user.name);
    cmd.env("ARCANA_SESSION_ID", spec.session_id);
    cmd.env("ARCANA_OSC_NONCE", spec.osc_nonce);
    for name in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if std::env::var_os("LANG").is_none() {
        cmd.env("LANG", "C.UTF-8");
    }
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the shell has no process id"))?;
    // `with_interest` is deprecated because an arbitrary `AsRawFd` type could hand tokio
    // a descriptor it does not own; an `OwnedFd` owns its descriptor for as long as the
    // `AsyncFd` lives, which is exactly the guarantee the safe call relies on.
    #[allow(deprecated)]
    let fd = AsyncFd::with_interest(master, Interest::READABLE | Interest::WRITABLE)?;
    Ok(SpawnedShell {
        pty: Pty { fd },
        child,
        pid,
    })
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The master end of a shell's PTY, non-blocking under tokio.
pub struct Pty {
    fd: AsyncFd<OwnedFd>,
}

impl Pty {
    /// Reads what the shell wrote; empty at the end, when the shell side is gone.
    ///
    /// A Linux PTY hands over at most 4095 bytes per read, so this reads until the
    /// kernel has nothing more (or [`READ_CHUNK`] bytes came): bulk output leaves as a
    /// few large WebSocket frames instead of one small frame per 4 KiB. A buffer that
    /// came back mostly full is handed on as is (no copy); a small read (an echoed key)
    /// is copied to its exact size, so that kept scrollback stays small. No read buffer
    /// is kept per session while it idles.
    pub async fn read(&self) -> io::Result<Bytes> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
            let mut ended = false;
            let mut failed = None;
            while buf.len() < READ_CHUNK {
                let before = buf.len();
                let asked = (buf.capacity() - before).min(PTY_READ_MAX);
                let result = guard.try_io(|fd| {
                    rustix::io::read(fd.get_ref(), rustix::buffer::spare_capacity(&mut buf))
                        .map_err(io::Error::from)
                });
                match result {
                    Ok(Ok(0)) => {
                        ended = true;
                        break;
                    }
                    Ok(Ok(_)) if buf.len() - before < asked => {
                        // A short read took everything the line discipline held: what
                        // comes later wakes the reactor again, so skip the read that
                        // would only say EAGAIN (one system call less per keystroke).
                        guard.clear_ready();
                        break;
                    }
                    Ok(Ok(_)) => {}
                    // EIO: the last process holding the slave end closed it.
                    Ok(Err(e))
                        if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
                    {
                        ended = true;
                        break;
                    }
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Err(_would_block) => break,
                }
            }
            if !buf.is_empty() {
                // What was read goes out first; an end or error shows on the next call.
                return Ok(if buf.len() >= READ_CHUNK / 2 {
                    Bytes::from(buf)
                } else {
                    Bytes::copy_from_slice(&buf)
                });
            }
            if let Some(e) = failed {
                return Err(e);
            }
            if ended {
                return Ok(Bytes::new());
            }
        }
    }

    /// Writes as much of `data` as the PTY takes now, waiting until it takes something.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes what the PTY takes right now, without waiting (`WouldBlock` when nothing).
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        self.fd.try_io(Interest::WRITABLE, |fd| {
            rustix::io::write(fd, data).map_err(io::Error::from)
        })
    }

    /// Sets the PTY's size (the shell sees SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        rustix::termios::tcsetwinsize(self.fd.get_ref(), winsize(cols, rows))?;
        Ok(())
    }

    /// The raw descriptor (for diagnostics).
    pub fn raw_fd(&self) -> i32 {
        self.fd.get_ref().as_fd().as_raw_fd()
    }
}

/// Sends `signal` to the shell's whole process group. A group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: nix::sys::signal::Signal) {
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;
    if let Err(e) = killpg(Pid::from_raw(pgid as i32), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pgid, ?signal, error = %e, "cannot signal process group");
    }
}

/// [`kill_session`] on a blocking thread: the scan of `/proc` reads every process's
/// stat file, which must not stall the sessions served by this runtime thread.
pub async fn kill_session_off_runtime(sid: u32) {
    let _ = tokio::task::spawn_blocking(move || kill_session(sid)).await;
}

/// Kills every process of the shell's session (`sid` is the shell's pid): jobs in
/// their own process groups and runaway forks included. Repeats until none is left
/// (a fork bomb racing the kill is bounded by the process limit).
pub fn kill_session(sid: u32) {
    for _ in 0..50 {
        let members = session_members(sid);
        if members.is_empty() {
            return;
        }
        for pid in members {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    tracing::warn!(sid, "processes of a closed session survived 50 kill passes");
}

/// Process ids whose session id is `sid`, read from /proc.
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit(')').next()?.to_string();
                    // state ppid pgrp session ...
                    after.split_whitespace().nth(3)?.parse::<u32>().ok()
                })
                .is_some_and(|s| s == sid)
        })
        .collect()
}

/// Where each user's shell home is: `<root>/<user id>`, created for the shell user
/// with mode 0700 (the root itself 0711, so users cannot list each other). Folders
/// created above the root get 0755 whatever the umask (terminal-host runs with 077),
/// so that the shell user can reach its home through them.
pub fn prepare_home(root: &Path, user_id: &str, shell_user: &ShellUser) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let missing: Vec<PathBuf> = root
        .ancestors()
        .skip(1)
        .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(root)?;
    for dir in missing {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let safe: String = user_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let home = root.join(safe);
    if !home.exists() {
        std::fs::create_dir(&home)?;
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
    if nix::unistd::geteuid().is_root() {
        nix::unistd::chown(
            &home,
            Some(nix::unistd::Uid::from_raw(shell_user.uid)),
            Some(nix::unistd::Gid::from_raw(shell_user.gid)),
        )
        .map_err(io::Error::from)?;
    }
    Ok(home)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn folders_made_above_the_home_root_can_be_passed_through() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("var/lib/arcana/shell-homes");
        let before = std::fs::metadata(base.path()).unwrap().permissions().mode() & 0o777;
        // The service's own umask (077) must not leave the shell user outside.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let user = ShellUser {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            name: "me".into(),
        };
        let home = prepare_home(&root, "user-1", &user);
        nix::sys::stat::umask(old);
        let home = home.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&base.path().join("var")), 0o755);
        assert_eq!(mode(&base.path().join("var/lib/arcana")), 0o755);
        assert_eq!(mode(&root), 0o711);
        assert_eq!(mode(&home), 0o700);
        // The folder that existed before keeps its mode.
        assert_eq!(mode(base.path()), before);
    }
}
