//! One origin for the dashboard, on both hosts: the runner's own address (its proxy to
//! terminal-host), and the shipped nginx configuration in front of real `spin up` and
//! terminal-host. Through that one address: the console and the API reference with
//! their security headers, the API, reply streams as they are produced, terminal-host's
//! REST API and shells over WebSocket (with tickets and the Origin check), and request
//! ids both ways.

use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::origin::Origin;
use arcana_tests::shell::{self, new_session_id, next_json, read_until, send};
use arcana_tests::sse::SseReader;
use arcana_tests::{Host, RunnerOptions, both_hosts, client};
use serde_json::{Value, json};

async fn backend() -> Backend {
    Backend::start_with(RunnerOptions {
        with_terminal_host: Host::current() == Host::Runner,
        ..Default::default()
    })
    .await
}

both_hosts! {
    async fn the_console_and_the_api_reference_are_served_with_a_strict_policy() {
        let env = backend().await;
        let Some(origin) = Origin::start(&env.runner) else { return };
        let http = client();
        for (path, marker) in [("/", "/console/app.js"), ("/api/docs", "/console/docs.js")] {
            let resp = http.get(origin.at(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let h = resp.headers().clone();
            assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
            let csp = h["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe-eval"), "{csp}");
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["cache-control"], "no-cache");
            let html = resp.text().await.unwrap();
            assert!(html.contains(marker), "{path} loads {marker}:\n{html}");
            assert!(!html.contains("<script>"), "no inline script in {path}");
        }
        // The script: compressed for clients that take gzip, revalidated by ETag.
        let plain = http.get(origin.at("/console/app.js")).send().await.unwrap();
        assert_eq!(plain.status(), 200);
        assert!(plain.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        let etag = plain.headers()["etag"].to_str().unwrap().to_string();
        let size = plain.bytes().await.unwrap().len();
        let gz = http
            .get(origin.at("/console/app.js"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        let gz_size = gz.bytes().await.unwrap().len();
        assert!(gz_size * 2 < size, "gzip {gz_size} of {size} bytes");
        let again = http
            .get(origin.at("/console/app.js"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        // Files that do not exist, or try to leave the folder, are JSON 404s.
        for path in ["/console/nope.js", "/console/..%2fspin.toml", "/console/"] {
            let resp = http.get(origin.at(path)).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "not_found", "{path}");
        }
        // The API stays behind authentication on the same origin.
        let resp = http.get(origin.at("/api/auth/me")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
}

both_hosts! {
    async fn shells_and_terminal_requests_share_the_api_origin() {
        let env = backend().await;
        let Some(origin) = Origin::start(&env.runner) else { return };
        let http = client();
        let health = arcana_tests::get_json(&origin.at("/api/arcana/terminal/health"), None).await;
        assert_eq!(health["status"], "ok");

        // A ticket from the origin opens a shell on it, as a page there does.
        let ticket = |token: String| {
            let at = origin.at("/api/arcana/terminal/tickets");
            async move {
                let resp = client().post(at).bearer_auth(token).send().await.unwrap();
                assert_eq!(resp.status(), 201);
                let body: Value = resp.json().await.unwrap();
                body["ticket"].as_str().unwrap().to_string()
            }
        };
        let id = new_session_id();
        let url = origin.ws(&format!("/ws/shell/{id}?ticket={}", ticket(env.admin.clone()).await));
        let mut ws = shell::try_open(&url, None, Some(&origin.url)).await.expect("shell");
        assert_eq!(next_json(&mut ws).await["type"], "hello");
        send(&mut ws, "echo one-$((20+22))\r").await;
        read_until(&mut ws, "one-42").await;
        // Much output at once arrives whole through the tunnel.
        send(&mut ws, "seq 1 60000 | tail -n 1 | sed 's/^/last-/'; seq 1 60000 >/dev/null; seq 1 30000\r").await;
        read_until(&mut ws, "\n30000").await;

        // Another page's origin is refused (by terminal-host, answered through the origin).
        let other = origin.ws(&format!("/ws/shell/{}?ticket={}", new_session_id(), ticket(env.admin.clone()).await));
        assert_eq!(
            shell::try_open(&other, None, Some("http://evil.example")).await.err(),
            Some(403)
        );
        // No token, no shell.
        let bare = origin.ws(&format!("/ws/shell/{}", new_session_id()));
        assert_eq!(shell::try_open(&bare, None, Some(&origin.url)).await.err(), Some(401));

        // The session is listed through the origin, with the caller's request id kept.
        let resp = http
            .get(origin.at("/api/arcana/terminal/sessions"))
            .bearer_auth(&env.admin)
            .header("x-request-id", "one-origin-7")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], "one-origin-7");
        let sessions: Value = resp.json().await.unwrap();
        let listed = sessions["items"].as_array().unwrap();
        assert!(listed.iter().any(|s| s["id"] == id.as_str()), "{sessions}");
        let resp = http
            .post(origin.at(&format!("/api/arcana/terminal/sessions/{id}/close")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        drop(ws);
    }
}

both_hosts! {
    async fn reply_streams_pass_the_origin_as_they_are_produced() {
        let env = backend().await;
        let Some(origin) = Origin::start(&env.runner) else { return };
        let provider = env.openai_provider().await;
        env.model(&provider, "drip", true).await;
        let words: Vec<String> = (1..=60).map(|i| format!("w{i}")).collect();
        let resp = client()
            .post(origin.at("/api/chat"))
            .bearer_auth(&env.admin)
            .json(&json!({"message": words.join(" "), "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut live = SseReader::new(resp);
        let start = live.next().await.unwrap();
        let reply = start.data["reply_message_id"].as_str().unwrap().to_string();
        // A delta arrives while the reply is being written: stopping it then leaves a
        // partial reply. A buffering proxy would have delivered nothing before the end.
        let first = live.next().await.unwrap();
        assert_eq!(first.event, "delta", "{first:?}");
        let resp = client()
            .post(origin.at(&format!("/api/chat/messages/{reply}/cancel")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let rest = live.all().await;
        assert_eq!(rest.last().unwrap().event, "cancelled", "{rest:?}");
    }
}

/// The runner answers terminal paths with 503 while terminal-host is down (it restarts
/// it), never a hang or a 500, and serves them again once it is back.
#[tokio::test]
async fn a_dead_terminal_host_is_a_503_on_the_api_origin_until_it_is_back() {
    let env = Backend::start_with(RunnerOptions {
        with_terminal_host: true,
        host: Host::Runner,
        ..Default::default()
    })
    .await;
    let th_pid = arcana_tests::children_named(env.runner.pid(), "terminal-host");
    assert_eq!(th_pid.len(), 1);
    let _ = std::process::Command::new("kill")
        .args(["-9", &th_pid[0].to_string()])
        .status();
    let first = client()
        .get(env.runner.at("/api/arcana/terminal/sessions"))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["retry-after"], "1");
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["code"], "terminal_unavailable");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = client()
            .get(env.runner.at("/api/arcana/terminal/sessions"))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => break,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("after the restart: {other}"),
        }
    }
    // The components never noticed.
    let resp = client()
        .get(env.runner.at("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
