//! The front door's limits, as command-line flags that each binary flattens into its own.

use std::time::Duration;

/// Limits applied to every connection and request before the application sees it.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Seconds a client may take to send a request head (and may stay idle between
    /// requests on a kept-alive connection) before the connection is closed.
    #[arg(long, env = "ARCANA_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks (408 past it).
    #[arg(long, env = "ARCANA_BODY_IDLE_TIMEOUT_SECS", default_value_t = 10)]
    pub body_idle_timeout_secs: u64,
    /// Seconds a whole request body may take (408 past it).
    #[arg(long, env = "ARCANA_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
    /// Largest request body read, in bytes (413 past it; the app may set a smaller limit).
    #[arg(long, env = "ARCANA_MAX_REQUEST_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_request_body_bytes: usize,
    /// Open connections at most; more are answered 503 and closed.
    #[arg(long, env = "ARCANA_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Open connections from one client address at most; more are answered 429 and closed.
    #[arg(long, env = "ARCANA_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 10,
            body_timeout_secs: 60,
            max_request_body_bytes: 16 << 20,
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

impl Limits {
    /// The header timeout as a duration (at least one second).
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// The pause allowed between body chunks.
    pub fn body_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.body_idle_timeout_secs.max(1))
    }

    /// The time allowed for a whole body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    /// The flags that reproduce these limits on another binary's command line.
    pub fn to_args(&self) -> Vec<String> {
        [
            (
                "--header-read-timeout-secs",
                self.header_read_timeout_secs.to_string(),
            ),
            (
                "--body-idle-timeout-secs",
                self.body_idle_timeout_secs.to_string(),
            ),
            ("--body-timeout-secs", self.body_timeout_secs.to_string()),
            (
                "--max-request-body-bytes",
                self.max_request_body_bytes.to_string(),
            ),
            ("--max-connections", self.max_connections.to_string()),
            (
                "--max-connections-per-ip",
                self.max_connections_per_ip.to_string(),
            ),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}
