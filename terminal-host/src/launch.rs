//! Launcher mode: terminal-host's own binary, started with [`MODE`] as its first
//! argument and a [`LaunchPlan`], becomes a shell. It runs in the child, between fork
//! and the shell's `exec`, where the parent's pre-exec hooks would need `unsafe`:
//!
//! 1. a new session, with the PTY (its stdin) as the controlling terminal;
//! 2. the resource limits (processes, CPU seconds, file size, address space);
//! 3. the shell user's groups, group and user (root is left only when the plan says so);
//! 4. the home directory;
//! 5. `exec` of the shell, or of bubblewrap around it when the sandbox is on.
//!
//! Any failure is written to the terminal (the user sees why) and ends the process.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use rustix::process::{Resource, Rlimit};
use serde::{Deserialize, Serialize};

use crate::pty::ShellLimits;

/// The first argument that selects launcher mode.
pub const MODE: &str = "__arcana-exec-shell";

/// An optional sandbox for shells.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Whether shells may use the network.
    pub network: bool,
}

/// Everything the launcher needs, passed as JSON in the argument after [`MODE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub limits: ShellLimits,
    pub sandbox: Option<Sandbox>,
    /// Folders the sandboxed shell may read (the integration rc file's).
    pub read_only: Vec<PathBuf>,
    pub shell: PathBuf,
    pub args: Vec<String>,
}

/// Runs launcher mode with the arguments after [`MODE`]; returns only on failure.
pub fn run(args: &[String]) -> std::process::ExitCode {
    let result = args
        .first()
        .ok_or_else(|| "no launch plan".to_string())
        .and_then(|json| serde_json::from_str::<LaunchPlan>(json).map_err(|e| e.to_string()))
        .and_then(|plan| launch(&plan));
    match result {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("arcana: cannot start the shell: {e}\r");
            std::process::ExitCode::from(127)
        }
    }
}

fn launch(plan: &LaunchPlan) -> Result<std::convert::Infallible, String> {
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    rustix::process::ioctl_tiocsctty(std::io::stdin())
        .map_err(|e| format!("cannot take the terminal: {e}"))?;
    let limits = &plan.limits;
    for (resource, value, name) in [
        (Resource::Nproc, limits.max_processes, "processes"),
        (Resource::Cpu, limits.cpu_secs, "CPU seconds"),
        (Resource::Fsize, limits.max_file_bytes, "file size"),
        (Resource::As, limits.max_memory_bytes, "address space"),
    ] {
        if value > 0 {
            let limit = Rlimit {
                current: Some(value),
                maximum: Some(value),
            };
            rustix::process::setrlimit(resource, limit)
                .map_err(|e| format!("limit on {name}: {e}"))?;
        }
    }
    let uid = nix::unistd::Uid::from_raw(plan.uid);
    let gid = nix::unistd::Gid::from_raw(plan.gid);
    if nix::unistd::geteuid() != uid {
        nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setgid(gid).map_err(|e| format!("setgid: {e}"))?;
        nix::unistd::setuid(uid).map_err(|e| format!("setuid: {e}"))?;
    }
    if nix::unistd::getuid() != uid || nix::unistd::getgid() != gid {
        return Err("the shell user was not taken".into());
    }
    std::env::set_current_dir(&plan.home)
        .map_err(|e| format!("home {}: {e}", plan.home.display()))?;
    let error = match &plan.sandbox {
        None => std::process::Command::new(&plan.shell)
            .args(&plan.args)
            .exec(),
        Some(sandbox) => std::process::Command::new(&sandbox.bwrap)
            .args(bwrap_args(plan, sandbox))
            .arg("--")
            .arg(&plan.shell)
            .args(&plan.args)
            .exec(),
    };
    Err(format!("exec: {error}"))
}

/// bubblewrap's arguments: the system read-only, a private `/tmp`, `/proc` and `/dev`,
/// the home read-write and nothing else of the host (so neither Arcana's database,
/// nor its configuration, nor its secrets); new namespaces, the network only if allowed.
pub fn bwrap_args(plan: &LaunchPlan, sandbox: &Sandbox) -> Vec<String> {
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
        } else if std::path::Path::new(link).exists() {
            push(&["--ro-bind", link, link]);
        }
    }
    push(&["--ro-bind", "/etc", "/etc"]);
    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    for dir in &plan.read_only {
        let d = dir.display().to_string();
        push(&["--ro-bind", &d, &d]);
    }
    let home = plan.home.display().to_string();
    push(&["--bind", &home, &home, "--chdir", &home]);
    push(&["--unshare-all", "--die-with-parent", "--hostname", "arcana"]);
    if sandbox.network {
        push(&["--share-net"]);
    }
    a
}
