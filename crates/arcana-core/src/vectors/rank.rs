//! Ranking by similarity, and fusing rankings.

use std::collections::HashMap;

/// Cosine similarity of two vectors of the same length (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// The `limit` items most similar to `query`, best first, as `(id, similarity)`.
pub fn nearest<'a>(
    query: &[f32],
    items: impl IntoIterator<Item = (&'a str, &'a [f32])>,
    limit: usize,
) -> Vec<(String, f32)> {
    let mut scored: Vec<(String, f32)> = items
        .into_iter()
        .filter(|(_, v)| v.len() == query.len())
        .map(|(id, v)| (id.to_string(), cosine(query, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(limit);
    scored
}

/// The constant of reciprocal rank fusion (Cormack et al.): dampens the top ranks.
pub const RRF_K: f64 = 60.0;

/// Reciprocal rank fusion: each item scores `Σ 1 / (RRF_K + rank)` over the rankings it
/// appears in (rank from 1), best first. Ties keep the first ranking's order.
pub fn fuse(rankings: &[Vec<String>]) -> Vec<(String, f64)> {
    let mut scores: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut order = 0;
    for ranking in rankings {
        for (i, id) in ranking.iter().enumerate() {
            let entry = scores.entry(id).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (RRF_K + (i + 1) as f64);
        }
    }
    let mut fused: Vec<(String, f64, usize)> = scores
        .into_iter()
        .map(|(id, (s, o))| (id.to_string(), s, o))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(id, s, _)| (id, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_is_one_for_the_same_direction_and_zero_across() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn nearest_skips_other_dimensions_and_orders_best_first() {
        let a = [1.0, 0.0];
        let b = [0.7, 0.7];
        let c = [1.0, 0.0, 0.0];
        let got = nearest(
            &[1.0, 0.1],
            [("a", &a[..]), ("b", &b[..]), ("c", &c[..])],
            5,
        );
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn fusion_rewards_items_in_both_rankings() {
        let keyword = vec!["exact".to_string(), "k2".to_string()];
        let semantic = vec!["para".to_string(), "exact".to_string(), "s3".to_string()];
        let fused = fuse(&[keyword, semantic]);
        assert_eq!(fused[0].0, "exact");
        let ids: Vec<&str> = fused.iter().map(|(id, _)| id.as_str()).collect();
        assert!(ids.contains(&"para") && ids.contains(&"k2"));
        assert_eq!(fused.len(), 4);
    }
}
