//! Arcana's lifetime figures as Prometheus families (everyone's; no per-user labels,
//! which would make series grow with the user base). The runner appends its request
//! metrics and terminal-host's live figures to this output; their names never overlap
//! (`arcana_http_*`, `arcana_terminal_*` there; none of those prefixes here).

use std::collections::HashMap;

use super::exposition::{Exposition, Kind};
use super::histogram::{BOUNDS_MS, Histogram};
use super::{activity_sums, five, llm_row, llm_sums};
use crate::db::{Db, DbError};

/// Appends every Arcana family read from the database to `out`.
pub fn write_figures(db: &dyn Db, out: &mut Exposition) -> Result<(), DbError> {
    out.family(
        "arcana_users",
        Kind::Gauge,
        "Registered users by role and state.",
    );
    for row in db
        .query(
            "SELECT role, disabled, count(*) FROM users GROUP BY role, disabled ORDER BY 1, 2",
            &[],
        )?
        .iter()
    {
        let state = if row.bool(1)? { "disabled" } else { "enabled" };
        out.sample(
            "arcana_users",
            &[("role", &row.text(0)?), ("state", state)],
            row.int(2)? as f64,
        );
    }

    let sums = activity_sums().join(", ");
    let rows = db.query(
        &format!(
            "SELECT 'stored', {sums} FROM stats_activity WHERE span = 'stored' AND bucket = ''
             UNION ALL
             SELECT 'all', {sums} FROM stats_activity WHERE span = 'all' AND bucket = ''"
        ),
        &[],
    )?;
    let mut stored = [0i64; 5];
    let mut created = [0i64; 5];
    for row in rows.iter() {
        let values = five(&row, 1)?;
        if row.text(0)? == "stored" {
            stored = values;
        } else {
            created = values;
        }
    }
    let gauges = [
        ("arcana_conversations", "Conversations stored.", stored[0]),
        ("arcana_messages", "Chat messages stored.", stored[1]),
        (
            "arcana_memories",
            "Context-memory entries stored.",
            stored[2],
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help)
            .sample(name, &[], value as f64);
    }
    let counters = [
        (
            "arcana_conversations_created_total",
            "Conversations ever created.",
            created[0],
        ),
        (
            "arcana_messages_created_total",
            "Chat messages ever created.",
            created[1],
        ),
        (
            "arcana_memories_created_total",
            "Context-memory entries ever created.",
            created[2],
        ),
        (
            "arcana_shell_sessions_recorded_total",
            "Terminal sessions ever started (from the database; survives restarts).",
            created[3],
        ),
        (
            "arcana_shell_commands_recorded_total",
            "Terminal commands ever recorded in history (from the database).",
            created[4],
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help)
            .sample(name, &[], value as f64);
    }
    write_llm(db, out)
}

fn write_llm(db: &dyn Db, out: &mut Exposition) -> Result<(), DbError> {
    let names: HashMap<String, String> = db
        .query("SELECT id, name FROM llm_providers", &[])?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect::<Result<_, DbError>>()?;
    let rows = db.query(
        &format!(
            "SELECT provider_id, model_name, {} FROM stats_llm WHERE span = 'all' AND bucket = ''
             GROUP BY provider_id, model_name ORDER BY provider_id, model_name",
            llm_sums().join(", ")
        ),
        &[],
    )?;
    let errors = db.query(
        "SELECT provider_id, model_name, code, sum(n) FROM stats_llm_errors
         WHERE span = 'all' AND bucket = '' GROUP BY provider_id, model_name, code
         ORDER BY provider_id, model_name, code",
        &[],
    )?;
    let mut series = Vec::new();
    for row in rows.iter() {
        let provider_id = row.text(0)?;
        let provider = names.get(&provider_id).cloned().unwrap_or_default();
        series.push((provider_id, provider, row.text(1)?, llm_row(&row, 2)?));
    }
    let labels = |(id, name, model, _): &(String, String, String, _)| {
        vec![
            ("provider_id", id.clone()),
            ("provider", name.clone()),
            ("model", model.clone()),
        ]
    };

    out.family(
        "arcana_llm_calls_total",
        Kind::Counter,
        "LLM provider attempts (retries and fallbacks each count).",
    );
    for s in &series {
        let l = labels(s);
        out.sample("arcana_llm_calls_total", &borrow(&l), s.3.calls as f64);
    }
    out.family(
        "arcana_llm_errors_total",
        Kind::Counter,
        "Failed LLM provider attempts by error code.",
    );
    for row in errors.iter() {
        let provider_id = row.text(0)?;
        let provider = names.get(&provider_id).cloned().unwrap_or_default();
        let l = [
            ("provider_id", provider_id),
            ("provider", provider),
            ("model", row.text(1)?),
            ("code", row.text(2)?),
        ];
        out.sample("arcana_llm_errors_total", &borrow(&l), row.int(3)? as f64);
    }
    out.family(
        "arcana_llm_tokens_total",
        Kind::Counter,
        "Tokens reported by providers, by kind (prompt or completion).",
    );
    for s in &series {
        for (kind, n) in [
            ("prompt", s.3.prompt_tokens),
            ("completion", s.3.completion_tokens),
        ] {
            let mut l = labels(s);
            l.push(("kind", kind.to_string()));
            out.sample("arcana_llm_tokens_total", &borrow(&l), n as f64);
        }
    }
    out.family(
        "arcana_llm_cost_usd_total",
        Kind::Counter,
        "Cost of LLM calls in US dollars, from the models' prices.",
    );
    for s in &series {
        let l = labels(s);
        out.sample("arcana_llm_cost_usd_total", &borrow(&l), s.3.cost_usd);
    }
    out.family(
        "arcana_llm_call_duration_seconds",
        Kind::Histogram,
        "Duration of LLM provider attempts.",
    );
    let bounds: Vec<f64> = BOUNDS_MS.iter().map(|ms| ms / 1000.0).collect();
    for s in &series {
        let l = labels(s);
        let h: &Histogram = &s.3.histogram;
        out.histogram(
            "arcana_llm_call_duration_seconds",
            &borrow(&l),
            &bounds,
            &h.counts,
            h.sum_ms / 1000.0,
        );
    }
    Ok(())
}

fn borrow<'a>(labels: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
