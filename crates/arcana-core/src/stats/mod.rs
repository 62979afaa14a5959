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

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::db::{Db, DbError, Row, Value};
use histogram::Histogram;

/// Whose figures: one user's, or everyone's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    User(&'a str),
    All,
}

impl Scope<'_> {
    /// ` AND user_id = ?N` for a user, nothing for everyone, with the parameter to bind.
    fn filter(&self, n: usize) -> (String, Option<Value>) {
        match self {
            Scope::User(id) => (format!(" AND user_id = ?{n}"), Some((*id).into())),
            Scope::All => (String::new(), None),
        }
    }
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

/// Activity figures of a scope.
pub fn figures(db: &dyn Db, scope: Scope<'_>, windows: &Windows) -> Result<Figures, DbError> {
    let mut figures = Figures::default();
    activity(db, scope, windows, &mut figures)?;
    figures.llm = llm_activity(db, scope, windows)?;
    let (filter, param) = scope.filter(1);
    figures.terminal.sessions_active = db
        .query(
            &format!("SELECT count(*) FROM terminal_sessions WHERE status = 'active'{filter}"),
            param.as_slice(),
        )?
        .first()
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    Ok(figures)
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

const ACTIVITY_SUMS: &str = "coalesce(sum(conversations), 0), coalesce(sum(messages), 0), \
     coalesce(sum(memories), 0), coalesce(sum(terminal_sessions), 0), coalesce(sum(terminal_commands), 0)";

fn activity(
    db: &dyn Db,
    scope: Scope<'_>,
    windows: &Windows,
    out: &mut Figures,
) -> Result<(), DbError> {
    let (filter, param) = scope.filter(2);
    let mut params: Vec<Value> = vec![windows.hour_since.clone().into()];
    params.extend(param);
    let rows = db.query(
        &format!(
            "SELECT 'stored', {ACTIVITY_SUMS} FROM stats_activity WHERE span = 'stored' AND bucket = ''{filter}
             UNION ALL
             SELECT 'hour', {ACTIVITY_SUMS} FROM stats_activity WHERE span = 'hour' AND bucket >= ?1{filter}"
        ),
        &params,
    )?;
    for row in rows.iter() {
        let [c, m, k, s, x] = five(&row, 1)?;
        if row.text(0)? == "stored" {
            out.chat.conversations.total = c;
            out.chat.messages.total = m;
            out.chat.memories.total = k;
            out.terminal.sessions_total = s;
            out.terminal.commands_total = x;
        } else {
            out.chat.conversations.last_24h = c;
            out.chat.messages.last_24h = m;
            out.chat.memories.last_24h = k;
            out.terminal.sessions_last_24h = s;
            out.terminal.commands_last_24h = x;
        }
    }
    Ok(())
}

/// `sum(...)` of every numeric column of `stats_llm`, in the order [`llm_row`] reads.
fn llm_sums() -> String {
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
    cols.join(", ")
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

fn llm_activity(db: &dyn Db, scope: Scope<'_>, windows: &Windows) -> Result<LlmActivity, DbError> {
    let (filter, param) = scope.filter(3);
    let mut params: Vec<Value> = vec![
        windows.minute_since.clone().into(),
        windows.hour_since.clone().into(),
    ];
    params.extend(param);
    let window_filter =
        format!("((span = 'minute' AND bucket >= ?1) OR (span = 'hour' AND bucket >= ?2)){filter}");
    let rows = db.query(
        &format!(
            "SELECT span, provider_id, model_name, {} FROM stats_llm WHERE {window_filter}
             GROUP BY span, provider_id, model_name ORDER BY span, provider_id, model_name",
            llm_sums()
        ),
        &params,
    )?;
    let errors = db.query(
        &format!(
            "SELECT span, provider_id, model_name, code, sum(n) FROM stats_llm_errors WHERE {window_filter}
             GROUP BY span, provider_id, model_name, code"
        ),
        &params,
    )?;
    let names: HashMap<String, String> = db
        .query("SELECT id, name FROM llm_providers", &[])?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect::<Result<_, DbError>>()?;

    let mut activity = LlmActivity {
        last_hour: LlmWindow {
            since: windows.minute_since_rfc3339(),
            ..LlmWindow::default()
        },
        last_24h: LlmWindow {
            since: windows.hour_since_rfc3339(),
            ..LlmWindow::default()
        },
    };
    let mut by_key: HashMap<(String, String, String), LlmFigures> = HashMap::new();
    for row in rows.iter() {
        let key = (row.text(0)?, row.text(1)?, row.text(2)?);
        by_key.insert(key, llm_row(&row, 3)?);
    }
    for row in errors.iter() {
        let key = (row.text(0)?, row.text(1)?, row.text(2)?);
        if let Some(f) = by_key.get_mut(&key) {
            f.errors_by_code.insert(row.text(3)?, row.int(4)?);
        }
    }
    let mut keys: Vec<_> = by_key.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let figures = by_key.remove(&key).unwrap_or_default();
        let (span, provider_id, model) = key;
        let window = if span == "minute" {
            &mut activity.last_hour
        } else {
            &mut activity.last_24h
        };
        window.total.add(&figures);
        window.by_model.push(LlmModelFigures {
            provider_name: names.get(&provider_id).cloned(),
            provider_id,
            model,
            figures,
        });
    }
    Ok(activity)
}

/// Per-user lines for an admin, ordered by user name, at most [`MAX_USERS_IN_BREAKDOWN`].
pub fn per_user(db: &dyn Db, windows: &Windows) -> Result<Vec<UserFigures>, DbError> {
    let users = db.query(
        "SELECT id, username FROM users ORDER BY username_norm LIMIT ?1",
        &[MAX_USERS_IN_BREAKDOWN.into()],
    )?;
    let mut lines: Vec<UserFigures> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in users.iter() {
        index.insert(row.text(0)?, lines.len());
        lines.push(UserFigures {
            user_id: row.text(0)?,
            username: row.text(1)?,
            ..UserFigures::default()
        });
    }
    let mut each = |sql: &str,
                    params: &[Value],
                    apply: &dyn Fn(&mut UserFigures, &Row<'_>) -> Result<(), DbError>|
     -> Result<(), DbError> {
        for row in db.query(sql, params)?.iter() {
            if let Some(&i) = index.get(&row.text(0)?) {
                apply(&mut lines[i], &row)?;
            }
        }
        Ok(())
    };
    each(
        "SELECT user_id, conversations, messages, memories, terminal_sessions, terminal_commands
         FROM stats_activity WHERE span = 'stored' AND bucket = ''",
        &[],
        &|u, r| {
            let [c, m, k, s, x] = five(r, 1)?;
            (u.conversations, u.messages, u.memories) = (c, m, k);
            (u.terminal_sessions_total, u.terminal_commands) = (s, x);
            Ok(())
        },
    )?;
    each(
        "SELECT user_id, sum(messages) FROM stats_activity
         WHERE span = 'hour' AND bucket >= ?1 GROUP BY user_id",
        &[windows.hour_since.clone().into()],
        &|u, r| {
            u.messages_last_24h = r.int(1)?;
            Ok(())
        },
    )?;
    each(
        "SELECT user_id, sum(calls), sum(errors), sum(prompt_tokens) + sum(completion_tokens), total(cost)
         FROM stats_llm WHERE span = 'hour' AND bucket >= ?1 GROUP BY user_id",
        &[windows.hour_since.clone().into()],
        &|u, r| {
            u.llm_calls_last_24h = r.int(1)?;
            u.llm_errors_last_24h = r.int(2)?;
            u.llm_tokens_last_24h = r.int(3)?;
            u.llm_cost_usd_last_24h = r.real(4)?;
            Ok(())
        },
    )?;
    each(
        "SELECT user_id, count(*) FROM terminal_sessions WHERE status = 'active' GROUP BY user_id",
        &[],
        &|u, r| {
            u.terminal_sessions_active = r.int(1)?;
            Ok(())
        },
    )?;
    Ok(lines)
}

#[cfg(test)]
mod tests;
