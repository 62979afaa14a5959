//! Arcana's figures: chat, memory, LLM and terminal activity, read from the aggregate
//! tables that migration 0005's triggers maintain (`stats_activity`, `stats_llm`,
//! `stats_llm_errors`). Reading them costs a few index range scans whatever the size of
//! the data, which keeps `GET /api/arcana/status` and `/metrics` fast at any scale.
//!
//! Windows are whole buckets: "last hour" is the current minute and the 59 before it,
//! "last 24 h" the current clock hour and the 23 before it; each window reports where it
//! starts (`since`).

pub mod exposition;
pub mod histogram;
pub mod prometheus;
pub mod report;

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::db::{Db, DbError, Row};
use histogram::Histogram;

/// Whose figures: one user's, or everyone's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    User(&'a str),
    All,
}

/// The start of the two windows, as bucket keys.
#[derive(Debug, Clone)]
pub struct Windows {
    /// First minute bucket of the last hour (`YYYY-MM-DDTHH:MM`).
    pub minute_since: String,
    /// First hour bucket of the last 24 h (`YYYY-MM-DDTHH`).
    pub hour_since: String,
}

impl Windows {
    /// The windows ending at `now`.
    pub fn at(now: OffsetDateTime) -> Windows {
        let minute = crate::time::format(now - Duration::minutes(59));
        let hour = crate::time::format(now - Duration::hours(23));
        Windows {
            minute_since: minute[..16].to_string(),
            hour_since: hour[..13].to_string(),
        }
    }

    fn hour_since_rfc3339(&self) -> String {
        format!("{}:00:00.000Z", self.hour_since)
    }

    fn minute_since_rfc3339(&self) -> String {
        format!("{}:00.000Z", self.minute_since)
    }
}

/// A count now and created in the last 24 h.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema, PartialEq)]
pub struct Count {
    /// Stored now.
    pub total: i64,
    /// Created in the last 24 h (including any since deleted).
    pub last_24h: i64,
}

/// Conversations, messages and memories.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ChatFigures {
    pub conversations: Count,
    pub messages: Count,
    pub memories: Count,
}

/// Terminal sessions and commands.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct TerminalFigures {
    /// Sessions running now.
    pub sessions_active: i64,
    /// Sessions ever started (stored).
    pub sessions_total: i64,
    pub sessions_last_24h: i64,
    /// Commands recorded in history.
    pub commands_total: i64,
    pub commands_last_24h: i64,
}

/// Latency of LLM provider attempts, estimated from a histogram.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

impl From<&Histogram> for Latency {
    fn from(h: &Histogram) -> Latency {
        Latency {
            p50_ms: h.quantile(0.5),
            p95_ms: h.quantile(0.95),
            mean_ms: h.mean(),
        }
    }
}

/// LLM figures of one provider/model pair in a window.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LlmModelFigures {
    /// Empty when the attempt had no provider.
    pub provider_id: String,
    /// `None` once the provider was deleted.
    pub provider_name: Option<String>,
    pub model: String,
    #[serde(flatten)]
    pub figures: LlmFigures,
}

/// LLM provider attempts (each retry and fallback counts), tokens and cost.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LlmFigures {
    pub calls: i64,
    pub errors: i64,
    /// Failed attempts by error code (`rate_limited`, `provider_error`, ...).
    pub errors_by_code: BTreeMap<String, i64>,
    pub latency: Latency,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    #[serde(skip)]
    histogram: Histogram,
}

impl LlmFigures {
    fn add(&mut self, other: &LlmFigures) {
        self.calls += other.calls;
        self.errors += other.errors;
        for (code, n) in &other.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_default() += n;
        }
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
        self.histogram.merge(&other.histogram);
        self.latency = Latency::from(&self.histogram);
    }
}

/// LLM figures in one window, in total and per provider/model.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LlmWindow {
    /// Start of the window (RFC 3339).
    pub since: String,
    #[serde(flatten)]
    pub total: LlmFigures,
    pub by_model: Vec<LlmModelFigures>,
}

/// The last hour and the last 24 h.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LlmActivity {
    pub last_hour: LlmWindow,
    pub last_24h: LlmWindow,
}

/// Everything the status endpoint reports for a scope.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Figures {
    pub chat: ChatFigures,
    pub llm: LlmActivity,
    pub terminal: TerminalFigures,
}

/// One user's line in an admin's breakdown.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct UserFigures {
    pub user_id: String,
    pub username: String,
    pub conversations: i64,
    pub messages: i64,
    pub messages_last_24h: i64,
    pub memories: i64,
    pub llm_calls_last_24h: i64,
    pub llm_errors_last_24h: i64,
    pub llm_tokens_last_24h: i64,
    pub llm_cost_usd_last_24h: f64,
    pub terminal_sessions_active: i64,
    pub terminal_sessions_total: i64,
    pub terminal_commands: i64,
}

/// Most users listed in a breakdown.
pub const MAX_USERS_IN_BREAKDOWN: i64 = 1000;

/// Activity figures of a scope (one statement, see [`report`]).
pub fn figures(db: &dyn Db, scope: Scope<'_>, windows: &Windows) -> Result<Figures, DbError> {
    report::report(db, scope, windows, false).map(|(f, _)| f)
}

/// The five activity counters of one row, from column `from` on.
fn five(row: &Row<'_>, from: usize) -> Result<[i64; 5], DbError> {
    Ok([
        row.int(from)?,
        row.int(from + 1)?,
        row.int(from + 2)?,
        row.int(from + 3)?,
        row.int(from + 4)?,
    ])
}

/// Sums of the five activity counters, in the order [`five`] reads.
fn activity_sums() -> Vec<String> {
    [
        "conversations",
        "messages",
        "memories",
        "terminal_sessions",
        "terminal_commands",
    ]
    .iter()
    .map(|c| format!("coalesce(sum({c}), 0)"))
    .collect()
}

/// `sum(...)` of every numeric column of `stats_llm`, in the order [`llm_row`] reads.
fn llm_sums() -> Vec<String> {
    let mut cols = vec![
        "coalesce(sum(calls), 0)".to_string(),
        "coalesce(sum(errors), 0)".into(),
        "coalesce(sum(prompt_tokens), 0)".into(),
        "coalesce(sum(completion_tokens), 0)".into(),
        "total(cost)".into(),
        "total(latency_ms_sum)".into(),
    ];
    cols.extend(
        histogram::COLUMNS
            .iter()
            .map(|c| format!("coalesce(sum({c}), 0)")),
    );
    cols
}

/// Reads the columns of [`llm_sums`] starting at `from`.
fn llm_row(row: &Row<'_>, from: usize) -> Result<LlmFigures, DbError> {
    let mut histogram = Histogram {
        sum_ms: row.real(from + 5)?,
        ..Histogram::default()
    };
    for (i, count) in histogram.counts.iter_mut().enumerate() {
        *count = row.int(from + 6 + i)?;
    }
    Ok(LlmFigures {
        calls: row.int(from)?,
        errors: row.int(from + 1)?,
        errors_by_code: BTreeMap::new(),
        latency: Latency::from(&histogram),
        prompt_tokens: row.int(from + 2)?,
        completion_tokens: row.int(from + 3)?,
        cost_usd: row.real(from + 4)?,
        histogram,
    })
}

/// Per-user lines for an admin, ordered by user name, at most [`MAX_USERS_IN_BREAKDOWN`]
/// (one statement, see [`report`]).
pub fn per_user(db: &dyn Db, windows: &Windows) -> Result<Vec<UserFigures>, DbError> {
    report::report(db, Scope::All, windows, true).map(|(_, lines)| lines.unwrap_or_default())
}

#[cfg(test)]
mod tests;
