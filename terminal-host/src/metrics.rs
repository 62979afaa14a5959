//! terminal-host's live counters, exposed as Prometheus text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters updated on the hot paths with relaxed atomics.
#[derive(Default)]
pub struct Metrics {
    pub sessions_started: AtomicU64,
    pub sessions_ended: AtomicU64,
    pub spawn_failures: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub commands_run: AtomicU64,
    pub ws_connections: AtomicU64,
    pub ws_refused: AtomicU64,
}

impl Metrics {
    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, live_sessions: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "arcana_terminal_sessions_active",
            "gauge",
            "Live terminal sessions.",
            live_sessions as u64,
        );
        metric(
            "arcana_terminal_sessions_started_total",
            "counter",
            "Terminal sessions started.",
            get(&self.sessions_started),
        );
        metric(
            "arcana_terminal_sessions_ended_total",
            "counter",
            "Terminal sessions ended.",
            get(&self.sessions_ended),
        );
        metric(
            "arcana_terminal_pty_spawn_failures_total",
            "counter",
            "Shells that failed to start.",
            get(&self.spawn_failures),
        );
        metric(
            "arcana_terminal_input_bytes_total",
            "counter",
            "Bytes typed into shells.",
            get(&self.bytes_in),
        );
        metric(
            "arcana_terminal_output_bytes_total",
            "counter",
            "Bytes shells wrote.",
            get(&self.bytes_out),
        );
        metric(
            "arcana_terminal_commands_total",
            "counter",
            "Commands recorded in history.",
            get(&self.commands_run),
        );
        metric(
            "arcana_terminal_websocket_connections_total",
            "counter",
            "Accepted shell WebSockets.",
            get(&self.ws_connections),
        );
        metric(
            "arcana_terminal_websocket_refused_total",
            "counter",
            "Refused shell WebSockets.",
            get(&self.ws_refused),
        );
        out
    }
}
