//! The OpenAI-compatible gateway (`/v1/chat/completions`, `/v1/models`,
//! `/v1/embeddings`): OpenAI's wire format in and out, Arcana's routing, retries,
//! fallback, budgets and ledger behind it.
//!
//! - [`request`]: the client's request, checked and summarized for routing.
//! - [`openai`]: OpenAI-kind providers: the request passed through, model and limits set.
//! - [`anthropic`]: Anthropic-kind providers: requests and answers translated both ways,
//!   streamed ones included (text, tool calls, usage, finish reasons).
//! - [`relay`]: one attempt on one provider, plain or streamed to the client.
//! - [`errors`]: OpenAI's error body and the statuses OpenAI clients expect.

pub mod anthropic;
pub mod errors;
pub mod openai;
pub mod relay;
pub mod request;
