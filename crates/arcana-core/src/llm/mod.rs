//! LLM configuration: providers (with sealed API keys), models, who may use which
//! model, per-user preferences, and routing rules that pick a model for a request.
//!
//! - [`catalog`]: providers, models and model allowlists (SQL and types).
//! - [`client`]: OpenAI and Anthropic wire protocols, plain and streaming, with error
//!   mapping, retries and fallback, over a host-provided [`client::Transport`].
//! - [`preferences`]: per-user defaults with validated ranges.
//! - [`routing`]: rules as data and the selection order, with an explanation.
//! - [`tokens`]: the token estimate used by routing and context budgets.

pub mod catalog;
pub mod client;
pub mod preferences;
pub mod routing;
pub mod tokens;
