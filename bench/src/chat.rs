//! Chat benchmarks: the latency of `GET /api/chat/history/{id}`, `GET
//! /api/chat/conversations` and `GET /api/chat/search` with 1k and then 100k stored
//! messages (each against `GET /api/health` measured in the same run), and the
//! overhead of `POST /api/chat` over calling the provider stand-in directly.

use arcana_tests::backend::Backend;
use arcana_tests::client;

use crate::latency::p50_p99;
use serde_json::{Value, json};

/// Options of the chat benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Requests per measurement.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Messages in the large database.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/chat.json")]
    out: String,
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let env = Backend::start().await;
    let (runner, stand_in, token) = (&env.runner, &env.stand_in, env.admin.clone());
    let http = client();
    let user_id = arcana_tests::user_id(runner, &token).await;
    let provider = env.openai_provider().await;
    env.model(&provider, "bench-model", true).await;

    let n = args.requests;
    let target = "00000000-0000-4000-8000-000000000000";
    let mut results = serde_json::Map::new();
    let mut seeded = 0;
    for total in [1_000usize, args.messages] {
        crate::seed::messages_of(&runner.db_path(), &user_id, seeded, total).await?;
        seeded = total;
        let get = |path: String| crate::latency::get(&http, runner.at(&path), &token);
        let health = p50_p99(n, get("/api/health".into())).await?;
        let history = p50_p99(n, get(format!("/api/chat/history/{target}?limit=50"))).await?;
        let conversations = p50_p99(n, get("/api/chat/conversations?limit=50".into())).await?;
        let search = p50_p99(
            n,
            get("/api/chat/search?q=kubernetes%20latency&limit=20".into()),
        )
        .await?;
        println!(
            "{total:>7} messages | health p50 {:.2} ms | history p50 {:.2} ms ({:.2}x) p99 {:.2} | conversations p50 {:.2} ms ({:.2}x) | search p50 {:.2} ms ({:.2}x) p99 {:.2}",
            health.0,
            history.0,
            history.0 / health.0,
            history.1,
            conversations.0,
            conversations.0 / health.0,
            search.0,
            search.0 / health.0,
            search.1
        );
        results.insert(
            total.to_string(),
            json!({"health_p50_ms": health.0, "history_p50_ms": history.0, "history_p99_ms": history.1,
                   "conversations_p50_ms": conversations.0, "conversations_p99_ms": conversations.1,
                   "search_p50_ms": search.0, "search_p99_ms": search.1,
                   "history_ratio": history.0 / health.0, "conversations_ratio": conversations.0 / health.0, "search_ratio": search.0 / health.0}),
        );
    }

    // POST /api/chat against the provider stand-in called directly with the same prompt.
    let chat_n = (n / 2).max(10);
    let direct = {
        let http = http.clone();
        let url = format!("{}/v1/chat/completions", stand_in.url());
        p50_p99(chat_n, async || {
            http.post(&url).json(&json!({"model": "bench-model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 256}))
                .send().await.map(|r| r.status().as_u16()).unwrap_or(599)
        }).await?
    };
    let conv: Value = http
        .post(runner.at("/api/chat/conversations"))
        .bearer_auth(&token)
        .json(&json!({"title": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let conv_id = conv["id"].as_str().unwrap_or_default().to_string();
    let via = {
        let http = http.clone();
        let url = runner.at("/api/chat");
        p50_p99(chat_n, async || {
            http.post(&url)
                .bearer_auth(&token)
                .json(&json!({"conversation_id": conv_id, "message": "hello", "use_memory": false}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or_else(|e| {
                    eprintln!("POST /api/chat failed: {e}");
                    599
                })
        })
        .await?
    };
    println!(
        "POST /api/chat p50 {:.2} ms p99 {:.2} ms | stand-in direct p50 {:.2} ms | overhead p50 {:.2} ms ({:.1}x)",
        via.0,
        via.1,
        direct.0,
        via.0 - direct.0,
        via.0 / direct.0
    );
    results.insert("chat".into(), json!({"post_chat_p50_ms": via.0, "post_chat_p99_ms": via.1, "direct_p50_ms": direct.0, "overhead_p50_ms": via.0 - direct.0}));
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
