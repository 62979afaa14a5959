//! Latency histograms with fixed bounds, as the `lat_*` columns of `stats_llm` store
//! them, and percentiles estimated from them the way Prometheus' `histogram_quantile`
//! does (linear inside the bucket that holds the rank).

/// Upper bounds in milliseconds of every bucket but the last (which is unbounded).
pub const BOUNDS_MS: [f64; 14] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
    120000.0,
];

/// Bucket columns of `stats_llm`, in the order of [`BOUNDS_MS`] then the unbounded one.
pub const COLUMNS: [&str; 15] = [
    "lat_5",
    "lat_10",
    "lat_25",
    "lat_50",
    "lat_100",
    "lat_250",
    "lat_500",
    "lat_1000",
    "lat_2500",
    "lat_5000",
    "lat_10000",
    "lat_30000",
    "lat_60000",
    "lat_120000",
    "lat_inf",
];

/// Counts per bucket (not cumulative) and the sum of every observation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Histogram {
    pub counts: [i64; 15],
    pub sum_ms: f64,
}

impl Histogram {
    /// Number of observations.
    pub fn count(&self) -> i64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_ms += other.sum_ms;
    }

    /// The estimated `q`-quantile (0..=1) in ms; `None` without observations. Ranks
    /// that fall in the unbounded bucket report its lower bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0i64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
                let Some(&upper) = BOUNDS_MS.get(i) else {
                    return Some(lower);
                };
                let into = (rank - below as f64) / n as f64;
                return Some(lower + (upper - lower) * into.clamp(0.0, 1.0));
            }
            below += n;
        }
        Some(BOUNDS_MS[BOUNDS_MS.len() - 1])
    }

    /// Mean in ms; `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_ms / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(observations: &[f64]) -> Histogram {
        let mut h = Histogram::default();
        for &ms in observations {
            let i = BOUNDS_MS
                .iter()
                .position(|&b| ms <= b)
                .unwrap_or(BOUNDS_MS.len());
            h.counts[i] += 1;
            h.sum_ms += ms;
        }
        h
    }

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        assert_eq!(Histogram::default().quantile(0.5), None);
        // 90 fast calls (≤ 5 ms) and 10 slow ones (2.5–5 s).
        let mut obs = vec![3.0; 90];
        obs.extend([4000.0; 10]);
        let h = with(&obs);
        let p50 = h.quantile(0.5).unwrap();
        assert!((0.0..=5.0).contains(&p50), "{p50}");
        let p95 = h.quantile(0.95).unwrap();
        assert!((2500.0..=5000.0).contains(&p95), "{p95}");
        assert_eq!(h.count(), 100);
        assert!((h.mean().unwrap() - (90.0 * 3.0 + 40000.0) / 100.0).abs() < 1e-9);
    }

    #[test]
    fn unbounded_bucket_reports_its_lower_bound() {
        let h = with(&[500_000.0]);
        assert_eq!(h.quantile(0.99), Some(120000.0));
    }

    #[test]
    fn interpolates_inside_a_bucket() {
        // Four observations in (100, 250]: the median is half-way through the bucket.
        let h = with(&[120.0, 150.0, 200.0, 240.0]);
        assert_eq!(h.quantile(0.5), Some(175.0));
    }
}
