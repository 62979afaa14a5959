//! Semantic vectors for memories and messages: the embedder a host offers, how vectors
//! are stored (one row per item, with the model that made it and its dimension), and
//! how they are ranked.
//!
//! - [`Embedder`]: text → vector. Components use Spin's own LLM interface
//!   (`all-minilm-l6-v2`, offline); a deployment may choose a provider's model instead.
//! - [`store`]: the `vectors` table. A vector is only ever compared with vectors of the
//!   same model, so changing the model never mixes dimensions in one ranking; items
//!   without a vector of the current model are embedded again a few at a time
//!   ([`backfill`]).
//! - [`rank`]: cosine similarity, nearest items, and reciprocal rank fusion.

pub mod choice;
pub mod provider;
pub mod rank;
pub mod store;

/// Why a text could not be embedded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// The host has no embedding model (model files missing, interface absent).
    #[error("embeddings are unavailable: {0}")]
    Unavailable(String),
    /// The model failed on this input.
    #[error("embedding failed: {0}")]
    Failed(String),
}

/// Turns text into a vector. Implemented by each host.
pub trait Embedder {
    /// Names the vector space, e.g. `spin:all-minilm-l6-v2`: vectors of different
    /// models are never compared.
    fn model(&self) -> &str;

    /// One unit-length vector per text, in order.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// One text's vector.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(&[text.to_string()])?
            .pop()
            .ok_or_else(|| EmbedError::Failed("no vector returned".into()))
    }
}

/// What the vector of an item is made from: texts are cut to what the model reads.
pub fn embeddable_text(text: &str) -> String {
    // MiniLM reads at most 128 tokens (about 500 characters of English); more text
    // only costs tokenizer time.
    const MAX_CHARS: usize = 2000;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}
