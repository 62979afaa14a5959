//! Native libSQL access shared by the runner and terminal-host.
//!
//! # Layout
//! - [`config`]: where a database lives (embedded file or remote libSQL server).
//! - [`pool`]: long-lived connections handed out per statement or transaction.
//! - [`migrate`]: numbered SQL files applied once each, tracked in a table.
//! - [`runtime_config`]: Spin's `runtime-config.toml`, mapping database labels to storage.
//!
//! Why one crate: both processes must open the same database with the same
//! pragmas and agree on which migrations were applied, or they would drift.

pub mod config;
pub mod migrate;
pub mod pool;
pub mod runtime_config;

pub use config::DatabaseConfig;
pub use migrate::{Migration, MigrationError, apply_migrations, load_migrations_dir};
pub use pool::{Pool, PoolError, PooledConnection, Table};
pub use runtime_config::RuntimeConfig;
