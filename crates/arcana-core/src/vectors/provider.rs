//! Embeddings from a provider's OpenAI-compatible `/embeddings` endpoint, for a
//! deployment whose admin chose a provider model over the local one
//! (`PUT /api/arcana/llm/embedding-model`). Its vectors are stored as
//! `provider:<model id>`, so they are never ranked with the local model's.

use serde_json::{Value, json};

use super::{EmbedError, Embedder};
use crate::llm::client::{Target, Transport, read_all};

/// Texts per request (OpenAI takes up to 2048).
const BATCH: usize = 64;

/// [`Embedder`] over one provider model.
pub struct ProviderEmbedder<'a> {
    target: Target,
    transport: &'a dyn Transport,
    model: String,
}

impl<'a> ProviderEmbedder<'a> {
    /// Embeds with `target` (the model on its provider, key opened) as `provider:<model_id>`.
    pub fn new(target: Target, transport: &'a dyn Transport, model_id: &str) -> Self {
        ProviderEmbedder {
            target,
            transport,
            model: format!("provider:{model_id}"),
        }
    }
}

impl Embedder for ProviderEmbedder<'_> {
    fn model(&self) -> &str {
        &self.model
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let body = json!({"model": self.target.model_name, "input": chunk});
            let req = crate::gateway::openai::request(&self.target, "/embeddings", body);
            let mut resp = self
                .transport
                .send(&req)
                .map_err(|e| EmbedError::Unavailable(e.to_string()))?;
            let status = resp.status();
            let bytes = read_all(resp.as_mut(), 64 << 20)
                .map_err(|e| EmbedError::Unavailable(e.to_string()))?;
            if !(200..300).contains(&status) {
                return Err(EmbedError::Failed(format!(
                    "the provider answered {status}"
                )));
            }
            out.extend(parse(&bytes, chunk.len())?);
        }
        Ok(out)
    }
}

/// OpenAI's `{"data": [{"index": i, "embedding": [...]}, ...]}`, in input order.
fn parse(bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| EmbedError::Failed(format!("invalid JSON: {e}")))?;
    let mut items: Vec<(u64, Vec<f32>)> = v["data"]
        .as_array()
        .ok_or_else(|| EmbedError::Failed("no data".into()))?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let index = d["index"].as_u64().unwrap_or(i as u64);
            let vector = d["embedding"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            (index, vector)
        })
        .collect();
    items.sort_by_key(|(i, _)| *i);
    if items.len() != expected || items.iter().any(|(_, v)| v.is_empty()) {
        return Err(EmbedError::Failed(format!(
            "expected {expected} embeddings, got {}",
            items.len()
        )));
    }
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_back_in_input_order() {
        let body = br#"{"data":[{"index":1,"embedding":[0.5,0.5]},{"index":0,"embedding":[1,0]}]}"#;
        assert_eq!(
            parse(body, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.5, 0.5]]
        );
        assert!(parse(body, 3).is_err());
        assert!(parse(b"{}", 1).is_err());
    }
}
