//! Which host serves the components in a black-box test: the repository's runner
//! (`arcana up`) or real Spin (`spin up`), so that every behaviour of the application
//! is checked where users meet it.
//!
//! `ARCANA_TEST_HOST=runner|spin|both` (default `both`) chooses. A suite written with
//! [`both_hosts!`](crate::both_hosts) gets one test per host; the Spin one prints a
//! `SKIPPED` line and passes when no Spin binary is installed, unless
//! `ARCANA_REQUIRE_SPIN=1` (set by CI), where a missing Spin fails the test.

use std::cell::Cell;
use std::path::PathBuf;

/// A host for the Spin application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `arcana up`, the repository's wasmtime runner.
    Runner,
    /// Real `spin up`.
    Spin,
}

thread_local! {
    static CURRENT: Cell<Host> = const { Cell::new(Host::Runner) };
}

impl Host {
    /// The host of the test running on this thread (set by [`Host::enter`]); the runner
    /// for tests that did not choose.
    pub fn current() -> Host {
        CURRENT.with(Cell::get)
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Host::Runner => "runner",
            Host::Spin => "spin",
        }
    }

    /// Makes this the current host if it is selected and available; otherwise prints
    /// why the test is skipped and returns `false`.
    pub fn enter(self, test: &str) -> bool {
        let selected = std::env::var("ARCANA_TEST_HOST").unwrap_or_else(|_| "both".into());
        if selected != "both" && selected != self.name() {
            eprintln!(
                "SKIPPED: {test} on {} (ARCANA_TEST_HOST={selected})",
                self.name()
            );
            return false;
        }
        if self == Host::Spin && spin_binary().is_none() {
            if std::env::var("ARCANA_REQUIRE_SPIN").as_deref() == Ok("1") {
                panic!(
                    "{test}: no Spin binary (target/tools/spin, ARCANA_SPIN or `spin` on PATH) but ARCANA_REQUIRE_SPIN=1"
                );
            }
            eprintln!("SKIPPED: {test} on spin (no Spin binary installed; see README, Tests)");
            return false;
        }
        CURRENT.with(|c| c.set(self));
        true
    }
}

impl Host {
    /// Where the two hosts legitimately differ, in one place. The runner merges its own
    /// request metrics (`arcana_http_*`, `arcana_terminal_host_up`) and terminal-host's
    /// families into the app's `/metrics`, and writes one `arcana::access` log line per
    /// request. Under Spin, request metrics come from Spin's OpenTelemetry export and
    /// terminal-host is scraped on its own (README, Telemetry); the components' own
    /// figures and log lines are the same on both.
    pub fn merges_runner_telemetry(self) -> bool {
        self == Host::Runner
    }
}

/// The Spin CLI to test with: `$ARCANA_SPIN`, else `target/tools/spin` (where
/// `../shared/tools/install.sh` puts it), else `spin` on `PATH`.
pub fn spin_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ARCANA_SPIN") {
        return Some(PathBuf::from(p));
    }
    let local = crate::target_dir().join("tools").join("spin");
    if local.exists() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("spin"))
        .find(|p| p.is_file())
}

/// Declares an async test that runs once on each host, as `<name>::runner` and
/// `<name>::spin`. The body sees the host through [`Host::current`], which
/// [`RunnerOptions::default`](crate::RunnerOptions) follows, so helpers that start a
/// backend need no change.
#[macro_export]
macro_rules! both_hosts {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn runner() {
                if $crate::Host::Runner.enter(module_path!()) {
                    body().await
                }
            }

            #[tokio::test]
            async fn spin() {
                if $crate::Host::Spin.enter(module_path!()) {
                    body().await
                }
            }

            async fn body() $body
        }
    };
}
