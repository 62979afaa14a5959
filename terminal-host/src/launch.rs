//! What a shell's process does between fork and `exec`: the steps that turn a copy of
//! terminal-host into the user's shell, in order:
//!
//! 1. a new session, with the PTY (its stdin) as the controlling terminal;
//! 2. the resource limits (processes, CPU seconds, file size, address space);
//! 3. the shell user's groups, group and user (root is left only when asked for);
//! 4. the home directory and the usual umask;
//!
//! then `exec` of the shell, or of bubblewrap around it when the sandbox is on. Running
//! them in the forked child, instead of exec'ing a launcher program first, saves an
//! `exec` of this (large) binary per session: the first prompt comes sooner.
//!
//! Everything the child needs is prepared before the fork ([`ChildSetup`]), so that
//! the child only makes raw system calls (rustix) and allocates nothing, as code
//! between fork and exec in a threaded program must. A failing step fails `spawn`
//! with that step's OS error.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::process::{Gid, Resource, Rlimit, Uid};

use crate::pty::ShellLimits;

/// An optional sandbox for shells.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Whether shells may use the network.
    pub network: bool,
}

/// The child's steps, with every value ready before the fork.
pub struct ChildSetup {
    uid: u32,
    gid: u32,
    limits: [(Resource, u64); 4],
    home: CString,
}

impl ChildSetup {
    /// Prepares the steps for a shell run as `uid`/`gid` in `home`.
    pub fn new(uid: u32, gid: u32, limits: ShellLimits, home: &Path) -> io::Result<ChildSetup> {
        let home = CString::new(home.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "home has a NUL byte"))?;
        Ok(ChildSetup {
            uid,
            gid,
            limits: [
                (Resource::Nproc, limits.max_processes),
                (Resource::Cpu, limits.cpu_secs),
                (Resource::Fsize, limits.max_file_bytes),
                (Resource::As, limits.max_memory_bytes),
            ],
            home,
        })
    }

    /// Installs the steps on `cmd`, to run in its child before `exec`.
    ///
    /// The one `unsafe` of terminal-host: `pre_exec` is unsafe because the closure
    /// runs after fork. The alternative, exec'ing a launcher program that does the
    /// same and then exec's the shell, cost a millisecond on every session start.
    #[allow(unsafe_code)]
    pub fn install(self, cmd: &mut tokio::process::Command) {
        // SAFETY: `apply` runs in the forked child of a threaded process, where only
        // async-signal-safe work is allowed: it makes raw system calls through rustix
        // on values prepared before the fork, and neither allocates, locks nor touches
        // std's lazily initialised globals (stdin is borrowed as fd 0, not opened).
        unsafe {
            cmd.pre_exec(move || self.apply());
        }
    }

    fn apply(&self) -> io::Result<()> {
        rustix::process::setsid()?;
        // fd 0 is the PTY's slave end, set up by `Command` before this runs.
        rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
        for (resource, value) in self.limits {
            if value > 0 {
                let limit = Rlimit {
                    current: Some(value),
                    maximum: Some(value),
                };
                rustix::process::setrlimit(resource, limit)?;
            }
        }
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        if rustix::process::geteuid() != uid {
            // The child has a single thread, so the thread-level calls are process-wide.
            rustix::thread::set_thread_groups(&[gid])?;
            rustix::thread::set_thread_gid(gid)?;
            rustix::thread::set_thread_uid(uid)?;
        }
        if rustix::process::getuid() != uid || rustix::process::getgid() != gid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the shell user was not taken",
            ));
        }
        rustix::process::chdir(self.home.as_c_str())?;
        // terminal-host itself runs with 077; a shell gets the usual 022 (its home is
        // 0700, so nothing of it is readable by others either way).
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        Ok(())
    }
}

/// bubblewrap's arguments: the system read-only, a private `/tmp`, `/proc` and `/dev`,
/// the home read-write and nothing else of the host (so neither Arcana's database,
/// nor its configuration, nor its secrets); new namespaces, the network only if allowed.
pub fn bwrap_args(home: &Path, read_only: &[PathBuf], sandbox: &Sandbox) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["--ro-bind", "/usr", "/usr"]);
    for (link, target) in [
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
    ] {
        if std::fs::read_link(link).is_ok() {
            push(&["--symlink", target, link]);
        } else if Path::new(link).exists() {
            push(&["--ro-bind", link, link]);
        }
    }
    push(&["--ro-bind", "/etc", "/etc"]);
    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    for dir in read_only {
        let d = dir.display().to_string();
        push(&["--ro-bind", &d, &d]);
    }
    let home = home.display().to_string();
    push(&["--bind", &home, &home, "--chdir", &home]);
    push(&["--unshare-all", "--die-with-parent", "--hostname", "arcana"]);
    if sandbox.network {
        push(&["--share-net"]);
    }
    a
}
