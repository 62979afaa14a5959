//! terminal-host's configuration, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// PTY shells over WebSocket for the Arcana dashboard.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks one (printed as `Serving http://...`).
    #[arg(long, env = "ARCANA_TERMINAL_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,

    /// Spin runtime config mapping the `default` database (the same file as for `spin up`).
    #[arg(long, env = "ARCANA_RUNTIME_CONFIG")]
    pub runtime_config_file: Option<PathBuf>,
    /// Folder of the Spin app; without a runtime config the database is `.spin/sqlite_db.db` in it.
    #[arg(long, env = "ARCANA_APP_DIR", default_value = ".")]
    pub app_dir: PathBuf,

    /// HMAC key of the access tokens: the same value as the components' `jwt_secret`.
    #[arg(long, env = "SPIN_VARIABLE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,

    /// Bearer token accepted at `/metrics` (the application's `metrics_token`); admins
    /// may scrape with their access token instead.
    #[arg(long, env = "SPIN_VARIABLE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Browser origins allowed to open shells (exact match, comma-separated). Requests
    /// without an Origin header (scripts, CLIs) are allowed; any other Origin is refused.
    #[arg(
        long,
        env = "ARCANA_TERMINAL_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:5173,http://127.0.0.1:5173"
    )]
    pub allowed_origins: Vec<String>,

    /// The shell to run. With bash, command history comes from shell integration.
    #[arg(long, env = "ARCANA_TERMINAL_SHELL", default_value = "/bin/bash")]
    pub shell: PathBuf,

    /// The user shells run as (a name or a numeric uid). Default: `nobody` when
    /// terminal-host runs as root, else terminal-host's own user.
    #[arg(long, env = "ARCANA_SHELL_USER")]
    pub shell_user: Option<String>,
    /// The group shells run as (a name or a gid). Default: the shell user's group.
    #[arg(long, env = "ARCANA_SHELL_GROUP")]
    pub shell_group: Option<String>,
    /// Let shells run as root. Without it, terminal-host refuses to start root shells:
    /// anyone with the `terminal` permission would own the machine.
    #[arg(long, env = "ARCANA_ALLOW_ROOT_SHELLS")]
    pub allow_root_shells: bool,
    /// Folder holding each Arcana user's shell home (`<folder>/<user id>`, mode 0700,
    /// owned by the shell user). Default: `/var/lib/arcana/shell-homes` as root, else
    /// shells use terminal-host's own `$HOME`.
    #[arg(long, env = "ARCANA_SHELL_HOME_ROOT")]
    pub shell_home_root: Option<PathBuf>,
    /// Processes the shell user may have at once (RLIMIT_NPROC; 0: unlimited). The
    /// limit counts every process of that user, so a fork bomb stops there.
    #[arg(long, env = "ARCANA_SHELL_MAX_PROCESSES", default_value_t = 512)]
    pub shell_max_processes: u64,
    /// CPU seconds per process (RLIMIT_CPU; 0: unlimited).
    #[arg(long, env = "ARCANA_SHELL_CPU_SECS", default_value_t = 3600)]
    pub shell_cpu_secs: u64,
    /// Largest file a shell may write, in bytes (RLIMIT_FSIZE; 0: unlimited).
    #[arg(long, env = "ARCANA_SHELL_MAX_FILE_BYTES", default_value_t = 4 << 30)]
    pub shell_max_file_bytes: u64,
    /// Address space per process, in bytes (RLIMIT_AS; 0: unlimited).
    #[arg(long, env = "ARCANA_SHELL_MAX_MEMORY_BYTES", default_value_t = 8 << 30)]
    pub shell_max_memory_bytes: u64,
    /// Confine each shell with bubblewrap to its home (system folders read-only, no
    /// access to the rest of the host): `off`, `bwrap` (required: fail if missing) or
    /// `auto` (when `bwrap` is installed).
    #[arg(long, env = "ARCANA_SHELL_SANDBOX", default_value = "off")]
    pub shell_sandbox: String,
    /// Whether sandboxed shells may use the network.
    #[arg(long, env = "ARCANA_SHELL_SANDBOX_NETWORK", default_value_t = true, action = clap::ArgAction::Set)]
    pub shell_sandbox_network: bool,

    /// Live sessions one user may have.
    #[arg(long, default_value_t = 5)]
    pub max_sessions_per_user: usize,
    /// Close a session after this many seconds without input or output.
    #[arg(long, default_value_t = 1800)]
    pub idle_timeout_secs: u64,
    /// Close a session this many seconds after it started, whatever it is doing.
    #[arg(long, default_value_t = 43200)]
    pub max_lifetime_secs: u64,
    /// Keep a session's shell this many seconds after its WebSocket dropped, for reattaching.
    #[arg(long, default_value_t = 300)]
    pub detach_grace_secs: u64,
    /// Seconds between SIGHUP and SIGKILL when a session is closed.
    #[arg(long, default_value_t = 2)]
    pub kill_grace_secs: u64,
    /// Largest WebSocket message accepted, in bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_message_bytes: usize,
    /// Output kept per session for replay on reattach, in bytes.
    #[arg(long, default_value_t = 262144)]
    pub scrollback_bytes: usize,
    /// Output stored per history entry, in bytes (the rest is marked truncated).
    #[arg(long, default_value_t = 16384)]
    pub history_output_bytes: usize,
    /// Record sessions as asciicast v2 (`--record false` to turn off).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub record: bool,
    /// Largest recording per session, in bytes; recording stops there.
    #[arg(long, default_value_t = 10 << 20)]
    pub recording_max_bytes: usize,

    /// Exit when this process is no longer our parent (set by `arcana up`, so the sidecar
    /// never outlives a runner that was killed without a chance to stop it).
    #[arg(long, env = "ARCANA_PARENT_PID")]
    pub parent_pid: Option<u32>,

    /// `text` or `json` logs.
    #[arg(long, env = "ARCANA_LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// This host's name among several terminal-hosts on one database (default:
    /// `hostname:port`, stable across restarts of the same host).
    #[arg(long, env = "ARCANA_TERMINAL_HOST_ID")]
    pub host_id: Option<String>,

    /// Where clients and proxies reach this host, named in the answer to a request for
    /// one of its sessions that reached another host (default: `http://` + the listen
    /// address).
    #[arg(long, env = "ARCANA_TERMINAL_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Seconds between heartbeats; a host silent for three is presumed dead and the
    /// others close its sessions (`end_reason` `host_lost`).
    #[arg(long, env = "ARCANA_TERMINAL_HEARTBEAT_SECS", default_value_t = 5)]
    pub heartbeat_secs: u64,

    #[command(flatten)]
    pub front_door: arcana_serve::Limits,
}

impl Config {
    /// The heartbeat interval (at least a second).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    /// Idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
    /// Lifetime limit as a duration.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime_secs.max(1))
    }
    /// Detach grace as a duration.
    pub fn detach_grace(&self) -> Duration {
        Duration::from_secs(self.detach_grace_secs)
    }
    /// SIGHUP-to-SIGKILL grace as a duration.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs(self.kill_grace_secs)
    }
}
