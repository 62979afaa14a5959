//! Token estimates. Exact counts need each model's tokenizer, which is too large to
//! ship in every wasm component; about four characters per token is the usual
//! estimate for English text and code, and is only used for routing thresholds and
//! context budgets, never for billing (billing uses the provider's reported usage).

/// Estimated tokens in `text` (at least 1 for non-empty text).
pub fn estimate(text: &str) -> i64 {
    let chars = text.chars().count() as i64;
    if chars == 0 { 0 } else { (chars + 3) / 4 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn about_four_characters_per_token() {
        assert_eq!(super::estimate(""), 0);
        assert_eq!(super::estimate("abc"), 1);
        assert_eq!(super::estimate(&"x".repeat(4000)), 1000);
    }
}
