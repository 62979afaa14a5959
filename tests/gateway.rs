//! The OpenAI-compatible gateway over real HTTP on both hosts, against the provider
//! stand-in (real OpenAI and Anthropic wire formats on 127.0.0.1): the wire format of
//! answers, chunks and errors; routing, fallback, budgets and the ledger; tools passed
//! through to OpenAI-kind providers and translated for Anthropic-kind ones; embeddings;
//! calls kept as conversations; and the official `openai` Python client (PyPI) pointed
//! at `/v1` with a personal access token.
//!
//! Without the `openai` package the client test prints a SKIPPED line, unless
//! `ARCANA_REQUIRE_OPENAI=1` (set by CI).

use std::process::Command;
use tokio::process::Command as AsyncCommand;

use arcana_tests::backend::Backend;
use arcana_tests::{both_hosts, call, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A personal token of the admin with `scopes`.
async fn personal_token(env: &Backend, scopes: &[&str], keep_history: bool) -> String {
    let (status, t) = env
        .call(
            "POST",
            "/api/auth/tokens",
            Some(json!({"name": "client", "scopes": scopes, "keep_history": keep_history})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// POSTs to the gateway; answers the status, the headers and the body text.
async fn post(
    env: &Backend,
    path: &str,
    token: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = client()
        .post(env.runner.at(path))
        .bearer_auth(token)
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// The JSON chunks of an event stream, and whether it ended with `[DONE]`.
fn sse_chunks(text: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data: ") {
            if data == "[DONE]" {
                done = true;
            } else {
                out.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    (out, done)
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

both_hosts! {
    async fn answers_chunks_models_and_errors_are_in_openais_shape() {
        let env = Backend::start().await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-echo", true).await;
        let hidden = env.model(&p, "gpt-hidden", false).await;
        let (status, _) = env.call("PUT", &format!("/api/arcana/llm/models/{hidden}/access"),
            Some(json!({"roles": [], "users": ["00000000-0000-0000-0000-000000000000"]}))).await;
        assert_eq!(status, 200);
        let bob = env.user("bob", &[]).await;
        let token = personal_token(&env, &["llm"], false).await;

        let (status, headers, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "gpt-echo", "messages": user("hi there")}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let c: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["choices"][0]["message"]["content"], "echo: hi there");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert!(c["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
        assert_eq!(headers["x-arcana-model"], "gpt-echo");
        // The client's own fields go through; the model's token limit is applied.
        let sent = env.stand_in.received().last().unwrap().body.clone();
        assert_eq!(sent["max_tokens"], 256);

        // Streamed: chunks, the usage chunk only when asked, then [DONE].
        for include_usage in [true, false] {
            let (status, headers, text) = post(&env, "/v1/chat/completions", &token,
                json!({"model": "gpt-echo", "messages": user("stream me please"), "stream": true,
                       "stream_options": {"include_usage": include_usage}}), &[]).await;
            assert_eq!(status, 200, "{text}");
            assert_eq!(headers["content-type"], "text/event-stream");
            let (chunks, done) = sse_chunks(&text);
            assert!(done, "{text}");
            let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
            assert_eq!(content, "echo: stream me please");
            let usage = chunks.iter().find(|c| c["usage"].is_object());
            assert_eq!(usage.is_some(), include_usage, "{text}");
            // The provider was asked for usage either way: the ledger needs it.
            let sent = env.stand_in.received().last().unwrap().body.clone();
            assert_eq!(sent["stream_options"]["include_usage"], true);
        }

        // Models: what the caller may use, by name, and arcana/auto.
        let resp = client().get(env.runner.at("/v1/models")).bearer_auth(&bob).send().await.unwrap();
        let models: Value = resp.json().await.unwrap();
        assert_eq!(models["object"], "list");
        let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["gpt-echo", "arcana/auto"], "{models}");

        // Errors: OpenAI's body, statuses clients act on, no retry where it cannot help.
        for (token, body, status, code, param) in [
            ("arc_not_a_token", json!({"model": "gpt-echo", "messages": user("x")}), 401, "invalid_api_key", None),
            (bob.as_str(), json!({"model": "gpt-hidden", "messages": user("x")}), 404, "model_not_found", None),
            (token.as_str(), json!({"model": "nope", "messages": user("x")}), 404, "model_not_found", None),
            (token.as_str(), json!({"model": "gpt-echo", "messages": []}), 400, "validation_failed", Some("messages")),
            (token.as_str(), json!({"model": "gpt-echo", "messages": user("x"), "n": 2}), 400, "unsupported_parameter", None),
        ] {
            let (got, headers, text) = post(&env, "/v1/chat/completions", token, body.clone(), &[]).await;
            assert_eq!(got.as_u16(), status, "{body}: {text}");
            let e: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(e["error"]["code"], code, "{text}");
            assert!(e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(e["error"]["type"].is_string());
            if let Some(p) = param {
                assert_eq!(e["error"]["param"], p, "{text}");
            }
            assert_eq!(headers["x-should-retry"], "false");
        }
        let resp = client().get(env.runner.at("/v1/nothing")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["code"], "route_not_found");
        // A token without the llm scope is refused with OpenAI's shape too.
        let reader = personal_token(&env, &["read"], false).await;
        let (status, _, text) = post(&env, "/v1/chat/completions", &reader,
            json!({"model": "gpt-echo", "messages": user("x")}), &[]).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("insufficient_scope"), "{text}");
    }
}

both_hosts! {
    async fn routing_fallback_budgets_and_one_ledger_row_per_attempt() {
        let env = Backend::start().await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-echo", true).await;
        env.model(&p, "fail-500", false).await;
        let coder = env.model(&p, "gpt-coder", false).await;
        let (status, _) = env.call("POST", "/api/arcana/llm/routing-rules", Some(json!({
            "name": "code", "priority": 1, "target_model_id": coder, "conditions": {"tags": ["code"]}}))).await;
        assert_eq!(status, 201);
        let token = personal_token(&env, &["llm", "read"], false).await;

        // A failing model falls back to the default, visibly; both attempts are in the ledger.
        let (status, headers, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "fail-500", "messages": user("help")}), &[]).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(headers["x-arcana-model"], "gpt-echo");
        assert_eq!(headers["x-arcana-fallback-from"], "upstream_error");
        assert_eq!(headers["x-arcana-attempts"], "2");
        // Streamed too: the failure comes before any output, so the fallback still happens.
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "fail-500", "messages": user("help"), "stream": true}), &[]).await;
        assert_eq!(status, 200);
        assert!(text.contains("echo: "), "{text}");

        // arcana/auto with tags (header or metadata) lets the rules choose.
        let (_, headers, _) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "arcana/auto", "messages": user("fix this")}), &[("x-arcana-tags", "code")]).await;
        assert_eq!(headers["x-arcana-model"], "gpt-coder");
        let (_, headers, _) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "arcana/auto", "messages": user("fix this"), "metadata": {"tags": "code"}}), &[]).await;
        assert_eq!(headers["x-arcana-model"], "gpt-coder");
        let (_, headers, _) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "arcana/auto", "messages": user("hello")}), &[]).await;
        assert_eq!(headers["x-arcana-model"], "gpt-echo");

        let (_, usage) = call(&env.runner, "GET", "/api/arcana/llm/usage", &token, None).await;
        let rows = usage["rows"].as_array().unwrap();
        let calls = |name: &str| rows.iter().filter(|r| r["model_name"] == name).map(|r| r["calls"].as_i64().unwrap()).sum::<i64>();
        let errors = rows.iter().filter(|r| r["model_name"] == "fail-500").map(|r| r["errors"].as_i64().unwrap()).sum::<i64>();
        assert_eq!((calls("fail-500"), errors), (2, 2), "{usage}");
        assert_eq!(calls("gpt-echo"), 3, "{usage}");
        assert_eq!(calls("gpt-coder"), 2, "{usage}");
        assert!(usage["total_cost"].as_f64().unwrap() > 0.0);

        // A stream cut after its first words ends with an error chunk, not [DONE].
        env.model(&p, "cut", false).await;
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "cut", "messages": user("cut me off"), "stream": true}), &[]).await;
        assert_eq!(status, 200);
        let (chunks, done) = sse_chunks(&text);
        assert!(!done, "{text}");
        assert!(chunks.iter().any(|c| c["choices"][0]["delta"]["content"].is_string()), "{text}");
        assert_eq!(chunks.last().unwrap()["error"]["code"], "malformed_response", "{text}");

        // A provider that hangs past its timeout is a 504 in OpenAI's shape, in time.
        let hanging = env.provider("hangs", "openai", &format!("{}/v1", env.stand_in.url()), 1, 0).await;
        let slow = env.model(&hanging, "slow", false).await;
        let (status, _) = env.call("POST", "/api/arcana/llm/routing-rules", Some(json!({
            "name": "hang", "priority": 0, "target_model_id": slow, "conditions": {"tags": ["hang"]},
            "fallback_to_default": false}))).await;
        assert_eq!(status, 201);
        let started = std::time::Instant::now();
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "arcana/auto", "messages": user("wait")}), &[("x-arcana-tags", "hang")]).await;
        assert_eq!(status, 504, "{text}");
        assert!(started.elapsed() < std::time::Duration::from_millis(2900), "{:?}", started.elapsed());
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((e["error"]["type"].as_str(), e["error"]["code"].as_str()), (Some("api_error"), Some("upstream_timeout")));

        // A spent budget: 429 insufficient_quota, and no retry.
        let (_, me) = env.call("GET", "/api/auth/me", None).await;
        let id = me["id"].as_str().unwrap();
        let (status, _) = env.call("PUT", &format!("/api/arcana/llm/budgets/{id}"), Some(json!({"monthly_usd": 0.0001}))).await;
        assert_eq!(status, 204);
        let before = env.stand_in.received().len();
        let (status, headers, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "gpt-echo", "messages": user("more")}), &[]).await;
        assert_eq!(status, 429, "{text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((e["error"]["type"].as_str(), e["error"]["code"].as_str()), (Some("insufficient_quota"), Some("insufficient_quota")));
        assert_eq!(headers["x-should-retry"], "false");
        assert_eq!(env.stand_in.received().len(), before, "no provider call over budget");
    }
}

both_hosts! {
    async fn tools_pass_through_or_are_translated_and_embeddings_work() {
        let env = Backend::start().await;
        let oa = env.openai_provider().await;
        // Both providers' tool-calling models are named `tool`: requests name them by id.
        let gpt = env.model(&oa, "tool", true).await;
        env.model(&oa, "text-embedding-stand-in", false).await;
        let an = env.provider("an", "anthropic", &env.stand_in.url(), 10, 0).await;
        let claude = env.model(&an, "tool", false).await;
        let token = personal_token(&env, &["llm"], false).await;
        let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "Looks up",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}}}}]);

        // OpenAI-kind: tools, tool_choice and JSON mode reach the provider as sent.
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": gpt, "messages": user("find cats"), "tools": tools, "tool_choice": "auto",
                   "response_format": {"type": "json_object"}}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let sent = env.stand_in.received().last().unwrap().body.clone();
        assert_eq!(sent["tools"], tools);
        assert_eq!(sent["response_format"]["type"], "json_object");
        let c: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");

        // Anthropic-kind: the same request translated, the tool call translated back.
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": claude, "messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "find cats"}],
                   "tools": tools, "tool_choice": "required"}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let received = env.stand_in.received();
        let sent = &received.last().unwrap();
        assert!(sent.path.ends_with("/v1/messages"), "{}", sent.path);
        assert_eq!(sent.body["system"], "be terse");
        assert_eq!(sent.body["tools"][0]["input_schema"]["properties"]["echo"]["type"], "string");
        assert_eq!(sent.body["tool_choice"]["type"], "any");
        let c: Value = serde_json::from_str(&text).unwrap();
        let call0 = &c["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call0["function"]["name"], "lookup");
        let args: Value = serde_json::from_str(call0["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["echo"], "find cats");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["total_tokens"], 18);

        // Streamed from Anthropic: tool-call deltas that add up to the arguments.
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": claude, "messages": user("find dogs"), "tools": tools, "stream": true,
                   "stream_options": {"include_usage": true}}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let (chunks, done) = sse_chunks(&text);
        assert!(done);
        let args: String = chunks.iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap()["echo"], "find dogs");
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 7);

        // Plain text streamed from Anthropic: content deltas, a stop, usage, [DONE].
        env.model(&an, "claude-echo", false).await;
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": "claude-echo", "messages": user("say it slowly"), "stream": true,
                   "stream_options": {"include_usage": true}}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let (text_chunks, done) = sse_chunks(&text);
        assert!(done, "{text}");
        assert_eq!(text_chunks[0]["object"], "chat.completion.chunk");
        let content: String = text_chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(content, "echo: say it slowly");
        assert!(text_chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{text}");
        assert!(text_chunks.last().unwrap()["usage"]["prompt_tokens"].as_i64().unwrap() > 0);

        // A tool result goes back as a tool_result block.
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": claude, "messages": [
                {"role": "user", "content": "find cats"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"echo\":\"find cats\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "three cats"}]}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let sent = env.stand_in.received().last().unwrap().body.clone();
        assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(sent["messages"][2]["content"][0]["content"], "three cats");

        // What Anthropic cannot do is a clear 400, before any call.
        let before = env.stand_in.received().len();
        let (status, _, text) = post(&env, "/v1/chat/completions", &token,
            json!({"model": claude, "messages": user("x"), "response_format": {"type": "json_object"}}), &[]).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("unsupported_parameter") && text.contains("response_format"), "{text}");
        assert_eq!(env.stand_in.received().len(), before);

        // Embeddings through an OpenAI-kind model; equal texts, equal vectors.
        let (status, _, text) = post(&env, "/v1/embeddings", &token,
            json!({"model": "text-embedding-stand-in", "input": ["a cat", "a dog", "a cat"]}), &[]).await;
        assert_eq!(status, 200, "{text}");
        let e: Value = serde_json::from_str(&text).unwrap();
        let data = e["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[0]["embedding"], data[2]["embedding"]);
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);
        let (status, _, text) = post(&env, "/v1/embeddings", &token, json!({"model": claude, "input": "x"}), &[]).await;
        assert_eq!(status, 400, "{text}");
        let (status, _, _) = post(&env, "/v1/embeddings", &token, json!({"model": "text-embedding-stand-in"}), &[]).await;
        assert_eq!(status, 400);
    }
}

both_hosts! {
    async fn calls_are_kept_as_conversations_when_asked() {
        let env = Backend::start().await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-echo", true).await;
        let plain = personal_token(&env, &["llm", "read"], false).await;
        let keeping = personal_token(&env, &["llm", "read"], true).await;

        let (_, headers, _) = post(&env, "/v1/chat/completions", &plain,
            json!({"model": "gpt-echo", "messages": user("not kept")}), &[]).await;
        assert!(headers.get("x-arcana-conversation-id").is_none());
        let (_, headers, _) = post(&env, "/v1/chat/completions", &plain,
            json!({"model": "gpt-echo", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "kept by header zebra"}]}),
            &[("x-arcana-history", "true")]).await;
        let id = headers["x-arcana-conversation-id"].to_str().unwrap().to_string();
        let (status, history) = call(&env.runner, "GET", &format!("/api/chat/history/{id}"), &plain, None).await;
        assert_eq!(status, 200, "{history}");
        let texts: Vec<&str> = history["items"].as_array().unwrap().iter().map(|m| m["message_content"].as_str().unwrap()).collect();
        assert_eq!(texts, ["kept by header zebra", "echo: kept by header zebra"]);
        let (_, found) = call(&env.runner, "GET", "/api/chat/search?q=zebra", &plain, None).await;
        assert!(found.to_string().contains(&id), "{found}");

        // A token that keeps history keeps streamed calls too, unless the header says no.
        let (status, _, _) = post(&env, "/v1/chat/completions", &keeping,
            json!({"model": "gpt-echo", "messages": user("streamed giraffe"), "stream": true}), &[]).await;
        assert_eq!(status, 200);
        let (_, headers, _) = post(&env, "/v1/chat/completions", &keeping,
            json!({"model": "gpt-echo", "messages": user("declined")}), &[("x-arcana-history", "false")]).await;
        assert!(headers.get("x-arcana-conversation-id").is_none());
        let (_, found) = call(&env.runner, "GET", "/api/chat/search?q=giraffe", &plain, None).await;
        assert!(found.to_string().contains("echo: streamed <mark>giraffe</mark>"), "{found}");
        let (_, list) = call(&env.runner, "GET", "/api/chat/conversations", &plain, None).await;
        let titles: Vec<&str> = list["items"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
        assert_eq!(titles.len(), 2, "{list}");
        assert!(!titles.contains(&"declined") && !titles.contains(&"not kept"), "{titles:?}");
    }
}

/// Whether the `openai` package can be imported; prints SKIPPED when not (or fails
/// under `ARCANA_REQUIRE_OPENAI=1`).
fn openai_client_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("ARCANA_REQUIRE_OPENAI").as_deref() != Ok("1"),
            "the openai package is not installed but ARCANA_REQUIRE_OPENAI=1 (pip install openai)"
        );
        eprintln!(
            "SKIPPED: the openai Python package is not installed; the official-client test did not run"
        );
    }
    ok
}

both_hosts! {
    async fn the_official_openai_client_works_with_a_personal_token() {
        if !openai_client_available() {
            return;
        }
        let env = Backend::start().await;
        let p = env.openai_provider().await;
        env.model(&p, "gpt-echo", true).await;
        env.model(&p, "fail-401", false).await;
        env.model(&p, "tool", false).await;
        let token = personal_token(&env, &["llm"], false).await;
        let (_, me) = env.call("GET", "/api/auth/me", None).await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/openai_client.py");
        // Async: the stand-in answers on this test's runtime meanwhile.
        let run = |phase: &str| {
            AsyncCommand::new("python3")
                .arg(script)
                .arg(phase)
                .env("OPENAI_BASE_URL", env.runner.at("/v1"))
                .env("OPENAI_API_KEY", &token)
                .env("NO_PROXY", "127.0.0.1")
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .kill_on_drop(true)
                .output()
        };
        let out = tokio::time::timeout(std::time::Duration::from_secs(120), run("calls")).await.expect("the client finishes").unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("ok: all calls"), "{text}");

        // The same client meets a spent budget as a RateLimitError it does not retry.
        let id = me["id"].as_str().unwrap();
        let (status, _) = env.call("PUT", &format!("/api/arcana/llm/budgets/{id}"), Some(json!({"monthly_usd": 0}))).await;
        assert_eq!(status, 204);
        let before = env.stand_in.received().len();
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), run("budget")).await.expect("the client finishes").unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("ok: budget"), "{text}");
        assert_eq!(env.stand_in.received().len(), before);
    }
}
