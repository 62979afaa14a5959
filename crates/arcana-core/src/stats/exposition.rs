//! Writes the Prometheus text exposition format (0.0.4): one `# HELP`/`# TYPE` pair per
//! family, then its samples, label values escaped. Families are written whole, so a
//! family can never appear twice in one output.

use std::fmt::Write;

/// `Content-Type` of the output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metric kinds used here.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A text exposition being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family; the samples that follow belong to it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// The samples of one histogram: cumulative `_bucket`s with `le` (seconds), `_sum`, `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds_secs: &[f64],
        counts: &[i64],
        sum_secs: f64,
    ) -> &mut Self {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0i64;
        for (i, &n) in counts.iter().enumerate() {
            cumulative += n;
            let le = bounds_secs
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_value(*b));
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum_secs);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
        self
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_samples_and_cumulative_buckets() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.\nMore.").sample(
            "x_total",
            &[("model", "a\"b\\c\nd")],
            3.0,
        );
        e.family("lat_seconds", Kind::Histogram, "Latency.")
            .histogram("lat_seconds", &[("m", "a")], &[0.1, 1.0], &[2, 1, 1], 2.5);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total Things.\\nMore.\n# TYPE x_total counter\n\
             x_total{model=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{m=\"a\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{m=\"a\",le=\"1\"} 3\n\
             lat_seconds_bucket{m=\"a\",le=\"+Inf\"} 4\n\
             lat_seconds_sum{m=\"a\"} 2.5\nlat_seconds_count{m=\"a\"} 4\n"
        );
    }
}
