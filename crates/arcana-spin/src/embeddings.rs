//! Text embeddings through Spin's own LLM interface (`fermyon:spin/llm@2.0.0`): the
//! `all-minilm-l6-v2` model, run by the host from local files, offline. A component must
//! list it in `ai_models` (spin.toml).

use arcana_core::vectors::{EmbedError, Embedder};
use spin_sdk::llm::{self, EmbeddingModel};

/// The vector space's name as stored with each vector.
pub const MODEL: &str = arcana_core::api::embedding_model::LOCAL_VECTORS;

/// [`Embedder`] over `spin_sdk::llm::generate_embeddings`.
pub struct SpinEmbedder;

impl Embedder for SpinEmbedder {
    fn model(&self) -> &str {
        MODEL
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // One text per call: Spin pads a batch to its longest text and averages over the
        // padding too, so a text's vector would depend on its neighbours.
        texts
            .iter()
            .map(|text| {
                llm::generate_embeddings(EmbeddingModel::AllMiniLmL6V2, std::slice::from_ref(text))
                    .map_err(|e| match e {
                        llm::Error::ModelNotSupported => {
                            EmbedError::Unavailable("the host has no all-minilm-l6-v2".into())
                        }
                        llm::Error::RuntimeError(m) => EmbedError::Unavailable(m),
                        llm::Error::InvalidInput(m) => EmbedError::Failed(m),
                    })?
                    .embeddings
                    .pop()
                    .ok_or_else(|| EmbedError::Failed("no vector returned".into()))
            })
            .collect()
    }
}
