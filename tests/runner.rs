//! The runner as Spin would behave: routes and Spin headers, variables, outbound-host
//! denial, SQLite, traps, deadlines, memory limits and streaming — driven over real
//! HTTP against the `arcana-probe` wasm component (tests/probe). The tests declared
//! with `both_hosts!` run against real Spin too: they are the parity checks.

use std::time::{Duration, Instant};

use arcana_tests::both_hosts;
use arcana_tests::{Host, Runner, RunnerOptions, client, repo_root, static_server};
use serde_json::Value;

fn probe_options() -> RunnerOptions {
    RunnerOptions {
        manifest: repo_root().join("tests/probe/spin.toml"),
        env: vec![(
            "SPIN_VARIABLE_NEEDS_ENV".into(),
            "from-the-environment".into(),
        )],
        ..Default::default()
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let resp = client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both_hosts! {
    async fn spin_headers_describe_the_matched_route() {
        let r = Runner::start_with(probe_options());
        let (status, h) = get_json(&r.at("/probe/headers/abc/rest/of/path?x=1")).await;
        assert_eq!(status, 200);
        assert_eq!(h["spin-matched-route"], "/probe/headers/:id/...");
        assert_eq!(h["spin-path-match-id"], "abc");
        assert_eq!(h["spin-path-info"], "/rest/of/path");
        assert_eq!(h["spin-component-route"], "/probe/headers/:id");
        assert!(
            h["spin-full-url"]
                .as_str()
                .unwrap()
                .ends_with("/probe/headers/abc/rest/of/path?x=1")
        );
        assert!(
            h["spin-client-addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );

        // The less specific wildcard still serves other paths below /probe.
        let (_, h) = get_json(&r.at("/probe/headers")).await;
        assert_eq!(h["spin-matched-route"], "/probe/...");
        assert_eq!(h["spin-path-info"], "/headers");
    }
}

both_hosts! {
    /// The headers Spin sets cannot be spoofed; other `spin-*` headers a client sends
    /// reach the component on both hosts (so components trust only their route's).
    async fn clients_cannot_spoof_the_spin_headers_of_their_route() {
        let r = Runner::start_with(probe_options());
        let resp = client()
            .get(r.at("/probe/headers/real/x"))
            .header("spin-client-addr", "10.0.0.1:1")
            .header("spin-path-match-id", "forged")
            .header("spin-path-match-admin", "yes")
            .send()
            .await
            .unwrap();
        let h: Value = resp.json().await.unwrap();
        assert!(
            h["spin-client-addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert_eq!(h["spin-path-match-id"], "real");
        assert_eq!(h["spin-path-match-admin"], "yes");
    }
}

both_hosts! {
    async fn unknown_routes_are_404_and_exact_routes_are_exact() {
        let r = Runner::start_with(probe_options());
        // As Spin: an empty 404 when no trigger matches.
        let resp = client().get(r.at("/nothing/here")).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert!(resp.bytes().await.unwrap().is_empty());
        assert_eq!(
            client()
                .get(r.at("/other/exact/more"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        // The exact route exists (the probe answers its own 404 body for unknown probes).
        let body: Value = client()
            .get(r.at("/other/exact"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["error"], "no such probe");
    }
}

both_hosts! {
    async fn variables_resolve_templates_defaults_and_environment() {
        let r = Runner::start_with(probe_options().env("SPIN_VARIABLE_GREETING", "hi"));
        let (_, v) = get_json(&r.at("/probe/var?name=message")).await;
        assert_eq!(v["value"], "hi, world");
        let (_, v) = get_json(&r.at("/probe/var?name=from_env")).await;
        assert_eq!(v["value"], "from-the-environment");
        // Application variables are not visible unless the component maps them.
        let (status, _) = get_json(&r.at("/probe/var?name=greeting")).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn missing_required_variable_stops_start_up_with_its_name() {
    let opts = RunnerOptions {
        env: Vec::new(),
        ..probe_options()
    };
    let log = Runner::try_start(opts)
        .err()
        .expect("runner must refuse to start");
    assert!(log.contains("SPIN_VARIABLE_NEEDS_ENV"), "{log}");
}

both_hosts! {
    async fn outbound_requests_only_reach_allowed_hosts() {
        let upstream = static_server("upstream says hi").await;
        let other = static_server("should never be reached").await;
        let r = Runner::start_with(
            probe_options().env("SPIN_VARIABLE_TARGET_HOST", &format!("http://{upstream}")),
        );

        let (status, v) = get_json(&r.at(&format!("/probe/outbound?url=http://{upstream}/x"))).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["body"], "upstream says hi");

        let (status, v) = get_json(&r.at(&format!("/probe/outbound?url=http://{other}/x"))).await;
        assert_eq!(status, 502, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("denied"),
            "{v}"
        );
        assert!(
            r.log()
                .contains("Outbound network destination not allowed: http://"),
            "{}",
            r.log()
        );
    }
}

both_hosts! {
    async fn sqlite_default_works_and_undeclared_databases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rc = format!(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"{0}/a.db\"\n[sqlite_database.secrets]\ntype = \"spin\"\npath = \"{0}/s.db\"\n",
            dir.path().display()
        );
        let r = Runner::start_with(RunnerOptions {
            runtime_config: Some(rc),
            ..probe_options()
        });
        let (status, v) = get_json(&r.at("/probe/sql")).await;
        assert_eq!((status, v["count"].as_i64()), (200, Some(1)));
        let (_, v) = get_json(&r.at("/probe/sql")).await;
        assert_eq!(v["count"], 2, "data persists across requests");
        // Configured, but not in the component's sqlite_databases: denied.
        let (status, v) = get_json(&r.at("/probe/sql?db=secrets")).await;
        assert_eq!(
            (status, v["open_error"].as_str()),
            (500, Some("Error::AccessDenied"))
        );
        // Not listed and not configured: denied too (Spin never says "no such database").
        let (_, v) = get_json(&r.at("/probe/sql?db=nope")).await;
        assert_eq!(v["open_error"], "Error::AccessDenied");
    }
}

both_hosts! {
    async fn a_trap_is_a_500_and_the_runner_keeps_serving() {
        let r = Runner::start_with(probe_options());
        let resp = client().get(r.at("/probe/trap")).send().await.unwrap();
        assert_eq!(resp.status(), 500);
        // As Spin: an empty 500 (the runner logs the trap with the request id).
        assert!(resp.bytes().await.unwrap().is_empty());
        let (status, _) = get_json(&r.at("/probe/headers")).await;
        assert_eq!(status, 200);
    }
}

both_hosts! {
    async fn a_transaction_abandoned_by_a_trap_is_rolled_back() {
        // Spin opens a connection per request; the runner pools them, so it is held to
        // one connection, where a leaked transaction would show.
        let opts = match Host::current() {
            Host::Runner => probe_options().args(&["--db-connections", "1"]),
            Host::Spin => probe_options(),
        };
        let r = Runner::start_with(opts);
        let (status, _) = get_json(&r.at("/probe/sql")).await;
        assert_eq!(status, 200);
        assert_eq!(
            client()
                .get(r.at("/probe/abandon-tx"))
                .send()
                .await
                .unwrap()
                .status(),
            500
        );
        // With one connection, a leaked transaction would block or show the row.
        let (status, v) = get_json(&r.at("/probe/sql")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["count"], 2, "the trapped insert must not be visible");
    }
}

#[tokio::test]
async fn a_runaway_component_is_stopped_at_the_deadline() {
    let r = Runner::start_with(probe_options().args(&["--request-timeout-secs", "1"]));
    let started = Instant::now();
    let resp = client().get(r.at("/probe/spin")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, _) = get_json(&r.at("/probe/headers")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn memory_beyond_the_limit_fails_the_request_only() {
    let r = Runner::start_with(probe_options().args(&["--max-memory-mib", "32"]));
    let (status, v) = get_json(&r.at("/probe/alloc?mib=4")).await;
    assert_eq!((status, v["allocated"].as_u64()), (200, Some(4 << 20)));
    let resp = client()
        .get(r.at("/probe/alloc?mib=64"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let (status, _) = get_json(&r.at("/probe/alloc?mib=4")).await;
    assert_eq!(status, 200);
}

both_hosts! {
    async fn streamed_bodies_pass_through_unbuffered() {
        use futures::StreamExt;
        let r = Runner::start_with(probe_options());
        let started = Instant::now();
        let resp = client()
            .get(r.at("/probe/stream?chunks=3&delay_ms=400"))
            .send()
            .await
            .unwrap();
        let mut stream = resp.bytes_stream();
        let first = stream.next().await.unwrap().unwrap();
        let first_at = started.elapsed();
        assert!(String::from_utf8_lossy(&first).starts_with("chunk 0"));
        let mut rest = Vec::new();
        while let Some(chunk) = stream.next().await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        let total = started.elapsed();
        assert!(String::from_utf8_lossy(&rest).contains("chunk 2"));
        // The first chunk arrived well before the component finished (~1.2 s).
        assert!(
            total - first_at >= Duration::from_millis(600),
            "first {first_at:?}, total {total:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_wasm_file_names_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"missing.wasm\"\n",
    )
    .unwrap();
    let opts = RunnerOptions {
        manifest,
        ..Default::default()
    };
    let log = Runner::try_start(opts).err().expect("must not start");
    assert!(
        log.contains("missing.wasm") && log.contains("arcana build"),
        "{log}"
    );
}

both_hosts! {
    async fn concurrent_requests_are_all_answered() {
        let r = Runner::start_with(probe_options());
        let c = client();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = c.clone();
            let url = r.at("/probe/sql");
            tasks.push(tokio::spawn(async move {
                c.get(url).send().await.unwrap().status().as_u16()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let (_, v) = get_json(&r.at("/probe/sql")).await;
        assert_eq!(v["count"], 65);
    }
}
