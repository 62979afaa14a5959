//! Token estimates. Exact counts need each model's tokenizer, which is too large to
//! ship in every wasm component; about four characters per token is the usual
//! estimate for English text and code, and is only used for routing thresholds and
//! context budgets, never for billing (billing uses the provider's reported usage).

/// Tokens a message costs beyond its text (role and framing), as providers count it.
pub const PER_MESSAGE: i64 = 4;

/// Estimated tokens of a prompt: every message's text and framing.
pub fn estimate_messages<'a>(texts: impl IntoIterator<Item = &'a str>) -> i64 {
    texts.into_iter().map(|t| estimate(t) + PER_MESSAGE).sum()
}

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
