//! Native libSQL access shared by the runner and terminal-host.
//!
//! # Layout
//! - [`config`]: where a database lives (embedded file, in memory, or a libSQL server).
//! - [`pool`]: long-lived connections handed out per statement or transaction.
//! - [`remote`]: a libSQL server over Hrana's HTTP pipeline, one request per statement.
//! - [`migrate`]: numbered SQL files applied once each, tracked in a table.
//! - [`runtime_config`]: Spin's `runtime-config.toml`, mapping database labels to storage.
//!
//! Why one crate: both processes must open the same database with the same
//! pragmas and agree on which migrations were applied, or they would drift.

pub mod config;
pub mod migrate;
pub mod pool;
pub mod remote;
pub mod runtime_config;

pub use config::DatabaseConfig;
pub use migrate::{Migration, MigrationError, apply_migrations, load_migrations_dir};
pub use pool::{Pool, PooledConnection, Table};
pub use runtime_config::RuntimeConfig;

/// Why a statement did not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database refused the statement (a constraint, a syntax error, a busy lock):
    /// its own message, which callers classify.
    #[error("{0}")]
    Sql(String),
    /// The database could not be reached, every connection stayed busy, or the stream
    /// of an open transaction was lost (and the transaction with it). Retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<libsql::Error> for Error {
    fn from(e: libsql::Error) -> Error {
        Error::Sql(e.to_string())
    }
}
