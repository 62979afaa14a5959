//! Semantic memory and search, each figure against a baseline measured in the same run:
//!
//! - embedding one short text, host-side: `POST /probe/embed` on the probe component
//!   against `GET /probe/var` (the same component, no embedding), on the runner and, when
//!   installed, on real Spin;
//! - memory selection: `GET /api/arcana/context-memory/search` with 10 and then 1,000
//!   memories, against `GET /api/health`;
//! - message search, `mode=semantic` and `mode=hybrid` (and `keyword` for reference), at
//!   1k and then `--messages` (100k) messages, with libSQL's vector index and then
//!   without it (exact ranking in libSQL); message vectors are seeded (random unit
//!   vectors: ranking cost does not depend on what they mean), the query is embedded by
//!   the model;
//! - `POST /api/chat` with semantic memory on against off (two runners, alternating).

use arcana_tests::backend::Backend;
use arcana_tests::{Host, Runner, RunnerOptions, client, repo_root};
use serde_json::{Value, json};

use crate::latency::p50_p99;

/// Options of the semantic benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Requests per measurement.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// Messages in the large database.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/semantic.json")]
    out: String,
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut results = serde_json::Map::new();
    results.insert("embedding".into(), embedding(args.requests).await?);
    let env = Backend::start().await;
    let provider = env.openai_provider().await;
    env.model(&provider, "bench-model", true).await;
    results.insert(
        "memory_search".into(),
        memory_search(&env, args.requests).await?,
    );
    results.insert(
        "message_search".into(),
        message_search(&env, args.requests, args.messages).await?,
    );
    drop(env);
    results.insert("chat".into(), chat(args.requests).await?);
    crate::write_results(&args.out, &Value::Object(results))
}

fn probe(host: Host) -> Option<Runner> {
    if host == Host::Spin && arcana_tests::host::spin_binary().is_none() {
        println!("no Spin binary: the Spin column is skipped");
        return None;
    }
    Some(Runner::start_with(
        RunnerOptions {
            manifest: repo_root().join("tests/probe/spin.toml"),
            host,
            ..Default::default()
        }
        .env("SPIN_VARIABLE_NEEDS_ENV", "set"),
    ))
}

/// One short text's embedding through Spin's LLM interface, minus the same request
/// without it.
async fn embedding(n: usize) -> anyhow::Result<Value> {
    let http = client();
    let mut out = serde_json::Map::new();
    for host in [Host::Runner, Host::Spin] {
        let Some(runner) = probe(host) else { continue };
        let url = runner.at("/probe/embed");
        let body = json!({"texts": ["what should I feed my cat tonight?"]});
        // The model loads on first use: not part of the figure.
        http.post(&url)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let (h, u) = (http.clone(), url.clone());
        let embed = p50_p99(n, async || {
            h.post(&u)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(599)
        })
        .await?;
        let base = p50_p99(
            n,
            crate::latency::get(&http, runner.at("/probe/var?name=message"), ""),
        )
        .await?;
        println!(
            "embedding one short text on {:6} | p50 {:.2} ms, p99 {:.2} ms | baseline request p50 {:.2} ms | embedding alone ~{:.2} ms",
            host.name(),
            embed.0,
            embed.1,
            base.0,
            embed.0 - base.0
        );
        out.insert(
            host.name().into(),
            json!({"p50_ms": embed.0, "p99_ms": embed.1, "baseline_p50_ms": base.0,
                   "embedding_p50_ms": embed.0 - base.0}),
        );
    }
    Ok(Value::Object(out))
}

/// Memory search (embed the query, rank the caller's memories) at 10 and 1,000.
async fn memory_search(env: &Backend, n: usize) -> anyhow::Result<Value> {
    let http = client();
    let mut out = serde_json::Map::new();
    let mut stored = 0;
    for total in [10usize, 1_000] {
        for i in stored..total {
            let resp = http
                .post(env.runner.at("/api/arcana/context-memory"))
                .bearer_auth(&env.admin)
                .json(&json!({"key": format!("fact_{i}"), "value": format!("fact number {i}: the user likes topic {}", i % 37)}))
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "memory {i}: {}", resp.status());
        }
        stored = total;
        let get = |path: &str| crate::latency::get(&http, env.runner.at(path), &env.admin);
        let health = p50_p99(n, get("/api/health")).await?;
        let search = p50_p99(
            n,
            get("/api/arcana/context-memory/search?q=which%20topics%20does%20the%20user%20like&limit=10"),
        )
        .await?;
        println!(
            "{total:>5} memories | memory search p50 {:.2} ms ({:.1}x health) p99 {:.2} ms | health p50 {:.2} ms",
            search.0,
            search.0 / health.0,
            search.1,
            health.0
        );
        out.insert(
            total.to_string(),
            json!({"search_p50_ms": search.0, "search_p99_ms": search.1, "health_p50_ms": health.0}),
        );
    }
    Ok(Value::Object(out))
}

/// Seeds `count` message vectors (random unit vectors) for messages `m-start..`.
async fn seed_vectors(
    db: &std::path::Path,
    user: &str,
    start: usize,
    count: usize,
) -> anyhow::Result<()> {
    let config = arcana_db::DatabaseConfig::Local {
        path: db.to_path_buf(),
    };
    let pool = arcana_db::Pool::open(&config, 1).await?;
    let conn = pool.get().await?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ start as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for chunk in (start..start + count).collect::<Vec<_>>().chunks(1000) {
        conn.query_all("BEGIN IMMEDIATE", vec![]).await?;
        for n in chunk {
            let mut v: Vec<f32> = (0..384).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            conn.query_all(
                "INSERT INTO vectors (item_kind, item_id, user_id, model, dim, vector, created_at)
                 VALUES ('message', ?1, ?2, 'spin:all-minilm-l6-v2', 384, ?3, '2026-01-01T00:00:00.000Z')",
                vec![format!("m-{n}").into(), user.to_string().into(), libsql::Value::Blob(blob)],
            )
            .await?;
        }
        conn.query_all("COMMIT", vec![]).await?;
    }
    Ok(())
}

/// Message search at 1k and `large` messages, with the vector index and without.
async fn message_search(env: &Backend, n: usize, large: usize) -> anyhow::Result<Value> {
    let user = arcana_tests::user_id(&env.runner, &env.admin).await;
    let db = env.runner.db_path();
    let mut out = serde_json::Map::new();
    let mut seeded = 0;
    for total in [1_000usize, large] {
        let started = std::time::Instant::now();
        crate::seed::messages_of(&db, &user, seeded, total).await?;
        seed_vectors(&db, &user, seeded, total - seeded).await?;
        println!(
            "seeded {total} messages with vectors in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        seeded = total;
        out.insert(total.to_string(), search_figures(env, n, total).await?);
    }
    // Without the index: libSQL ranks every vector of the caller exactly.
    let config = arcana_db::DatabaseConfig::Local { path: db.clone() };
    let pool = arcana_db::Pool::open(&config, 1).await?;
    let conn = pool.get().await?;
    conn.query_all("DROP TABLE message_vector_index", vec![])
        .await?;
    out.insert(
        format!("{large}_without_index"),
        search_figures(env, n, large).await?,
    );
    Ok(Value::Object(out))
}

async fn search_figures(env: &Backend, n: usize, total: usize) -> anyhow::Result<Value> {
    let http = client();
    let get = |path: &str| crate::latency::get(&http, env.runner.at(path), &env.admin);
    let q = "q=kubernetes%20latency%20problems&limit=20";
    let ranked: Value = http
        .get(
            env.runner
                .at(&format!("/api/chat/search?{q}&mode=semantic")),
        )
        .bearer_auth(&env.admin)
        .send()
        .await?
        .json()
        .await?;
    let ranked_by = ranked["ranked_by"].as_str().unwrap_or("?").to_string();
    let health = p50_p99(n, get("/api/health")).await?;
    let keyword = p50_p99(n, get(&format!("/api/chat/search?{q}&mode=keyword"))).await?;
    let semantic = p50_p99(n, get(&format!("/api/chat/search?{q}&mode=semantic"))).await?;
    let hybrid = p50_p99(n, get(&format!("/api/chat/search?{q}&mode=hybrid"))).await?;
    println!(
        "{total:>7} messages, ranked by {ranked_by:8} | semantic p50 {:.2} ms ({:.1}x health) p99 {:.2} | hybrid p50 {:.2} ms ({:.1}x) p99 {:.2} | keyword p50 {:.2} ms | health {:.2} ms",
        semantic.0,
        semantic.0 / health.0,
        semantic.1,
        hybrid.0,
        hybrid.0 / health.0,
        hybrid.1,
        keyword.0,
        health.0
    );
    Ok(json!({"ranked_by": ranked_by, "health_p50_ms": health.0,
              "keyword_p50_ms": keyword.0, "semantic_p50_ms": semantic.0, "semantic_p99_ms": semantic.1,
              "hybrid_p50_ms": hybrid.0, "hybrid_p99_ms": hybrid.1}))
}

/// `POST /api/chat` (stand-in provider) with 20 memories: semantic memory on, off
/// (`semantic_memory=false`: memories in key order, messages still embedded), and with
/// no embedding model at all; three runners, alternating.
async fn chat(n: usize) -> anyhow::Result<Value> {
    let empty = tempfile::tempdir()?;
    let db = tempfile::tempdir()?;
    let no_model_rc = format!(
        "state_dir = \"{}\"\n[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
        empty.path().display(),
        db.path().join("arcana.db").display()
    );
    let variants = [
        ("semantic memory on", Backend::start().await),
        (
            "semantic memory off",
            Backend::start_with(
                RunnerOptions::default().env("SPIN_VARIABLE_SEMANTIC_MEMORY", "false"),
            )
            .await,
        ),
        (
            "no embedding model",
            Backend::start_with(
                RunnerOptions {
                    runtime_config: Some(no_model_rc),
                    ..Default::default()
                }
                .env("ARCANA_NO_MODEL_INSTALL", "true"),
            )
            .await,
        ),
    ];
    let http = client();
    for (_, env) in &variants {
        let provider = env.openai_provider().await;
        env.model(&provider, "bench-model", true).await;
        for i in 0..20 {
            http.post(env.runner.at("/api/arcana/context-memory"))
                .bearer_auth(&env.admin)
                .json(&json!({"key": format!("fact_{i}"), "value": format!("the user likes topic {i}")}))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let post = |env: &Backend| {
        let (http, url, token) = (http.clone(), env.runner.at("/api/chat"), env.admin.clone());
        async move || {
            http.post(&url)
                .bearer_auth(&token)
                .json(&json!({"message": "which topic should we talk about today?"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(599)
        }
    };
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    // Alternating rounds, so that all see the same machine.
    for _ in 0..5 {
        for (i, (_, env)) in variants.iter().enumerate() {
            rounds[i].push(p50_p99((n / 5).max(5), post(env)).await?.0);
        }
    }
    let p50: Vec<f64> = rounds
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    let base = p50[2];
    let mut out = serde_json::Map::new();
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "POST /api/chat, 20 memories, {name:20} | p50 {:.2} ms | {:.2}x no model (+{:.2} ms)",
            p50[i],
            p50[i] / base,
            p50[i] - base
        );
        out.insert(
            (*name).into(),
            json!({"p50_ms": p50[i], "ratio_to_no_model": p50[i] / base}),
        );
    }
    Ok(Value::Object(out))
}
