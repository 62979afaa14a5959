//! The same components served by real `spin up` and by `arcana up`, on the same
//! machine, loaded alternately in one run: `GET /api/health`, `GET /api/auth/me`,
//! `GET /api/chat/history/{id}` and `POST /api/chat` (against the provider stand-in).
//! Reports req/s and p50/p99 per host and their ratios, plus the SQL statements each
//! endpoint runs (counted by the runner; on a remote database each is a round trip).

use std::sync::Arc;
use std::time::Duration;

use arcana_tests::backend::Backend;
use arcana_tests::host::spin_binary;
use arcana_tests::{Host, RunnerOptions, call};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::load;

/// Options of the hosts benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 3)]
    secs: u64,
    /// Rounds per endpoint and host (the hosts alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/hosts.json")]
    out: String,
}

/// One host, ready to be loaded.
struct Served {
    host: Host,
    env: Backend,
    token: String,
    conversation: String,
}

async fn serve(host: Host) -> anyhow::Result<Served> {
    let mut opts = RunnerOptions {
        host,
        ..Default::default()
    };
    if host == Host::Runner {
        // JSON access lines carry the statement count per request.
        opts = opts.args(&["--log-format", "json"]);
    }
    let env = Backend::start_with(opts).await;
    let p = env.openai_provider().await;
    env.model(&p, "bench-model", true).await;
    let token = env.admin.clone();
    let (code, reply) = call(
        &env.runner,
        "POST",
        "/api/chat",
        &token,
        Some(json!({"message": "a conversation to read"})),
    )
    .await;
    anyhow::ensure!(code == 200, "seeding chat failed: {reply}");
    let conversation = reply["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for i in 0..24 {
        call(
            &env.runner,
            "POST",
            "/api/chat",
            &token,
            Some(json!({"conversation_id": conversation, "message": format!("turn {i}")})),
        )
        .await;
    }
    Ok(Served {
        host,
        env,
        token,
        conversation,
    })
}

/// The four endpoints, as load targets for `s`.
fn targets(s: &Served) -> Vec<(&'static str, load::Target)> {
    let auth = Some(format!("Bearer {}", s.token));
    vec![
        ("GET /api/health", load::Target::get("/api/health", None)),
        (
            "GET /api/auth/me",
            load::Target::get("/api/auth/me", auth.clone()),
        ),
        (
            "GET /api/chat/history/{id}",
            load::Target::get(
                &format!("/api/chat/history/{}?limit=50", s.conversation),
                auth.clone(),
            ),
        ),
        (
            "POST /api/chat",
            load::Target {
                path: "/api/chat".into(),
                authorization: auth,
                // A new conversation each time, so the prompt does not grow over the run.
                body: Some(Bytes::from_static(br#"{"message":"benchmark question"}"#)),
            },
        ),
    ]
}

/// SQL statements per request of each endpoint, from the runner's access lines.
async fn statement_counts(s: &Served) -> anyhow::Result<Value> {
    let mut counts = serde_json::Map::new();
    for (name, target) in targets(s) {
        let id = format!("count-{}", name.replace(['/', ' ', '{', '}'], "-"));
        let http = arcana_tests::client();
        let mut req = if target.body.is_some() {
            http.post(s.env.runner.at(&target.path))
                .header("content-type", "application/json")
                .body(target.body.clone().unwrap_or_default())
        } else {
            http.get(s.env.runner.at(&target.path))
        };
        if let Some(a) = &target.authorization {
            req = req.header("authorization", a);
        }
        req.header("x-request-id", &id).send().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let count = s
            .env
            .runner
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["request_id"] == id.as_str() && l["target"] == "arcana::access")
            .map(|l| l["db_statements"].clone())
            .unwrap_or(Value::Null);
        counts.insert(name.to_string(), count);
    }
    Ok(Value::Object(counts))
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut hosts = vec![serve(Host::Runner).await?];
    if spin_binary().is_some() {
        hosts.push(serve(Host::Spin).await?);
    } else {
        println!("SKIPPED: no Spin binary; measuring the runner only");
    }
    let mut stats: Vec<Vec<load::Stats>> = hosts
        .iter()
        .map(|_| (0..4).map(|_| load::Stats::default()).collect())
        .collect();
    for _ in 0..args.rounds {
        for endpoint in 0..4 {
            for (served, per_endpoint) in hosts.iter().zip(stats.iter_mut()) {
                let addr = served
                    .env
                    .runner
                    .url
                    .trim_start_matches("http://")
                    .parse()?;
                let target = Arc::new(targets(served).remove(endpoint).1);
                let run = load::run(
                    addr,
                    target,
                    args.connections,
                    Duration::from_secs(args.secs),
                )
                .await?;
                per_endpoint[endpoint].merge(run);
            }
        }
    }
    let names: Vec<&str> = targets(&hosts[0]).iter().map(|(n, _)| *n).collect();
    let mut rows = Vec::new();
    println!(
        "{} connections, {} rounds of {} s per endpoint and host, alternating",
        args.connections, args.rounds, args.secs
    );
    for (e, name) in names.iter().enumerate() {
        let mut row = json!({"endpoint": name});
        let mut line = format!("{name:<28}");
        for (h, served) in hosts.iter().enumerate() {
            let s = &stats[h][e];
            let host = served.host.name();
            row[format!("{host}_rps")] = json!(s.rps());
            row[format!("{host}_p50_ms")] = json!(s.percentile(50.0));
            row[format!("{host}_p99_ms")] = json!(s.percentile(99.0));
            row[format!("{host}_errors")] = json!(s.errors);
            line.push_str(&format!(
                " | {host} {:>7.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms",
                s.rps(),
                s.percentile(50.0),
                s.percentile(99.0)
            ));
        }
        if hosts.len() == 2 {
            let (r, sp) = (&stats[0][e], &stats[1][e]);
            row["spin_to_runner_rps"] = json!(sp.rps() / r.rps());
            row["spin_to_runner_p50"] = json!(sp.percentile(50.0) / r.percentile(50.0));
            line.push_str(&format!(
                " | spin/runner req/s {:.2}, p50 {:.2}x",
                sp.rps() / r.rps(),
                sp.percentile(50.0) / r.percentile(50.0)
            ));
        }
        println!("{line}");
        rows.push(row);
    }
    let counts = statement_counts(&hosts[0]).await?;
    println!("SQL statements per request: {counts}");
    let out = json!({"endpoints": rows, "statements_per_request": counts});
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    println!("results written to {}", args.out);
    Ok(())
}
