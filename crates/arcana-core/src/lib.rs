//! Arcana's domain logic, shared by every Spin component and testable natively.
//!
//! Nothing here performs I/O itself: the database is reached through the [`db::Db`]
//! trait and configuration through [`settings::Vars`], which each host implements
//! (Spin's SQLite and variables in components; libSQL in native tests). So the same
//! handlers run unchanged in a wasm component and in a `cargo test`.
//!
//! # Layout
//! - [`http`]: a runtime-neutral request/response and the route table type.
//! - [`error`]: the one error type of the API, rendered as RFC 9457 problem+json.
//! - [`db`]: the `Db` trait, SQL values and row decoding.
//! - [`settings`]: configuration read from Spin variables.
//! - [`auth`]: passwords, tokens, permissions and the login throttle.
//! - [`users`]: the users table.
//! - [`crypto`]: sealing provider API keys at rest.
//! - [`chat`]: conversations, messages and full-text search.
//! - [`memory`]: per-user context memory.
//! - [`vectors`]: embeddings of memories and messages, and ranking by similarity.
//! - [`llm`]: providers, models, preferences, allowlists and routing.
//! - [`gateway`]: the OpenAI-compatible `/v1` wire format over Arcana's routing.
//! - [`stats`]: activity figures for the status endpoint and Prometheus.
//! - [`terminal`]: the shapes of terminal-host's REST API.
//! - [`api`]: the endpoints, one module per component, and the OpenAPI document.
//! - [`migrations`]: the numbered SQL files, embedded for native hosts.
//! - [`web_assets`]: the web console's and API reference's static files, as served.

pub mod api;
pub mod auth;
pub mod chat;
pub mod crypto;
pub mod db;
pub mod error;
pub mod gateway;
pub mod http;
pub mod imports;
pub mod llm;
pub mod memory;
pub mod migrations;
pub mod pagination;
pub mod settings;
pub mod stats;
pub mod streams;
pub mod terminal;
pub mod time;
pub mod users;
pub mod validate;
pub mod vectors;
pub mod web_assets;

/// The version reported by health and status endpoints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
