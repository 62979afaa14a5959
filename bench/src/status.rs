//! Status benchmarks: `GET /api/arcana/status` (a user's own figures, and an admin's
//! with every user's line) and `GET /metrics`, with 1k and then 1M stored messages and
//! an LLM ledger row per reply, spread over 30 days and ten users; each against
//! `GET /api/health` measured in the same run.

use std::time::Duration;

use arcana_tests::backend::Backend;
use arcana_tests::{TEST_METRICS_TOKEN, client};
use serde_json::{Value, json};

use crate::latency::p50_p99;

/// Options of the status benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Requests per measurement.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Messages in the large database.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Messages seeded per database when measuring what the triggers cost writers.
    #[arg(long, default_value_t = 20_000)]
    write_cost_messages: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/status.json")]
    out: String,
}

/// Seconds to seed `count` messages (with ledger rows) into a fresh database that has
/// `migrations` applied, in WAL mode as the runner opens it.
async fn seed_time(
    migrations: &[arcana_core::migrations::EmbeddedMigration],
    count: usize,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("write-cost.db");
    {
        let db = libsql::Builder::new_local(&path).build().await?;
        let conn = db.connect()?;
        let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await?;
        while rows.next().await?.is_some() {}
        for m in migrations {
            conn.execute_batch(m.sql).await?;
        }
        conn.execute(
            "INSERT INTO users (id, username, username_norm, password_hash, role, created_at, updated_at)
             VALUES ('write-cost-user', 'w', 'w', 'x', 'user', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            (),
        )
        .await?;
    }
    let users = ["write-cost-user".to_string()];
    let at = |_| arcana_core::time::now_string();
    let seed = crate::seed::Seed {
        users: &users,
        start: 0,
        count,
        at: &at,
        ledger: true,
    };
    let started = std::time::Instant::now();
    crate::seed::messages(&path, &seed).await?;
    Ok(started.elapsed().as_secs_f64())
}

/// What the aggregate triggers cost writers: seeding the same messages with and without
/// migration 0005, alternately, three times each.
async fn write_cost(count: usize) -> anyhow::Result<serde_json::Value> {
    let all = arcana_core::migrations::ALL;
    let stats = all
        .iter()
        .position(|m| m.file_name == "0005_stats.sql")
        .ok_or_else(|| anyhow::anyhow!("no 0005_stats.sql"))?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(seed_time(&all[..stats], count).await?);
        with.push(seed_time(all, count).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut without), median(&mut with));
    println!(
        "write cost: {count} messages + ledger rows in {:.2} s without the stats triggers, {:.2} s with ({:.2}x)",
        a,
        b,
        b / a
    );
    Ok(
        json!({"messages": count, "seconds_without_stats": a, "seconds_with_stats": b, "ratio": b / a}),
    )
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut results = serde_json::Map::new();
    results.insert(
        "write_cost".into(),
        write_cost(args.write_cost_messages).await?,
    );
    let env = Backend::start().await;
    let http = client();
    let mut users = Vec::new();
    let mut user_token = String::new();
    for i in 0..10 {
        let token = if i == 0 {
            env.admin.clone()
        } else {
            env.user(&format!("user{i}"), &["terminal"]).await
        };
        users.push(arcana_tests::user_id(&env.runner, &token).await);
        if i == 1 {
            user_token = token;
        }
    }
    let now = arcana_core::time::now();
    let month = 30 * 86_400;
    let at = move |n: usize| {
        let ago = (n as i64).wrapping_mul(7919).rem_euclid(month);
        arcana_core::time::format(now - time::Duration::seconds(ago))
    };

    let n = args.requests;
    let mut seeded = 0;
    for total in [1_000usize, args.messages] {
        let started = std::time::Instant::now();
        let seed = crate::seed::Seed {
            users: &users,
            start: seeded,
            count: total - seeded,
            at: &at,
            ledger: true,
        };
        crate::seed::messages(&env.runner.db_path(), &seed).await?;
        println!(
            "seeded {} messages in {:.1} s",
            total - seeded,
            started.elapsed().as_secs_f64()
        );
        seeded = total;
        let get = |path: &str, token: &str| crate::latency::get(&http, env.runner.at(path), token);
        let health = p50_p99(n, get("/api/health", "")).await?;
        let own = p50_p99(n, get("/api/arcana/status", &user_token)).await?;
        let all = p50_p99(n, get("/api/arcana/status", &env.admin)).await?;
        let metrics = p50_p99(n, get("/metrics", TEST_METRICS_TOKEN)).await?;
        let status: Value = http
            .get(env.runner.at("/api/arcana/status"))
            .bearer_auth(&env.admin)
            .send()
            .await?
            .json()
            .await?;
        println!(
            "{total:>8} messages (status counts {}, {} LLM calls in 24 h) | health p50 {:.2} ms | own status p50 {:.2} ms ({:.2}x) p99 {:.2} | admin status p50 {:.2} ms ({:.2}x) p99 {:.2} | /metrics p50 {:.2} ms ({:.2}x)",
            status["chat"]["messages"]["total"],
            status["llm"]["last_24h"]["calls"],
            health.0,
            own.0,
            own.0 / health.0,
            own.1,
            all.0,
            all.0 / health.0,
            all.1,
            metrics.0,
            metrics.0 / health.0,
        );
        results.insert(
            total.to_string(),
            json!({"health_p50_ms": health.0, "health_p99_ms": health.1,
                   "own_status_p50_ms": own.0, "own_status_p99_ms": own.1, "own_status_ratio": own.0 / health.0,
                   "admin_status_p50_ms": all.0, "admin_status_p99_ms": all.1, "admin_status_ratio": all.0 / health.0,
                   "metrics_p50_ms": metrics.0, "metrics_p99_ms": metrics.1, "metrics_ratio": metrics.0 / health.0,
                   "messages_reported": status["chat"]["messages"]["total"]}),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
