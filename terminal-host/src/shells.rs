//! Who shells run as, where their homes are, within which limits, and whether they are
//! sandboxed: decided once at start-up from the flags, refusing what would be unsafe.
//!
//! As root, terminal-host runs shells as `nobody` (or `--shell-user`) with a home per
//! Arcana user under `--shell-home-root`; a root shell needs `--allow-root-shells` and
//! is announced with a warning. As another user it can only run shells as itself.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::launch::Sandbox;
use crate::pty::{ShellLimits, ShellUser};

/// Default folder of per-user shell homes when running as root.
pub const DEFAULT_HOME_ROOT: &str = "/var/lib/arcana/shell-homes";

/// The resolved policy.
#[derive(Debug, Clone)]
pub struct ShellPolicy {
    pub user: ShellUser,
    /// `Some`: a home per Arcana user below it; `None`: terminal-host's own `$HOME`.
    pub home_root: Option<PathBuf>,
    pub limits: ShellLimits,
    pub sandbox: Option<Sandbox>,
}

impl ShellPolicy {
    /// Resolves the flags; an unsafe or impossible combination is an error.
    pub fn from_config(config: &Config) -> anyhow::Result<ShellPolicy> {
        let me = nix::unistd::geteuid();
        let root = me.is_root();
        let wanted = config
            .shell_user
            .clone()
            .or_else(|| root.then(|| "nobody".to_string()));
        let user = match wanted {
            Some(name) => lookup_user(&name)?,
            None => current_user()?,
        };
        let user = match &config.shell_group {
            Some(group) => ShellUser {
                gid: lookup_group(group)?,
                ..user
            },
            None => user,
        };
        if !root && user.uid != me.as_raw() {
            bail!(
                "terminal-host runs as uid {me} and cannot start shells as {} (uid {}); run it as root or drop --shell-user",
                user.name,
                user.uid
            );
        }
        if user.uid == 0 {
            if !config.allow_root_shells {
                bail!(
                    "refusing to start shells as root: anyone with the `terminal` permission would own this machine. Pass --shell-user NAME, or --allow-root-shells if you mean it"
                );
            }
            tracing::warn!(
                "SHELLS RUN AS ROOT (--allow-root-shells): every user with the `terminal` permission has full control of this machine"
            );
        }
        let home_root = config
            .shell_home_root
            .clone()
            .or_else(|| root.then(|| PathBuf::from(DEFAULT_HOME_ROOT)));
        let sandbox = match config.shell_sandbox.as_str() {
            "off" => None,
            "bwrap" | "auto" => match find_in_path("bwrap") {
                Some(bwrap) => Some(Sandbox {
                    bwrap,
                    network: config.shell_sandbox_network,
                }),
                None if config.shell_sandbox == "auto" => {
                    tracing::warn!(
                        "--shell-sandbox auto: bwrap is not installed; shells are not sandboxed"
                    );
                    None
                }
                None => bail!("--shell-sandbox bwrap: bubblewrap (bwrap) is not installed"),
            },
            other => bail!("--shell-sandbox must be off, bwrap or auto, not {other:?}"),
        };
        if sandbox.is_some() && home_root.is_none() {
            bail!("a sandboxed shell needs its own home: set --shell-home-root");
        }
        Ok(ShellPolicy {
            user,
            home_root,
            limits: ShellLimits {
                max_processes: config.shell_max_processes,
                cpu_secs: config.shell_cpu_secs,
                max_file_bytes: config.shell_max_file_bytes,
                max_memory_bytes: config.shell_max_memory_bytes,
            },
            sandbox,
        })
    }
}

fn lookup_user(name: &str) -> anyhow::Result<ShellUser> {
    let user = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))?,
        Err(_) => nix::unistd::User::from_name(name)?,
    };
    match (user, name.parse::<u32>()) {
        (Some(u), _) => Ok(ShellUser {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            name: u.name,
        }),
        // A bare uid without a passwd entry (containers): its own group id.
        (None, Ok(uid)) => Ok(ShellUser {
            uid,
            gid: uid,
            name: uid.to_string(),
        }),
        (None, Err(_)) => bail!("no such user {name:?} (--shell-user)"),
    }
}

fn lookup_group(name: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    nix::unistd::Group::from_name(name)?
        .map(|g| g.gid.as_raw())
        .with_context(|| format!("no such group {name:?} (--shell-group)"))
}

fn current_user() -> anyhow::Result<ShellUser> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let name = nix::unistd::User::from_uid(uid)?
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string());
    Ok(ShellUser {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        name,
    })
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
