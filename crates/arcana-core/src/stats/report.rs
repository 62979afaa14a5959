//! The whole status report in one SQL statement.
//!
//! On a remote libSQL server every statement is a network round trip, so the parts of
//! the report (activity sums, terminal sessions, LLM figures and errors by code,
//! provider names, and for admins the per-user lines) are one `UNION ALL` whose rows
//! all have the same shape: the part's name, up to [`KEYS`] text keys, then up to
//! [`NUMS`] numbers, unused columns NULL. The rows are then sorted into [`Figures`].

use std::collections::HashMap;

use crate::db::{Db, DbError, Row, Rows, Value};

use super::histogram;
use super::{
    Figures, LlmActivity, LlmModelFigures, LlmWindow, MAX_USERS_IN_BREAKDOWN, Scope, UserFigures,
    Windows, five, llm_row, llm_sums,
};

/// Text keys per row (after the part's name).
const KEYS: usize = 4;
/// Numbers per row: the LLM sums are the widest.
const NUMS: usize = 6 + histogram::COLUMNS.len();
/// Where the numbers start.
const FIRST_NUM: usize = 1 + KEYS;

/// One `SELECT` of the union: `part`, `keys` then `nums`, padded with NULLs.
fn select(part: &str, keys: &[&str], nums: &[String], rest: &str) -> String {
    let mut cols = vec![format!("'{part}'")];
    cols.extend(keys.iter().map(|k| k.to_string()));
    cols.resize(1 + KEYS, "NULL".into());
    cols.extend(nums.iter().cloned());
    cols.resize(1 + KEYS + NUMS, "NULL".into());
    format!("SELECT {} {rest}", cols.join(", "))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The report's figures for `scope`, and the per-user lines when `with_users`.
pub fn report(
    db: &dyn Db,
    scope: Scope<'_>,
    windows: &Windows,
    with_users: bool,
) -> Result<(Figures, Option<Vec<UserFigures>>), DbError> {
    // ?1: first minute bucket, ?2: first hour bucket, ?3: the user (scope User only).
    let (f, user) = match scope {
        Scope::User(id) => (" AND user_id = ?3", Some(Value::from(id))),
        Scope::All => ("", None),
    };
    let activity = super::activity_sums();
    let windows_filter =
        format!("((span = 'minute' AND bucket >= ?1) OR (span = 'hour' AND bucket >= ?2)){f}");
    let mut parts = vec![
        select(
            "act",
            &["'stored'"],
            &activity,
            &format!("FROM stats_activity WHERE span = 'stored' AND bucket = ''{f}"),
        ),
        select(
            "act",
            &["'hour'"],
            &activity,
            &format!("FROM stats_activity WHERE span = 'hour' AND bucket >= ?2{f}"),
        ),
        select(
            "term",
            &[],
            &strings(&["count(*)"]),
            &format!("FROM terminal_sessions WHERE status = 'active'{f}"),
        ),
        select(
            "llm",
            &["span", "provider_id", "model_name"],
            &llm_sums(),
            &format!(
                "FROM stats_llm WHERE {windows_filter} GROUP BY span, provider_id, model_name"
            ),
        ),
        select(
            "err",
            &["span", "provider_id", "model_name", "code"],
            &strings(&["sum(n)"]),
            &format!(
                "FROM stats_llm_errors WHERE {windows_filter} GROUP BY span, provider_id, model_name, code"
            ),
        ),
        select("prov", &["id", "name"], &[], "FROM llm_providers"),
    ];
    if with_users {
        parts.extend([
            select(
                "u",
                &["id", "username"],
                &strings(&["rank"]),
                &format!(
                    "FROM (SELECT id, username, row_number() OVER (ORDER BY username_norm) AS rank FROM users)
                     WHERE rank <= {MAX_USERS_IN_BREAKDOWN}"
                ),
            ),
            select(
                "ua",
                &["user_id"],
                &strings(&[
                    "conversations",
                    "messages",
                    "memories",
                    "terminal_sessions",
                    "terminal_commands",
                ]),
                "FROM stats_activity WHERE span = 'stored' AND bucket = ''",
            ),
            select(
                "um",
                &["user_id"],
                &strings(&["sum(messages)"]),
                "FROM stats_activity WHERE span = 'hour' AND bucket >= ?2 GROUP BY user_id",
            ),
            select(
                "ul",
                &["user_id"],
                &strings(&[
                    "sum(calls)",
                    "sum(errors)",
                    "sum(prompt_tokens) + sum(completion_tokens)",
                    "total(cost)",
                ]),
                "FROM stats_llm WHERE span = 'hour' AND bucket >= ?2 GROUP BY user_id",
            ),
            select(
                "ut",
                &["user_id"],
                &strings(&["count(*)"]),
                "FROM terminal_sessions WHERE status = 'active' GROUP BY user_id",
            ),
        ]);
    }
    let mut params: Vec<Value> = vec![
        windows.minute_since.clone().into(),
        windows.hour_since.clone().into(),
    ];
    params.extend(user);
    let rows = db.query(&parts.join("\nUNION ALL\n"), &params)?;
    decode(&rows, windows, with_users)
}

fn decode(
    rows: &Rows,
    windows: &Windows,
    with_users: bool,
) -> Result<(Figures, Option<Vec<UserFigures>>), DbError> {
    let mut figures = Figures::default();
    let mut llm: Vec<((String, String, String), super::LlmFigures)> = Vec::new();
    let mut errors = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut users: Vec<(i64, UserFigures)> = Vec::new();
    let mut per_user: Vec<Row<'_>> = Vec::new();
    for row in rows.iter() {
        match row.text(0)?.as_str() {
            "act" => {
                let [c, m, k, s, x] = five(&row, FIRST_NUM)?;
                let (chat, terminal) = (&mut figures.chat, &mut figures.terminal);
                if row.text(1)? == "stored" {
                    (chat.conversations.total, chat.messages.total) = (c, m);
                    chat.memories.total = k;
                    (terminal.sessions_total, terminal.commands_total) = (s, x);
                } else {
                    (chat.conversations.last_24h, chat.messages.last_24h) = (c, m);
                    chat.memories.last_24h = k;
                    (terminal.sessions_last_24h, terminal.commands_last_24h) = (s, x);
                }
            }
            "term" => figures.terminal.sessions_active = row.int(FIRST_NUM)?,
            "llm" => llm.push((
                (row.text(1)?, row.text(2)?, row.text(3)?),
                llm_row(&row, FIRST_NUM)?,
            )),
            "err" => errors.push((
                (row.text(1)?, row.text(2)?, row.text(3)?),
                row.text(4)?,
                row.int(FIRST_NUM)?,
            )),
            "prov" => {
                names.insert(row.text(1)?, row.text(2)?);
            }
            "u" => users.push((
                row.int(FIRST_NUM)?,
                UserFigures {
                    user_id: row.text(1)?,
                    username: row.text(2)?,
                    ..UserFigures::default()
                },
            )),
            _ => per_user.push(row),
        }
    }
    figures.llm = llm_windows(llm, errors, &names, windows);
    let lines = with_users
        .then(|| user_lines(users, &per_user))
        .transpose()?;
    Ok((figures, lines))
}

type LlmKey = (String, String, String);

fn llm_windows(
    mut llm: Vec<(LlmKey, super::LlmFigures)>,
    errors: Vec<(LlmKey, String, i64)>,
    names: &HashMap<String, String>,
    windows: &Windows,
) -> LlmActivity {
    for (key, code, n) in errors {
        if let Some((_, f)) = llm.iter_mut().find(|(k, _)| *k == key) {
            f.errors_by_code.insert(code, n);
        }
    }
    llm.sort_by(|a, b| a.0.cmp(&b.0));
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
    for ((span, provider_id, model), figures) in llm {
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
    activity
}

fn user_lines(
    mut users: Vec<(i64, UserFigures)>,
    rows: &[Row<'_>],
) -> Result<Vec<UserFigures>, DbError> {
    users.sort_by_key(|(rank, _)| *rank);
    let mut lines: Vec<UserFigures> = users.into_iter().map(|(_, u)| u).collect();
    let index: HashMap<String, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, u)| (u.user_id.clone(), i))
        .collect();
    for row in rows {
        let Some(&i) = index.get(&row.text(1)?) else {
            continue;
        };
        let u = &mut lines[i];
        match row.text(0)?.as_str() {
            "ua" => {
                let [c, m, k, s, x] = five(row, FIRST_NUM)?;
                (u.conversations, u.messages, u.memories) = (c, m, k);
                (u.terminal_sessions_total, u.terminal_commands) = (s, x);
            }
            "um" => u.messages_last_24h = row.int(FIRST_NUM)?,
            "ul" => {
                u.llm_calls_last_24h = row.int(FIRST_NUM)?;
                u.llm_errors_last_24h = row.int(FIRST_NUM + 1)?;
                u.llm_tokens_last_24h = row.int(FIRST_NUM + 2)?;
                u.llm_cost_usd_last_24h = row.real(FIRST_NUM + 3)?;
            }
            "ut" => u.terminal_sessions_active = row.int(FIRST_NUM)?,
            _ => {}
        }
    }
    Ok(lines)
}
