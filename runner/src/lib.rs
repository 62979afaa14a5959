//! A local host for Spin applications, built on wasmtime.
//!
//! It reads `spin.toml` and serves its HTTP components the way Spin does, so the
//! Arcana backend can be developed and tested where the Spin CLI cannot be installed.
//! It implements only what real Spin provides; a component that works here and not
//! on Spin is a bug in the runner.
//!
//! # Layout
//! - [`ids`]: Spin's identifier rules (component ids, variable names, labels).
//! - [`manifest`]: `spin.toml` v2.
//! - [`routes`]: Spin's route syntax and precedence.
//! - [`variables`]: application variables and component templates.
//! - [`outbound`]: the `allowed_outbound_hosts` policy.
//! - [`embeddings`]: Spin's LLM interface: local `all-minilm-l6-v2` embeddings.
//! - [`ai_models`]: installing the model files where Spin reads them.
//! - [`host`]: per-request store state and the Spin host interfaces.
//! - [`app`]: loading and checking an application.
//! - [`server`]: the HTTP front door.
//! - [`metrics`]: request metrics and the `/metrics` merge.
//! - [`build_cmd`]: `arcana build`.
//! - [`dotenv`]: `.env` values and generated development secrets.
//! - [`sidecar`]: starting terminal-host beside the components.
//! - [`terminal_proxy`]: terminal-host's paths on the API's address (one origin).

pub mod ai_models;
pub mod app;
pub mod build_cmd;
pub mod dotenv;
pub mod embeddings;
pub mod host;
pub mod ids;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod outbound_client;
pub mod routes;
pub mod server;
pub mod sidecar;
pub mod terminal_proxy;
pub mod variables;
