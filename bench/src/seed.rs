//! Fills a benchmark database straight through its file, with the runner's own
//! connection pool and statement cache (the triggers index and count the rows exactly
//! as they would for rows written through the API): messages in conversations of
//! 1,000, optionally with an LLM ledger row for every reply.

use libsql::Value;

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
    let config = arcana_db::DatabaseConfig::Local {
        path: db_path.to_path_buf(),
    };
    let pool = arcana_db::Pool::open(&config, 1).await?;
    let conn = pool.get().await?;
    let run = async |sql: &str, params: Vec<Value>| conn.query_all(sql, params).await.map(|_| ());
    let mut i = seed.start;
    let end_all = seed.start + seed.count;
    while i < end_all {
        run("BEGIN IMMEDIATE", vec![]).await?;
        let conv_n = i / 1000;
        let conv = format!("00000000-0000-4000-8000-{conv_n:012x}");
        let user = &seed.users[conv_n % seed.users.len()];
        let ts = (seed.at)(i);
        run(
            "INSERT OR IGNORE INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            vec![conv.clone().into(), user.clone().into(), format!("seeded {conv_n}").into(), ts.into()],
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
            run(
                "INSERT INTO chat_messages (id, user_id, conversation_id, seq, sender, message_content, timestamp, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'complete')",
                vec![format!("m-{n}").into(), user.clone().into(), conv.clone().into(), ((n % 1000 + 1) as i64).into(),
                     (if reply { "llm" } else { "user" }).into(), text.into(), at.clone().into()],
            )
            .await?;
            if seed.ledger && reply {
                let outcome = if n % 50 == 1 { "rate_limited" } else { "ok" };
                run(
                    "INSERT INTO llm_usage (id, user_id, model_id, provider_id, model_name, prompt_tokens,
                                            completion_tokens, cost, latency_ms, outcome, streamed, created_at)
                     VALUES (?1, ?2, NULL, 'seeded-provider', ?3, 120, 80, 0.0004, ?4, ?5, 0, ?6)",
                    vec![format!("u-{n}").into(), user.clone().into(), (if n % 3 == 0 { "model-a" } else { "model-b" }).into(),
                         ((200 + (n * 7919) % 3000) as f64).into(), outcome.into(), at.into()],
                )
                .await?;
            }
        }
        run("COMMIT", vec![]).await?;
        i = end;
    }
    Ok(())
}

/// Messages `from..to` of one user (continuing an earlier call), all at one time, no
/// ledger: the search and history benchmarks' corpus.
pub async fn messages_of(
    db_path: &std::path::Path,
    user: &str,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let users = [user.to_string()];
    let seed = Seed {
        users: &users,
        start: from,
        count: to - from,
        at: &|_| "2026-01-01T00:00:00.000Z".to_string(),
        ledger: false,
    };
    messages(db_path, &seed).await
}
