//! Spin's `fermyon:spin/llm@2.0.0` `generate-embeddings` for `all-minilm-l6-v2`,
//! computed on the CPU with candle the way real Spin's local engine computes it, so a
//! component gets the same vectors (within float rounding) on both hosts:
//!
//! - the files are Spin's: `<state dir>/ai-models/all-minilm-l6-v2/{tokenizer.json,
//!   model.safetensors}` (`arcana models install` puts them there; see [`crate::ai_models`]);
//! - the tokenizer file's own settings (truncation to 128 tokens, `[CLS] … [SEP]`) with
//!   padding to the longest text of the call;
//! - MiniLM-L6's BERT (384 wide, 6 layers, 12 heads) with tanh-approximated GELU, token
//!   type ids all 0 and no attention mask, then the mean over every position of the
//!   padded batch, L2-normalised; `prompt-token-count` is that padded length.
//!
//! As in Spin, a text's vector depends on the longest text it is sent with: send one
//! text per call for vectors that do not depend on their neighbours. The model is
//! loaded on first use and kept; a failed load is tried again on the next call.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, HiddenAct};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer};

/// The only embedding model Spin serves locally.
pub const ALL_MINILM_L6_V2: &str = "all-minilm-l6-v2";

/// Why embeddings were not produced, as the WIT `error` variant says it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbeddingsError {
    /// A model this host does not know.
    #[error("model not supported")]
    ModelNotSupported,
    /// The request itself is wrong (a model the component may not use).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Loading or running the model failed.
    #[error("{0}")]
    Runtime(String),
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens per text after padding (Spin's `prompt-token-count`).
    pub prompt_tokens: u32,
}

/// The local engine of one application; shared by all its instances.
pub struct LocalEmbeddings {
    /// `<state dir>/ai-models`.
    models_dir: PathBuf,
    loaded: tokio::sync::Mutex<Option<Arc<Loaded>>>,
}

struct Loaded {
    tokenizer: Tokenizer,
    model: BertModel,
}

impl LocalEmbeddings {
    /// An engine reading models from `models_dir` (nothing is loaded yet).
    pub fn new(models_dir: PathBuf) -> LocalEmbeddings {
        LocalEmbeddings {
            models_dir,
            loaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Embeds `texts` with `model` (the component's access is checked by the caller).
    pub async fn generate(
        &self,
        model: &str,
        texts: Vec<String>,
    ) -> Result<Embeddings, EmbeddingsError> {
        if model != ALL_MINILM_L6_V2 {
            return Err(EmbeddingsError::ModelNotSupported);
        }
        let loaded = self.load().await?;
        if texts.is_empty() {
            // Spin's own answer (candle's, for a batch of none).
            return Err(EmbeddingsError::Runtime(
                "Error occurred generating embeddings: stack expects at least one tensor".into(),
            ));
        }
        tokio::task::spawn_blocking(move || loaded.embed(texts))
            .await
            .map_err(|e| EmbeddingsError::Runtime(format!("embedding task failed: {e}")))?
            .map_err(|e| {
                EmbeddingsError::Runtime(format!("Error occurred generating embeddings: {e}"))
            })
    }

    async fn load(&self) -> Result<Arc<Loaded>, EmbeddingsError> {
        let mut slot = self.loaded.lock().await;
        if let Some(loaded) = slot.as_ref() {
            return Ok(loaded.clone());
        }
        let dir = self.models_dir.join(ALL_MINILM_L6_V2);
        let loaded = tokio::task::spawn_blocking(move || Loaded::from_dir(dir))
            .await
            .map_err(|e| EmbeddingsError::Runtime(format!("loading task failed: {e}")))??;
        let loaded = Arc::new(loaded);
        *slot = Some(loaded.clone());
        Ok(loaded)
    }
}

/// MiniLM-L6's shape (Spin hard-codes the same; the model's config.json says so too).
fn minilm_config() -> Config {
    Config {
        hidden_size: 384,
        num_hidden_layers: 6,
        num_attention_heads: 12,
        intermediate_size: 1536,
        hidden_act: HiddenAct::GeluApproximate,
        ..Config::default()
    }
}

impl Loaded {
    fn from_dir(dir: PathBuf) -> Result<Loaded, EmbeddingsError> {
        if !dir.is_dir() {
            return Err(EmbeddingsError::Runtime(format!(
                "The directory expected to house the embeddings models '{}' does not exist.",
                dir.display()
            )));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            tracing::warn!(error = %e, "embeddings tokenizer");
            EmbeddingsError::Runtime(format!(
                "Failed to load embeddings tokenizer from '{}'",
                tokenizer_path.display()
            ))
        })?;
        let padding = tokenizer
            .get_padding()
            .cloned()
            .map(|p| PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                ..p
            })
            .unwrap_or_default();
        tokenizer.with_padding(Some(padding));
        let model_path = dir.join("model.safetensors");
        let model = std::fs::read(&model_path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                    .map_err(|e| e.to_string())?;
                let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
                BertModel::load(vb, &minilm_config()).map_err(|e| e.to_string())
            })
            .map_err(|e| {
                tracing::warn!(error = %e, "embeddings model");
                EmbeddingsError::Runtime(format!(
                    "Failed to load embeddings model from '{}'",
                    model_path.display()
                ))
            })?;
        Ok(Loaded { tokenizer, model })
    }

    fn embed(&self, texts: Vec<String>) -> Result<Embeddings, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| e.to_string())?;
        let ids = encodings
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let run = || -> candle_core::Result<(Vec<Vec<f32>>, usize)> {
            let input_ids = Tensor::stack(&ids, 0)?;
            let token_type_ids = input_ids.zeros_like()?;
            let hidden = self.model.forward(&input_ids, &token_type_ids, None)?;
            let (_, n_tokens, _) = hidden.dims3()?;
            let mean = (hidden.sum(1)? / n_tokens as f64)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            Ok((mean.broadcast_div(&norm)?.to_vec2::<f32>()?, n_tokens))
        };
        // candle's errors carry a backtrace when RUST_BACKTRACE is set: not for guests.
        let (vectors, n_tokens) =
            run().map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())?;
        Ok(Embeddings {
            vectors,
            prompt_tokens: n_tokens as u32,
        })
    }
}
