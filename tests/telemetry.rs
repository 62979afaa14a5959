//! Telemetry over real HTTP and WebSockets: the status figures and `/metrics` move
//! after real chat, failing provider calls and terminal sessions; users never see each
//! other's figures; the Prometheus output passes a real parser with no duplicate
//! series; request ids and structured logs from the runner, the components and
//! terminal-host.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::shell::{self, Ws};
use arcana_tests::{Host, both_hosts};
use arcana_tests::{RunnerOptions, TEST_METRICS_TOKEN, call, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn status(env: &Backend, token: &str, query: &str) -> Value {
    let (code, body) = call(
        &env.runner,
        "GET",
        &format!("/api/arcana/status{query}"),
        token,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body
}

/// GET /metrics with an optional bearer token: status and body text.
async fn scrape(env: &Backend, token: Option<&str>) -> (u16, String) {
    let mut req = client().get(env.runner.at("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.text().await.unwrap())
}

/// Every sample as `name{sorted labels}` → value, checking on the way that no family
/// is declared twice and no series appears twice.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut declared = HashSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(
                declared.insert(name.clone()),
                "family {name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<String> = labels
                    .trim_end_matches('}')
                    .split("\",")
                    .map(|l| format!("{}\"", l.trim_end_matches('"')))
                    .collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        assert!(
            out.insert(key.clone(), value).is_none(),
            "series {key} twice"
        );
    }
    out
}

/// Parses the text with the Prometheus project's own Python parser and returns
/// (families, samples). `None` when the parser is not installed and CI does not require it.
fn reference_parse(text: &str) -> Option<(usize, usize)> {
    use std::io::Write;
    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as parse\n\
        fams = list(parse(sys.stdin.read()))\n\
        print(len(fams), sum(len(f.samples) for f in fams))\n";
    let child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var("ARCANA_REQUIRE_PROM_PARSER").is_err() => return None,
        Err(e) => panic!("python3: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'prometheus_client'")
        && std::env::var("ARCANA_REQUIRE_PROM_PARSER").is_err()
    {
        eprintln!("prometheus_client is not installed; skipping the reference parser");
        return None;
    }
    assert!(
        out.status.success(),
        "the parser refused the output: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut it = stdout
        .split_whitespace()
        .map(|n| n.parse::<usize>().unwrap());
    Some((it.next().unwrap(), it.next().unwrap()))
}

/// Runs `command` in a new shell session and waits until history has recorded it.
async fn run_in_shell(env: &Backend, token: &str, command: &str) -> (Ws, String) {
    let id = shell::new_session_id();
    let base = env.runner.terminal_url.clone().expect("terminal-host runs");
    let url = format!("{}/ws/shell/{id}", base.replacen("http://", "ws://", 1));
    let (mut ws, _) = shell::open(&url, token).await;
    shell::send(&mut ws, &format!("{command}\r")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = client()
            .get(format!("{base}/api/arcana/terminal/sessions/{id}/history"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let page: Value = resp.json().await.unwrap();
        if page["items"].as_array().is_some_and(|i| !i.is_empty()) {
            return (ws, id);
        }
        assert!(
            Instant::now() < deadline,
            "history never recorded {command}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_hosts! {
    async fn figures_follow_chat_failures_and_terminal_use_and_stay_private() {
        let env = Backend::start_with(RunnerOptions {
            with_terminal_host: true,
            ..Default::default()
        })
        .await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-chat", true).await;
        env.model(&p, "fail-500", false).await;
        let alice = env.user("alice", &["terminal"]).await;
        let bob = env.user("bob", &[]).await;

        let before = status(&env, &alice, "").await;
        assert_eq!(before["scope"], "user");
        assert_eq!(before["chat"]["messages"]["total"], 0);
        assert!(before["database"]["reachable"].as_bool().unwrap());
        assert!(before["uptime_secs"].as_i64().unwrap() >= 0);
        assert!(before.get("users").is_none());

        // Alice: one chat exchange, one failing provider call, a memory, a shell command.
        let (code, reply) = call(
            &env.runner,
            "POST",
            "/api/chat",
            &alice,
            Some(json!({"message": "How many figures move?"})),
        )
        .await;
        assert_eq!(code, 200, "{reply}");
        // The failing model's attempt is an error; the call then falls back to the default.
        let (code, answer) = call(
            &env.runner,
            "POST",
            "/api/arcana/llm/complete",
            &alice,
            Some(json!({"model": "fail-500", "messages": [{"role": "user", "content": "x"}]})),
        )
        .await;
        assert_eq!(
            (code.as_u16(), answer["attempts"].as_i64()),
            (200, Some(2)),
            "{answer}"
        );
        let failure_code = "upstream_error";
        let (code, _) = call(
            &env.runner,
            "POST",
            "/api/arcana/context-memory",
            &alice,
            Some(json!({"key": "city", "value": "Lisbon"})),
        )
        .await;
        assert_eq!(code, 201);
        let (mut ws, session) = run_in_shell(&env, &alice, "echo figures").await;

        let live = status(&env, &alice, "").await;
        assert_eq!(live["terminal"]["sessions_active"], 1);
        assert_eq!(live["terminal"]["sessions_total"], 1);
        assert!(live["terminal"]["commands_total"].as_i64().unwrap() >= 1);
        assert_eq!(
            live["chat"]["conversations"],
            json!({"total": 1, "last_24h": 1})
        );
        assert_eq!(live["chat"]["messages"], json!({"total": 2, "last_24h": 2}));
        assert_eq!(live["chat"]["memories"], json!({"total": 1, "last_24h": 1}));
        let hour = &live["llm"]["last_hour"];
        assert_eq!(hour["calls"], 3, "{hour}");
        assert_eq!(hour["errors"], 1);
        assert_eq!(hour["errors_by_code"], json!({ failure_code: 1 }));
        assert!(hour["prompt_tokens"].as_i64().unwrap() > 0);
        assert!(hour["cost_usd"].as_f64().unwrap() > 0.0);
        assert!(hour["latency"]["p50_ms"].as_f64().is_some());
        let models: Vec<&str> = hour["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model"].as_str().unwrap())
            .collect();
        assert_eq!(models, ["fail-500", "gpt-chat"]);
        assert_eq!(hour["by_model"][1]["provider_name"], "oa");
        assert_eq!(hour["by_model"][0]["errors"], 1);
        assert_eq!(hour["by_model"][1]["calls"], 2);
        assert_eq!(live["llm"]["last_24h"]["calls"], 3);

        // Bob sees none of it, and may not ask for everyone's figures.
        let theirs = status(&env, &bob, "").await;
        for path in [
            ["chat", "messages", "total"],
            ["chat", "memories", "total"],
            ["llm", "last_hour", "calls"],
            ["terminal", "sessions_total", ""],
        ] {
            let mut v = &theirs;
            for k in path.iter().filter(|k| !k.is_empty()) {
                v = &v[k];
            }
            assert_eq!(v, 0, "bob sees {path:?}");
        }
        let (code, e) = call(
            &env.runner,
            "GET",
            "/api/arcana/status?scope=all",
            &bob,
            None,
        )
        .await;
        assert_eq!(
            (code, e["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required"))
        );
        let (code, _) = call(
            &env.runner,
            "GET",
            "/api/arcana/status?scope=weekly",
            &bob,
            None,
        )
        .await;
        assert_eq!(code, 422);
        let (code, _) = client()
            .get(env.runner.at("/api/arcana/status"))
            .send()
            .await
            .map(|r| (r.status(), ()))
            .unwrap();
        assert_eq!(code, 401);

        // The admin sees everyone, with a line per user.
        let all = status(&env, &env.admin, "").await;
        assert_eq!(all["scope"], "all");
        assert_eq!(all["chat"]["messages"]["total"], 2);
        let lines = all["users"].as_array().unwrap();
        let line = |name: &str| {
            lines
                .iter()
                .find(|l| l["username"] == name)
                .unwrap()
                .clone()
        };
        let a = line("alice");
        assert_eq!(
            (a["messages"].as_i64(), a["llm_calls_last_24h"].as_i64()),
            (Some(2), Some(3))
        );
        assert_eq!(a["llm_errors_last_24h"], 1);
        assert_eq!(a["terminal_sessions_active"], 1);
        assert_eq!(line("bob")["messages"], 0);
        let own = status(&env, &env.admin, "?scope=me").await;
        assert_eq!(
            (
                own["scope"].as_str(),
                own["chat"]["messages"]["total"].as_i64()
            ),
            (Some("user"), Some(0))
        );

        // /metrics: refused without credentials, for a wrong token and for a non-admin.
        assert_eq!(scrape(&env, None).await.0, 401);
        assert_eq!(scrape(&env, Some("not-the-token")).await.0, 401);
        assert_eq!(scrape(&env, Some(&bob)).await.0, 403);
        assert_eq!(scrape(&env, Some(&env.admin)).await.0, 200);
        let (code, text) = scrape(&env, Some(TEST_METRICS_TOKEN)).await;
        assert_eq!(code, 200);
        let s = samples(&text);
        let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
        assert_eq!(get("arcana_messages"), 2.0);
        assert_eq!(get("arcana_memories_created_total"), 1.0);
        let pid = format!("provider_id=\"{p}\"");
        assert_eq!(
            get(&format!(
                "arcana_llm_calls_total{{model=\"gpt-chat\",provider=\"oa\",{pid}}}"
            )),
            2.0
        );
        assert_eq!(
            get(&format!(
                "arcana_llm_errors_total{{code=\"{failure_code}\",model=\"fail-500\",provider=\"oa\",{pid}}}"
            )),
            1.0
        );
        assert_eq!(
            get(&format!(
                "arcana_llm_call_duration_seconds_count{{model=\"gpt-chat\",provider=\"oa\",{pid}}}"
            )),
            2.0
        );
        assert_eq!(get("arcana_shell_sessions_recorded_total"), 1.0);
        if Host::current().merges_runner_telemetry() {
            assert!(
                get("arcana_http_requests_total{method=\"POST\",route=\"/api/chat\",status=\"200\"}")
                    >= 1.0
            );
            assert!(
                get("arcana_http_request_duration_seconds_count{route=\"/api/chat\",status=\"200\"}")
                    >= 1.0
            );
            assert_eq!(get("arcana_terminal_host_up"), 1.0);
        }
        // terminal-host's live families: merged by the runner, scraped directly beside Spin.
        let terminal_text = if Host::current().merges_runner_telemetry() {
            text.clone()
        } else {
            let base = env.runner.terminal_url.clone().unwrap();
            let resp = client()
                .get(format!("{base}/metrics"))
                .bearer_auth(TEST_METRICS_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        };
        let t = samples(&terminal_text);
        let tget = |k: &str| *t.get(k).unwrap_or_else(|| panic!("no {k} in\n{terminal_text}"));
        assert_eq!(tget("arcana_terminal_sessions_active"), 1.0);
        assert_eq!(tget("arcana_terminal_sessions_started_total"), 1.0);
        assert!(tget("arcana_terminal_commands_total") >= 1.0);
        assert!(tget("arcana_terminal_output_bytes_total") > 0.0);
        if let Some((families, n)) = reference_parse(&text) {
            let declared = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
            assert_eq!(families, declared);
            assert!(n >= s.len(), "{n} parsed samples, {} lines", s.len());
        }

        // Closing the shell shows in the status.
        let base = env.runner.terminal_url.clone().unwrap();
        let resp = client()
            .post(format!(
                "{base}/api/arcana/terminal/sessions/{session}/close"
            ))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        drop(ws.close(None).await);
        let deadline = Instant::now() + Duration::from_secs(10);
        while status(&env, &alice, "").await["terminal"]["sessions_active"] != 0 {
            assert!(Instant::now() < deadline, "session still active");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The JSON log lines of `log` that carry `request_id`.
fn lines_with(log: &str, request_id: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["request_id"] == request_id)
        .collect()
}

both_hosts! {
    async fn request_ids_and_one_json_line_per_request_without_secrets() {
        let opts = RunnerOptions {
            with_terminal_host: true,
            ..Default::default()
        };
        // Spin's component logs are JSON already; the runner is asked for JSON lines.
        let opts = match Host::current() {
            Host::Runner => opts.args(&["--log-format", "json"]),
            Host::Spin => opts,
        };
        let env = Backend::start_with(opts).await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-chat", true).await;
        let alice = env.user("alice", &["terminal"]).await;
        let (_, me) = call(&env.runner, "GET", "/api/auth/me", &alice, None).await;
        let alice_id = me["id"].as_str().unwrap().to_string();

        // A request id sent by the client is kept, in the header and in every log line.
        let secret_words = "the-secret-message-words";
        let resp = client()
            .post(env.runner.at("/api/chat"))
            .bearer_auth(&alice)
            .header("x-request-id", "trace-chat-1")
            .json(&json!({"message": secret_words}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "trace-chat-1");

        // Without one, each response gets a fresh id; error bodies carry it.
        let resp = client()
            .get(
                env.runner
                    .at("/api/chat/history/00000000-0000-4000-8000-000000000000"),
            )
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["request_id"], id.as_str());

        // terminal-host keeps ids too, and logs who called.
        let base = env.runner.terminal_url.clone().unwrap();
        let resp = client()
            .get(format!("{base}/api/arcana/terminal/sessions"))
            .bearer_auth(&alice)
            .header("x-request-id", "trace-term-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "trace-term-1");
        let resp = client()
            .get(format!("{base}/api/arcana/terminal/sessions"))
            .header("x-request-id", "trace-term-2")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["request_id"], "trace-term-2");

        // Log lines are flushed as they happen; give the pipes a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = env.runner.log();
        let chat = lines_with(&log, "trace-chat-1");
        if Host::current().merges_runner_telemetry() {
            let access = chat
                .iter()
                .find(|l| l["target"] == "arcana::access")
                .unwrap_or_else(|| panic!("no runner line for trace-chat-1 in\n{log}"));
            assert_eq!(
                (access["route"].as_str(), access["status"].as_u64()),
                (Some("/api/chat"), Some(200))
            );
            assert!(access["latency_ms"].as_f64().unwrap() > 0.0);
        }
        let component = chat
            .iter()
            .find(|l| l["target"] == "arcana::request")
            .expect("a component line");
        assert_eq!(component["user_id"], alice_id.as_str());
        assert_eq!(component["route"], "/api/chat");
        assert_eq!(component["status"], 200);
        let miss = lines_with(&log, &id);
        assert!(
            miss.iter()
                .any(|l| l["target"] == "arcana::request" && l["status"] == 404)
        );
        let term = lines_with(&log, "trace-term-1");
        let line = term.first().expect("a terminal-host line");
        assert_eq!(line["route"], "/api/arcana/terminal/sessions");
        assert_eq!(line["user_id"], alice_id.as_str());
        assert_eq!(line["status"], 200);

        // Never a secret or message content.
        for secret in [
            secret_words,
            alice.as_str(),
            arcana_tests::backend::PROVIDER_KEY,
            "user password",
            TEST_METRICS_TOKEN,
        ] {
            assert!(!log.contains(secret), "the log contains {secret}");
        }
    }
}

/// SQL statements per request, from the runner's access lines (on a remote database
/// each is a network round trip): every read endpoint runs at most two, the caller's
/// user row and its answer.
#[tokio::test]
async fn read_endpoints_run_at_most_two_statements() {
    let env = Backend::start_with(
        RunnerOptions::default()
            .args(&["--log-format", "json"])
            .env("RUST_LOG", "info,arcana::sql=trace"),
    )
    .await;
    let p = env.openai_provider().await;
    let model = env.model(&p, "gpt-count", true).await;
    let (_, reply) = env
        .call("POST", "/api/chat", Some(json!({"message": "count me"})))
        .await;
    let conv = reply["conversation_id"].as_str().unwrap().to_string();
    env.call(
        "POST",
        "/api/arcana/context-memory",
        Some(json!({"key": "k", "value": 1})),
    )
    .await;
    let reads = [
        "/api/health".to_string(),
        "/api/auth/me".into(),
        "/api/admin/users".into(),
        "/api/chat/conversations".into(),
        format!("/api/chat/history/{conv}"),
        "/api/chat/search?q=count".into(),
        format!("/api/chat/conversations/{conv}/export"),
        "/api/arcana/context-memory".into(),
        "/api/arcana/context-memory/k".into(),
        "/api/arcana/llm/providers".into(),
        "/api/arcana/llm/models".into(),
        format!("/api/arcana/llm/models/{model}/access"),
        "/api/arcana/llm/preferences".into(),
        "/api/arcana/llm/routing-rules".into(),
        "/api/arcana/llm/usage".into(),
        "/api/arcana/status".into(),
    ];
    for (i, path) in reads.iter().enumerate() {
        let resp = client()
            .get(env.runner.at(path))
            .bearer_auth(&env.admin)
            .header("x-request-id", format!("count-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = env.runner.log();
    for (i, path) in reads.iter().enumerate() {
        let line = lines_with(&log, &format!("count-{i}"))
            .into_iter()
            .find(|l| l["target"] == "arcana::access")
            .unwrap_or_else(|| panic!("no access line for {path}"));
        let n = line["db_statements"].as_u64().unwrap();
        assert!(n <= 2, "{path} ran {n} statements");
    }
    // The write path: POST /api/chat, plain and streamed (see the README for the list).
    for (i, stream) in [false, true].into_iter().enumerate() {
        let resp = client()
            .post(env.runner.at("/api/chat"))
            .bearer_auth(&env.admin)
            .header("x-request-id", format!("chat-{i}"))
            .json(&json!({"conversation_id": conv, "message": "count me again", "stream": stream}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = env.runner.log();
    // Plain: 17 (user, budget, preferences, models, rules, the conversation, the message,
    // the embedding model chosen and the message's vector, the memories with their
    // vectors and their touch, history, provider, ledger, reply; BEGIN/COMMIT counted).
    // Streamed, counted until the response head (the ledger and the reply come later):
    // the reply's row and stream state are written up front in the message's transaction
    // (17); after the head come one statement per saved batch, the ledger, and the end
    // in one transaction (BEGIN, reply, stream state, COMMIT).
    for (i, most) in [(0, 17), (1, 17)] {
        let line = lines_with(&log, &format!("chat-{i}"))
            .into_iter()
            .find(|l| l["target"] == "arcana::access")
            .expect("an access line for POST /api/chat");
        let n = line["db_statements"].as_u64().unwrap();
        eprintln!("POST /api/chat (stream: {}): {n} statements", i == 1);
        if std::env::var_os("ARCANA_SHOW_SQL").is_some() {
            eprintln!("  (statements of every request, in order)");
            for l in log.lines().filter(|l| l.contains("arcana::sql")) {
                eprintln!("  {}", l.chars().take(260).collect::<String>());
            }
        }
        assert!(n <= most, "POST /api/chat ran {n} statements");
    }
    // The gateway, with a personal token: token, budget, models, rules, preferences,
    // the chosen and the fallback model's providers, the ledger row (and, once a
    // minute, the token's last use).
    let (status, t) = env
        .call(
            "POST",
            "/api/auth/tokens",
            Some(json!({"name": "count", "scopes": ["llm"]})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_string();
    for i in 0..2 {
        let resp = client()
            .post(env.runner.at("/v1/chat/completions"))
            .bearer_auth(&token)
            .header("x-request-id", format!("gateway-{i}"))
            .json(
                &json!({"model": "gpt-count", "messages": [{"role": "user", "content": "count"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = env.runner.log();
    let line = lines_with(&log, "gateway-1")
        .into_iter()
        .find(|l| l["target"] == "arcana::access")
        .expect("an access line for the gateway");
    let n = line["db_statements"].as_u64().unwrap();
    eprintln!("POST /v1/chat/completions: {n} statements");
    assert!(n <= 7, "the gateway ran {n} statements");
}
