//! Fills a benchmark database straight through its file (the triggers index and count
//! the rows exactly as they would for rows written through the API): messages in
//! conversations of 1,000, optionally with an LLM ledger row for every reply.

use std::time::Duration;

/// What to insert.
pub struct Seed<'a> {
    /// Owners, in turn per conversation.
    pub users: &'a [String],
    /// Index of the first message (continues an earlier seed).
    pub start: usize,
    /// Messages to insert.
    pub count: usize,
    /// The timestamp of message `n`.
    pub at: &'a dyn Fn(usize) -> String,
    /// Also record one `llm_usage` row per reply.
    pub ledger: bool,
}

const WORDS: [&str; 10] = [
    "deploy",
    "kubernetes",
    "rust",
    "memory",
    "latency",
    "budget",
    "terminal",
    "search",
    "vector",
    "cache",
];

/// Inserts the messages in transactions of one conversation each.
pub async fn messages(db_path: &std::path::Path, seed: &Seed<'_>) -> anyhow::Result<()> {
    let db = libsql::Builder::new_local(db_path).build().await?;
    let conn = db.connect()?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mut i = seed.start;
    let end_all = seed.start + seed.count;
    while i < end_all {
        conn.execute("BEGIN IMMEDIATE", ()).await?;
        let conv_n = i / 1000;
        let conv = format!("00000000-0000-4000-8000-{conv_n:012x}");
        let user = &seed.users[conv_n % seed.users.len()];
        let ts = (seed.at)(i);
        conn.execute(
            "INSERT OR IGNORE INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            libsql::params![conv.clone(), user.as_str(), format!("seeded {conv_n}"), ts],
        )
        .await?;
        let end = (i + 1000).min(end_all);
        for n in i..end {
            let text = format!(
                "message {n} about {} and {} with some ordinary words",
                WORDS[n % 10],
                WORDS[(n / 10) % 10]
            );
            let at = (seed.at)(n);
            let reply = n % 2 == 1;
            conn.execute(
                "INSERT INTO chat_messages (id, user_id, conversation_id, seq, sender, message_content, timestamp, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'complete')",
                libsql::params![format!("m-{n}"), user.as_str(), conv.clone(), (n % 1000 + 1) as i64, if reply { "llm" } else { "user" }, text, at.clone()],
            )
            .await?;
            if seed.ledger && reply {
                let outcome = if n % 50 == 1 { "rate_limited" } else { "ok" };
                conn.execute(
                    "INSERT INTO llm_usage (id, user_id, model_id, provider_id, model_name, prompt_tokens,
                                            completion_tokens, cost, latency_ms, outcome, streamed, created_at)
                     VALUES (?1, ?2, NULL, 'seeded-provider', ?3, 120, 80, 0.0004, ?4, ?5, 0, ?6)",
                    libsql::params![format!("u-{n}"), user.as_str(), if n % 3 == 0 { "model-a" } else { "model-b" },
                                    (200 + (n * 7919) % 3000) as f64, outcome, at],
                )
                .await?;
            }
        }
        conn.execute("COMMIT", ()).await?;
        i = end;
    }
    Ok(())
}
