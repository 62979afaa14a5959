//! The served OpenAPI document against the running backend, with schemathesis (PyPI):
//! generated requests to every operation, as an admin and as a plain user, must never
//! get a 5xx, and every answer must match its documented schema and media type. The
//! API is checked on the API's address and terminal-host's operations on its own.
//!
//! Without `schemathesis` the test is skipped with a SKIPPED line, unless
//! `ARCANA_REQUIRE_SCHEMATHESIS=1` (CI), where its absence is a failure.

use std::process::Command;

use arcana_tests::RunnerOptions;
use arcana_tests::backend::Backend;
use serde_json::json;

/// Cases generated per operation and role: bounded, so the run stays short.
const CASES_PER_OPERATION: &str = "25";

fn schemathesis_available() -> bool {
    let ok = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("ARCANA_REQUIRE_SCHEMATHESIS").as_deref() == Ok("1") {
            panic!(
                "schemathesis is not installed but ARCANA_REQUIRE_SCHEMATHESIS=1 (pip install schemathesis)"
            );
        }
        eprintln!(
            "SKIPPED: schemathesis not installed; the OpenAPI conformance run did not happen"
        );
    }
    ok
}

/// Runs schemathesis; returns its output, and panics with it on any failure. Async, so
/// the provider stand-in on this test's runtime keeps answering meanwhile.
async fn run(
    schema: &str,
    base: &str,
    token: &str,
    filters: &[&str],
    dir: &std::path::Path,
) -> String {
    let out = tokio::process::Command::new("schemathesis")
        .args(["run", schema, "--url", base])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", CASES_PER_OPERATION])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--seed",
            "20261201",
        ])
        .args(["--request-timeout", "20", "--max-time", "30"])
        .args(filters)
        .current_dir(dir)
        .output()
        .await
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    text
}

/// How many cases a run reports ("N generated").
fn cases(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" generated")
                .map(|(n, _)| n.trim().to_string())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_answer_matches_the_document_for_an_admin_and_a_user() {
    if !schemathesis_available() {
        return;
    }
    let env = Backend::start_with(RunnerOptions {
        with_terminal_host: true,
        ..Default::default()
    })
    .await;
    let p = env.openai_provider().await;
    env.model(&p, "gpt-fuzz", true).await;
    env.call(
        "POST",
        "/api/chat",
        Some(json!({"message": "something to find"})),
    )
    .await;
    let user = env.user("fuzzer", &["terminal"]).await;
    let schema = env.runner.at("/api/openapi.json");
    let terminal = env.runner.terminal_url.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    // The user first: the admin's run may change or remove that user.
    for token in [user, env.admin.clone()] {
        let api = run(
            &schema,
            &env.runner.url,
            &token,
            &["--exclude-tag", "terminal"],
            dir.path(),
        )
        .await;
        // The WebSocket upgrade is not plain HTTP; the shell tests drive it.
        let sidecar = run(
            &schema,
            &terminal,
            &token,
            &[
                "--include-tag",
                "terminal",
                "--exclude-path",
                "/ws/shell/{session_id}",
            ],
            dir.path(),
        )
        .await;
        total += cases(&api) + cases(&sidecar);
    }
    eprintln!("schemathesis: {total} cases, no failure");
    assert!(total > 1000, "only {total} cases ran");
}
