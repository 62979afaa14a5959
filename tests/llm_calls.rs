//! Calling models through the llm component against a local provider stand-in that
//! speaks the real OpenAI and Anthropic wire formats: plain and streamed answers,
//! usage and cost, retries, fallback, error codes, timeouts, budgets, outbound denial.

use std::time::{Duration, Instant};

use arcana_tests::backend::{Backend, PROVIDER_KEY as KEY};
use arcana_tests::both_hosts;
use arcana_tests::{call, client};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A backend whose helpers the tests reach through `Deref`, plus call helpers.
struct Env {
    backend: Backend,
}

impl std::ops::Deref for Env {
    type Target = Backend;
    fn deref(&self) -> &Backend {
        &self.backend
    }
}

async fn setup() -> Env {
    Env {
        backend: Backend::start().await,
    }
}

impl Env {
    /// A provider with one retry.
    async fn provider(&self, name: &str, kind: &str, base_url: &str, timeout: i64) -> String {
        self.backend
            .provider(name, kind, base_url, timeout, 1)
            .await
    }

    async fn complete(&self, body: Value) -> (StatusCode, Value) {
        call(
            &self.runner,
            "POST",
            "/api/arcana/llm/complete",
            &self.admin,
            Some(body),
        )
        .await
    }

    async fn usage(&self) -> Value {
        call(
            &self.runner,
            "GET",
            "/api/arcana/llm/usage",
            &self.admin,
            None,
        )
        .await
        .1
    }

    /// Reads a streamed answer: (deltas joined, the final event's name and data).
    async fn stream(&self, body: Value) -> (String, String, Value) {
        let resp = client()
            .post(self.runner.at("/api/arcana/llm/complete"))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        let mut bytes = resp.bytes_stream();
        while let Some(chunk) = bytes.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let mut deltas = String::new();
        let mut last = (String::new(), Value::Null);
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let event = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data: Value = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str(d).unwrap())
                .unwrap_or(Value::Null);
            if event == "delta" {
                deltas.push_str(data["text"].as_str().unwrap());
            } else {
                last = (event, data);
            }
        }
        (deltas, last.0, last.1)
    }
}

both_hosts! {
    async fn plain_openai_call_with_usage_cost_and_the_decrypted_key() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "gpt-test", true).await;
        call(
            &env.runner,
            "PUT",
            "/api/arcana/llm/preferences",
            &env.admin,
            Some(json!({"system_prompt": "Answer in haiku.", "temperature": 0.3})),
        )
        .await;

        let (status, r) = env
            .complete(json!({"messages": [{"role": "user", "content": "hello there"}]}))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["content"], "echo: hello there");
        assert_eq!(r["model_name"], "gpt-test");
        let (pt, ct) = (
            r["usage"]["prompt_tokens"].as_i64().unwrap(),
            r["usage"]["completion_tokens"].as_i64().unwrap(),
        );
        assert!(pt > 0 && ct == 3);
        let expected = pt as f64 * 0.001 + ct as f64 * 0.002;
        assert!((r["cost"].as_f64().unwrap() - expected).abs() < 1e-9);

        let sent = &env.stand_in.received()[0];
        assert_eq!(sent.path, "/v1/chat/completions");
        assert!(
            sent.headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == &format!("Bearer {KEY}"))
        );
        assert_eq!(
            sent.body["messages"][0],
            json!({"role": "system", "content": "Answer in haiku."})
        );
        assert_eq!(sent.body["temperature"], 0.3);
        // The body's size is known, so it is sent with Content-Length, not chunked.
        let header = |name: &str| {
            sent.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert!(header("transfer-encoding").is_none(), "{:?}", sent.headers);
        let length: usize = header("content-length").expect("content-length").parse().unwrap();
        assert_eq!(length, sent.raw_len, "the declared length is the body's");

        let usage = env.usage().await;
        assert_eq!(usage["rows"][0]["calls"], 1);
        assert_eq!(usage["rows"][0]["prompt_tokens"].as_i64(), Some(pt));
        assert!(
            !env.runner.log().contains(KEY),
            "the key must never be logged"
        );
    }
}

both_hosts! {
    async fn streamed_calls_for_both_wire_formats_record_usage() {
        let env = setup().await;
        let oa = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        let an = env
            .provider("an", "anthropic", &env.stand_in.url(), 10)
            .await;
        env.model(&oa, "gpt-test", true).await;
        env.model(&an, "claude-test", false).await;

        let (deltas, event, done) = env
            .stream(json!({"messages": [{"role": "user", "content": "one two three"}], "stream": true}))
            .await;
        assert_eq!(deltas, "echo: one two three");
        assert_eq!(event, "done");
        assert_eq!(done["usage"]["completion_tokens"], 4);
        assert!(done["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
        let openai_req = env.stand_in.received().last().unwrap().clone();
        assert_eq!(openai_req.body["stream_options"]["include_usage"], true);

        let (deltas, event, done) = env
            .stream(json!({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}], "model": "claude-test", "stream": true}))
            .await;
        assert_eq!((deltas.as_str(), event.as_str()), ("echo: hi", "done"));
        assert_eq!(done["model_name"], "claude-test");
        assert_eq!(done["usage"]["completion_tokens"], 2);
        let sent = env.stand_in.received().last().unwrap().clone();
        assert_eq!(sent.path, "/v1/messages");
        assert_eq!(sent.body["system"], "sys");
        assert!(
            sent.headers
                .iter()
                .any(|(k, v)| k == "x-api-key" && v == KEY)
        );

        let usage = env.usage().await;
        let total_calls: i64 = usage["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["calls"].as_i64().unwrap())
            .sum();
        assert_eq!(total_calls, 2);
        assert!(usage["total_cost"].as_f64().unwrap() > 0.0);
    }
}

both_hosts! {
    async fn rate_limits_are_retried_after_the_providers_delay() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "flaky-429", true).await;
        let started = Instant::now();
        let (status, r) = env
            .complete(json!({"messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["attempts"], 2);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After was not honoured"
        );
        let usage = env.usage().await;
        assert_eq!(
            (
                usage["rows"][0]["calls"].as_i64(),
                usage["rows"][0]["errors"].as_i64()
            ),
            (Some(2), Some(1))
        );
    }
}

both_hosts! {
    async fn failures_fall_back_to_the_next_model_before_any_output() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        let broken = env.model(&p, "fail-500", false).await;
        let good = env.model(&p, "gpt-good", false).await;
        let (status, _) = call(&env.runner, "POST", "/api/arcana/llm/routing-rules", &env.admin,
            Some(json!({"name": "primary", "priority": 1, "target_model_id": broken, "fallback_model_ids": [good]}))).await;
        assert_eq!(status, 201);
        let (status, r) = env
            .complete(json!({"messages": [{"role": "user", "content": "help"}]}))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["model_name"], "gpt-good");
        assert_eq!(
            r["attempts"], 3,
            "two tries of the broken model (500 is retryable), then the fallback"
        );
        let (deltas, event, done) = env
            .stream(json!({"messages": [{"role": "user", "content": "again"}], "stream": true}))
            .await;
        assert_eq!((deltas.as_str(), event.as_str()), ("echo: again", "done"));
        assert_eq!(done["model_name"], "gpt-good");
    }
}

both_hosts! {
    async fn provider_errors_map_to_stable_codes() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 1)
            .await;
        for (model, status, code) in [
            ("fail-401", 502, "invalid_api_key"),
            ("malformed", 502, "malformed_response"),
            ("slow", 504, "upstream_timeout"),
        ] {
            env.model(&p, model, false).await;
            let (s, e) = env
                .complete(json!({"messages": [{"role": "user", "content": "x"}], "model": model}))
                .await;
            assert_eq!(
                (s.as_u16(), e["code"].as_str()),
                (status, Some(code)),
                "{model}: {e}"
            );
        }
        let an = env
            .provider("an", "anthropic", &env.stand_in.url(), 5)
            .await;
        env.model(&an, "too-long", false).await; // same name on both providers
        env.model(&p, "too-long", false).await;
        let (_, models) = call(
            &env.runner,
            "GET",
            "/api/arcana/llm/models",
            &env.admin,
            None,
        )
        .await;
        for m in models
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["model_name"] == "too-long")
        {
            let (s, e) = env
                .complete(json!({"messages": [{"role": "user", "content": "x"}], "model": m["id"]}))
                .await;
            assert_eq!(
                (s.as_u16(), e["code"].as_str()),
                (422, Some("context_too_long")),
                "{}: {e}",
                m["provider_name"]
            );
        }
        // A stream cut after output started cannot fall back: the client gets an error event.
        env.model(&p, "cut", false).await;
        let (deltas, event, data) = env.stream(json!({"messages": [{"role": "user", "content": "a b"}], "model": "cut", "stream": true})).await;
        assert_eq!(deltas, "echo: a b");
        assert_eq!(
            (event.as_str(), data["code"].as_str()),
            ("error", Some("malformed_response"))
        );
    }
}

both_hosts! {
    async fn hosts_outside_allowed_outbound_hosts_are_refused() {
        let env = setup().await;
        let other = arcana_tests::stand_in::StandIn::start().await;
        let p = env
            .provider("elsewhere", "openai", &format!("{}/v1", other.url()), 5)
            .await;
        env.model(&p, "gpt-test", true).await;
        let (status, e) = env
            .complete(json!({"messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(
            (status.as_u16(), e["code"].as_str()),
            (502, Some("host_not_allowed"))
        );
        assert!(
            other.received().is_empty(),
            "the request must not leave the runner"
        );
    }
}

both_hosts! {
    async fn a_spent_budget_refuses_further_calls() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "gpt-test", true).await;
        let (_, me) = call(&env.runner, "GET", "/api/auth/me", &env.admin, None).await;
        let id = me["id"].as_str().unwrap();
        let (status, _) = call(
            &env.runner,
            "PUT",
            &format!("/api/arcana/llm/budgets/{id}"),
            &env.admin,
            Some(json!({"monthly_usd": 0.0001})),
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = env
            .complete(json!({"messages": [{"role": "user", "content": "first"}]}))
            .await;
        assert_eq!(status, 200);
        let (status, e) = env
            .complete(json!({"messages": [{"role": "user", "content": "second"}]}))
            .await;
        assert_eq!(
            (status.as_u16(), e["code"].as_str()),
            (402, Some("budget_exceeded"))
        );
        assert_eq!(
            env.stand_in.received().len(),
            1,
            "a refused call never reaches the provider"
        );
        let usage = env.usage().await;
        assert_eq!(usage["monthly_budget_usd"], 0.0001);
    }
}

both_hosts! {
    async fn usage_is_per_user_and_admins_see_everyone() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "gpt-test", true).await;
        let (status, u) = call(
            &env.runner,
            "POST",
            "/api/admin/users",
            &env.admin,
            Some(json!({"username": "carol", "password": "carol password"})),
        )
        .await;
        assert_eq!(status, 201);
        let carol_id = u["id"].as_str().unwrap().to_string();
        let login: Value = client()
            .post(env.runner.at("/api/auth/login"))
            .json(&json!({"username": "carol", "password": "carol password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let carol = login["access_token"].as_str().unwrap().to_string();
        let (status, _) = call(
            &env.runner,
            "POST",
            "/api/arcana/llm/complete",
            &carol,
            Some(json!({"messages": [{"role": "user", "content": "mine"}]})),
        )
        .await;
        assert_eq!(status, 200);
        env.complete(json!({"messages": [{"role": "user", "content": "admin's"}]}))
            .await;

        let (_, own) = call(&env.runner, "GET", "/api/arcana/llm/usage", &carol, None).await;
        assert_eq!(own["rows"].as_array().unwrap().len(), 1);
        assert!(own["rows"][0].get("user_id").is_none());
        let (status, _) = call(
            &env.runner,
            "GET",
            "/api/arcana/llm/usage?all=true",
            &carol,
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (_, all) = call(
            &env.runner,
            "GET",
            "/api/arcana/llm/usage?all=true&days=7",
            &env.admin,
            None,
        )
        .await;
        let users: Vec<&str> = all["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), 2);
        assert!(users.contains(&carol_id.as_str()));
        let (status, _) = call(
            &env.runner,
            "GET",
            "/api/arcana/llm/usage?days=0",
            &env.admin,
            None,
        )
        .await;
        assert_eq!(status, 400);
    }
}

both_hosts! {
    async fn a_large_prompt_reaches_the_provider_whole() {
        // The body is larger than the host's outgoing-body buffer: the component must start
        // the request before writing it, or the write waits forever (a hang found by the
        // chat benchmark once a conversation's history passed a few KiB).
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "gpt-test", true).await;
        let long: String = (0..4000).map(|i| format!("w{} ", i % 10)).collect();
        let started = Instant::now();
        let (status, answer) = env
            .complete(json!({"messages": [{"role": "user", "content": long.trim()}]}))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let sent = env.stand_in.received().last().unwrap().clone();
        assert_eq!(
            sent.body["messages"].as_array().unwrap().last().unwrap()["content"],
            long.trim()
        );
    }
}

/// A model with its own window and reply budget.
async fn sized_model(env: &Env, provider: &str, name: &str, window: i64, default: bool) -> String {
    let (status, m) = env
        .call(
            "POST",
            "/api/arcana/llm/models",
            Some(
                json!({"provider_id": provider, "model_name": name, "max_tokens": 50,
                        "context_window": window, "is_default": default}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    m["id"].as_str().unwrap().to_string()
}

both_hosts! {
    /// A prompt that cannot fit the model's window minus its reply budget is refused
    /// before any provider call, on both entry points; a rule's fallback with a larger
    /// window is chosen instead when there is one, and the explanation says so.
    async fn prompts_beyond_the_context_window_never_reach_a_provider() {
        let env = setup().await;
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        let small = sized_model(&env, &p, "small-window", 100, true).await;
        let long = "lorem ipsum ".repeat(210); // ~2,500 characters, ~630 tokens
        let (status, r) = env
            .complete(json!({"model": "small-window", "messages": [{"role": "user", "content": long}]}))
            .await;
        assert_eq!((status.as_u16(), r["code"].as_str()), (422, Some("context_too_long")), "{r}");
        let (status, r) = env.call("POST", "/api/chat", Some(json!({"message": long}))).await;
        assert_eq!((status.as_u16(), r["code"].as_str()), (422, Some("context_too_long")), "{r}");
        assert!(env.stand_in.received().is_empty(), "a provider was called");
        let (_, convs) = env.call("GET", "/api/chat/conversations", None).await;
        assert_eq!(convs["items"], json!([]), "nothing was stored");
        // A short prompt still works on the small model.
        let (status, r) = env.complete(json!({"messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!((status.as_u16(), r["model_name"].as_str()), (200, Some("small-window")), "{r}");

        // With a larger fallback, routing picks it for the long prompt.
        let large = sized_model(&env, &p, "large-window", 8192, false).await;
        let (status, _) = env
            .call("POST", "/api/arcana/llm/routing-rules", Some(json!({
                "name": "small first", "priority": 1, "target_model_id": small,
                "fallback_model_ids": [large]})))
            .await;
        assert_eq!(status, 201);
        let (status, why) = env
            .call("POST", "/api/arcana/llm/route/explain", Some(json!({"message": long})))
            .await;
        assert_eq!(status, 200, "{why}");
        assert_eq!(why["model"]["model_name"], "large-window");
        assert_eq!(why["context"]["moved_from"], "small-window");
        assert_eq!(why["context"]["context_window"], 8192);
        let (status, r) = env.call("POST", "/api/chat", Some(json!({"message": long}))).await;
        assert_eq!((status.as_u16(), r["model_name"].as_str()), (200, Some("large-window")), "{r}");
        assert_eq!(r["fallback_from"], Value::Null, "a choice, not a failure");
    }
}

both_hosts! {
    /// When the routed model fails and another answers, every answer says so; whether
    /// the defaults are the last resort is the `fallback_to_default` setting, which a
    /// routing rule can override, and the explanation shows the effective choice.
    async fn fallbacks_are_explicit_and_the_defaults_are_a_setting() {
        let env = Env {
            backend: Backend::start_with(
                arcana_tests::RunnerOptions::default().env("SPIN_VARIABLE_FALLBACK_TO_DEFAULT", "false"),
            )
            .await,
        };
        let p = env
            .provider("oa", "openai", &format!("{}/v1", env.stand_in.url()), 10)
            .await;
        env.model(&p, "gpt-default", true).await;
        let broken = env.model(&p, "fail-401", false).await;
        // The deployment says no: the requested model's failure is the answer.
        let (status, r) = env
            .complete(json!({"model": "fail-401", "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!((status.as_u16(), r["code"].as_str()), (502, Some("invalid_api_key")), "{r}");
        let (status, r) = env
            .call("POST", "/api/chat", Some(json!({"message": "x", "model": "fail-401"})))
            .await;
        assert_eq!((status.as_u16(), r["code"].as_str()), (502, Some("invalid_api_key")), "{r}");
        // A rule may allow the defaults for its traffic.
        let (status, rule) = env
            .call("POST", "/api/arcana/llm/routing-rules", Some(json!({
                "name": "may fall back", "priority": 1, "target_model_id": broken,
                "conditions": {"tags": ["try"]}, "fallback_to_default": true})))
            .await;
        assert_eq!(status, 201, "{rule}");
        assert_eq!(rule["fallback_to_default"], true);
        let (_, why) = env
            .call("POST", "/api/arcana/llm/route/explain", Some(json!({"message": "x", "tags": ["try"]})))
            .await;
        assert_eq!(why["fallback_to_default"], true);
        assert_eq!(why["fallbacks"][0]["model_name"], "gpt-default");
        for (path, body) in [
            ("/api/arcana/llm/complete", json!({"tags": ["try"], "messages": [{"role": "user", "content": "x"}]})),
            ("/api/chat", json!({"tags": ["try"], "message": "x"})),
        ] {
            let (status, r) = env.call("POST", path, Some(body)).await;
            assert_eq!(status, 200, "{path}: {r}");
            assert_eq!(r["model_name"], "gpt-default", "{path}");
            assert_eq!(r["attempts"], 2, "{path}");
            assert_eq!(
                r["fallback_from"],
                json!({"model_name": "fail-401", "code": "invalid_api_key"}),
                "{path}"
            );
        }
        let (_, why) = env
            .call("POST", "/api/arcana/llm/route/explain", Some(json!({"message": "x"})))
            .await;
        assert_eq!(why["fallback_to_default"], false, "without the rule, the setting");
    }
}

both_hosts! {
    async fn provider_connections_are_kept_alive_and_reused() {
        let env = setup().await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-reuse", true).await;
        for stream in [false, false, true, false] {
            let (status, _) = env
                .complete(json!({"messages": [{"role": "user", "content": "again"}], "stream": stream}))
                .await;
            assert_eq!(status, 200);
        }
        // Sequential calls travel over one connection: no new TCP (or TLS) handshake each.
        let peers: std::collections::HashSet<_> =
            env.stand_in.received().iter().map(|r| r.peer).collect();
        assert_eq!(peers.len(), 1, "{peers:?}");
    }
}
