//! Chat and context memory over real HTTP, with the provider stand-in: both sides
//! persisted, prompts built from preferences, memory and history, streaming,
//! disconnects, provider failures, search, export/import, pagination, isolation.

use std::time::{Duration, Instant};

use arcana_tests::backend::Backend;
use arcana_tests::both_hosts;
use arcana_tests::{RunnerOptions, call, client};
use futures::StreamExt;
use serde_json::{Value, json};

type Env = Backend;

async fn setup() -> Env {
    setup_with(RunnerOptions::default()).await
}

async fn setup_with(opts: RunnerOptions) -> Env {
    let env = Backend::start_with(opts).await;
    let provider = env.openai_provider().await;
    env.model(&provider, "gpt-chat", true).await;
    env.model(&provider, "fail-401", false).await;
    env
}

async fn history_of(env: &Env, conv: &str) -> Vec<Value> {
    let (status, page) = env
        .call("GET", &format!("/api/chat/history/{conv}?limit=200"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

both_hosts! {
    async fn chat_persists_both_sides_and_builds_the_prompt() {
        // Memories by key order, as with `semantic_memory=false` (relevance is
        // tests/semantic.rs's): every memory fits, in a deterministic order.
        let env = setup_with(RunnerOptions::default().env("SPIN_VARIABLE_SEMANTIC_MEMORY", "false")).await;
        env.call(
            "PUT",
            "/api/arcana/llm/preferences",
            Some(json!({"system_prompt": "You are terse."})),
        )
        .await;
        env.call(
            "POST",
            "/api/arcana/context-memory",
            Some(json!({"key": "name", "value": "Ada"})),
        )
        .await;
        env.call(
            "POST",
            "/api/arcana/context-memory",
            Some(json!({"key": "editor", "value": {"likes": "helix"}})),
        )
        .await;

        let (status, r) = env
            .call(
                "POST",
                "/api/chat",
                Some(json!({"message": "First question\nwith detail"})),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["content"], "echo: First question\nwith detail");
        let conv = r["conversation_id"].as_str().unwrap().to_string();
        let (_, list) = env.call("GET", "/api/chat/conversations", None).await;
        assert_eq!(list["items"][0]["title"], "First question");

        let (status, r2) = env
            .call(
                "POST",
                "/api/chat",
                Some(json!({"conversation_id": conv, "message": "second"})),
            )
            .await;
        assert_eq!(status, 200);
        let history = history_of(&env, &conv).await;
        let contents: Vec<(&str, &str)> = history
            .iter()
            .map(|m| {
                (
                    m["sender"].as_str().unwrap(),
                    m["message_content"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            contents,
            vec![
                ("user", "First question\nwith detail"),
                ("llm", "echo: First question\nwith detail"),
                ("user", "second"),
                ("llm", "echo: second"),
            ]
        );
        assert_eq!(history[3]["id"], r2["reply_message_id"]);
        assert_eq!(history[2]["id"], r2["user_message_id"]);
        assert_eq!(history[3]["model_name"], "gpt-chat");
        assert!(history[3]["prompt_tokens"].as_i64().unwrap() > 0);

        // What the provider saw: system prompt with memories in key order, then history.
        let sent = env.stand_in.received().last().unwrap().body.clone();
        let msgs = sent["messages"].as_array().unwrap();
        let system = msgs[0]["content"].as_str().unwrap();
        assert!(system.starts_with("You are terse."), "{system}");
        let (e, n) = (
            system.find("- editor: {\"likes\":\"helix\"}").unwrap(),
            system.find("- name: \"Ada\"").unwrap(),
        );
        assert!(e < n, "memories in a deterministic (key) order");
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
        let (_, mem) = env.call("GET", "/api/arcana/context-memory", None).await;
        assert!(
            mem["items"][0]["last_accessed"].as_str().unwrap()
                > mem["items"][0]["created_at"].as_str().unwrap()
        );

        // Opting out of memory.
        env.call(
            "POST",
            "/api/chat",
            Some(json!({"conversation_id": conv, "message": "no memory", "use_memory": false})),
        )
        .await;
        let sent = env.stand_in.received().last().unwrap().body.clone();
        assert!(
            !sent["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Ada")
        );
    }
}

async fn read_sse(resp: reqwest::Response) -> Vec<(String, Value)> {
    arcana_tests::sse::SseReader::new(resp)
        .all()
        .await
        .into_iter()
        .map(|e| (e.event, e.data))
        .collect()
}

both_hosts! {
    async fn streaming_sends_deltas_then_the_stored_ids() {
        let env = setup().await;
        let resp = client()
            .post(env.runner.at("/api/chat"))
            .bearer_auth(&env.admin)
            .json(&json!({"message": "stream me please", "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let events = read_sse(resp).await;
        assert_eq!(events[0].0, "start");
        let text: String = events
            .iter()
            .filter(|(e, _)| e == "delta")
            .map(|(_, d)| d["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "echo: stream me please");
        let (last, done) = events.last().unwrap();
        assert_eq!(last, "done");
        let conv = done["conversation_id"].as_str().unwrap();
        let history = history_of(&env, conv).await;
        assert_eq!(history[1]["id"], done["reply_message_id"]);
        assert_eq!(history[1]["status"], "complete");
        assert_eq!(
            history[1]["completion_tokens"],
            done["usage"]["completion_tokens"]
        );
    }
}

both_hosts! {
    async fn a_client_that_disconnects_mid_stream_loses_nothing() {
        let env = setup().await;
        let long: String = (0..150).map(|i| format!("w{i} ")).collect();
        let resp = client()
            .post(env.runner.at("/api/chat"))
            .bearer_auth(&env.admin)
            .json(&json!({"message": long.trim(), "stream": true}))
            .send()
            .await
            .unwrap();
        let mut body = resp.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        let start: String = String::from_utf8_lossy(&first).to_string();
        let conv = start.split("\"conversation_id\":\"").nth(1).unwrap()[..36].to_string();
        drop(body); // the user closes the tab
        let deadline = Instant::now() + Duration::from_secs(30);
        let history = loop {
            let h = history_of(&env, &conv).await;
            if (h.len() == 2 && h[1]["status"] == "complete") || Instant::now() > deadline {
                break h;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(history.len(), 2, "the reply is stored exactly once");
        assert_eq!(
            history[1]["message_content"].as_str().unwrap(),
            format!("echo: {}", long.trim())
        );
        assert_eq!(history[1]["status"], "complete");
    }
}

both_hosts! {
    async fn a_provider_failure_keeps_the_question_and_answers_502() {
        let env = setup().await;
        // Make the failing model the only candidate (the system default), so no fallback applies.
        let (_, models) = env.call("GET", "/api/arcana/llm/models", None).await;
        let failing = models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model_name"] == "fail-401")
            .unwrap()
            .clone();
        let (status, _) = env.call("PUT", &format!("/api/arcana/llm/models/{}", failing["id"].as_str().unwrap()),
            Some(json!({"provider_id": failing["provider_id"], "model_name": "fail-401", "max_tokens": 256, "context_window": 8192, "is_default": true}))).await;
        assert_eq!(status, 200);
        let (status, e) = env
            .call("POST", "/api/chat", Some(json!({"message": "will fail"})))
            .await;
        assert_eq!(
            (status.as_u16(), e["code"].as_str()),
            (502, Some("invalid_api_key"))
        );
        let (_, list) = env.call("GET", "/api/chat/conversations", None).await;
        let conv = list["items"][0]["id"].as_str().unwrap();
        let history = history_of(&env, conv).await;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["message_content"], "will fail");
    }
}

both_hosts! {
    async fn another_users_conversation_is_a_404_everywhere() {
        let env = setup().await;
        let (_, r) = env
            .call(
                "POST",
                "/api/chat",
                Some(json!({"message": "secret plans for zanzibar"})),
            )
            .await;
        let conv = r["conversation_id"].as_str().unwrap().to_string();
        env.call(
            "POST",
            "/api/arcana/context-memory",
            Some(json!({"key": "k", "value": 1})),
        )
        .await;
        let bob = env.user("bob", &[]).await;
        for (method, path, body) in [
            ("GET", format!("/api/chat/history/{conv}"), None),
            (
                "PUT",
                format!("/api/chat/conversations/{conv}"),
                Some(json!({"title": "mine now"})),
            ),
            ("DELETE", format!("/api/chat/conversations/{conv}"), None),
            (
                "GET",
                format!("/api/chat/conversations/{conv}/export"),
                None,
            ),
            (
                "POST",
                "/api/chat".to_string(),
                Some(json!({"conversation_id": conv, "message": "hi"})),
            ),
            (
                "POST",
                "/api/chat/clear".to_string(),
                Some(json!({"conversation_id": conv})),
            ),
            ("GET", "/api/arcana/context-memory/k".to_string(), None),
            ("DELETE", "/api/arcana/context-memory/k".to_string(), None),
        ] {
            let (status, e) = call(&env.runner, method, &path, &bob, body).await;
            assert_eq!(
                (status.as_u16(), e["code"].as_str()),
                (404, Some("not_found")),
                "{method} {path}"
            );
            assert!(!e.to_string().contains("zanzibar"));
        }
        let (_, list) = call(&env.runner, "GET", "/api/chat/conversations", &bob, None).await;
        assert!(list["items"].as_array().unwrap().is_empty());
        let (_, found) = call(
            &env.runner,
            "GET",
            "/api/chat/search?q=zanzibar",
            &bob,
            None,
        )
        .await;
        assert!(found["hits"].as_array().unwrap().is_empty());
        let (_, mem) = call(&env.runner, "GET", "/api/arcana/context-memory", &bob, None).await;
        assert!(mem["items"].as_array().unwrap().is_empty());
        assert_eq!(
            history_of(&env, &conv).await.len(),
            2,
            "nothing of the owner's changed"
        );
    }
}

both_hosts! {
    async fn search_ranks_messages_and_titles_with_snippets() {
        let env = setup().await;
        let (_, c) = env
            .call(
                "POST",
                "/api/chat/conversations",
                Some(json!({"title": "Kubernetes notes"})),
            )
            .await;
        let conv = c["id"].as_str().unwrap();
        env.call(
            "POST",
            "/api/chat",
            Some(
                json!({"conversation_id": conv, "message": "how do I drain a kubernetes node safely"}),
            ),
        )
        .await;
        env.call(
            "POST",
            "/api/chat",
            Some(json!({"message": "unrelated question about bread"})),
        )
        .await;
        let (status, r) = env
            .call("GET", "/api/chat/search?q=kubernetes%20drain", None)
            .await;
        assert_eq!(status, 200);
        let hits = r["hits"].as_array().unwrap();
        assert!(!hits.is_empty());
        assert!(hits.iter().all(|h| h["conversation_id"] == conv));
        assert!(hits[0]["snippet"].as_str().unwrap().contains("<mark>"));
        let ranks: Vec<f64> = hits.iter().map(|h| h["rank"].as_f64().unwrap()).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]),
            "best first: {ranks:?}"
        );
        let (_, r) = env.call("GET", "/api/chat/search?q=notes", None).await;
        assert!(
            r["hits"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["message_id"].is_null()),
            "titles are searched"
        );
        let (_, r) = env
            .call("GET", "/api/chat/search?q=%22%20OR%20*", None)
            .await;
        assert!(
            r["hits"].as_array().unwrap().is_empty(),
            "query syntax is neutralised"
        );
        let (status, _) = env.call("GET", "/api/chat/search?q=", None).await;
        assert_eq!(status, 400);
    }
}

both_hosts! {
    async fn pagination_is_stable_while_conversations_are_added() {
        let env = setup().await;
        for i in 0..7 {
            env.call(
                "POST",
                "/api/chat/conversations",
                Some(json!({"title": format!("c{i}")})),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/chat/conversations?limit=3&cursor={c}"),
                None => "/api/chat/conversations?limit=3".into(),
            };
            let (_, page) = env.call("GET", &path, None).await;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["title"].as_str().unwrap().to_string()),
            );
            // A new conversation arrives between pages: it sorts first, so it must not shift the rest.
            env.call(
                "POST",
                "/api/chat/conversations",
                Some(json!({"title": format!("new{added}")})),
            )
            .await;
            added += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..7).rev().map(|i| format!("c{i}")).collect();
        assert_eq!(seen, expected, "no duplicates, no gaps");
        let (_, page) = env.call("GET", "/api/chat/conversations?q=new", None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), added);
    }
}

both_hosts! {
    async fn clear_delete_export_and_import() {
        let env = setup().await;
        let (_, r) = env
            .call("POST", "/api/chat", Some(json!({"message": "keep me"})))
            .await;
        let conv = r["conversation_id"].as_str().unwrap().to_string();
        let (status, md) = {
            let resp = client()
                .get(env.runner.at(&format!(
                    "/api/chat/conversations/{conv}/export?format=markdown"
                )))
                .bearer_auth(&env.admin)
                .send()
                .await
                .unwrap();
            (resp.status(), resp.text().await.unwrap())
        };
        assert_eq!(status, 200);
        assert!(
            md.starts_with("# keep me") && md.contains("echo: keep me"),
            "{md}"
        );
        let (_, exported) = env
            .call(
                "GET",
                &format!("/api/chat/conversations/{conv}/export"),
                None,
            )
            .await;
        assert_eq!(exported["format"], "arcana.conversation.v1");
        let (status, imported) = env
            .call("POST", "/api/chat/import", Some(exported.clone()))
            .await;
        assert_eq!(status, 201, "{imported}");
        let copy = imported["id"].as_str().unwrap().to_string();
        let copied = history_of(&env, &copy).await;
        assert_eq!(copied.len(), 2);
        assert_eq!(copied[1]["message_content"], "echo: keep me");
        let mut bad = exported.clone();
        bad["format"] = json!("other");
        assert_eq!(env.call("POST", "/api/chat/import", Some(bad)).await.0, 422);

        let (_, cleared) = env
            .call(
                "POST",
                "/api/chat/clear",
                Some(json!({"conversation_id": conv})),
            )
            .await;
        assert_eq!(cleared["deleted"], 2);
        assert!(history_of(&env, &conv).await.is_empty());
        assert_eq!(
            history_of(&env, &copy).await.len(),
            2,
            "clearing one conversation leaves others"
        );
        let (status, _) = env
            .call("DELETE", &format!("/api/chat/conversations/{copy}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, _) = env
            .call("GET", &format!("/api/chat/history/{copy}"), None)
            .await;
        assert_eq!(status, 404);
        let (_, cleared) = env.call("POST", "/api/chat/clear", None).await;
        assert_eq!(cleared["deleted"], 0);
    }
}

both_hosts! {
    async fn memories_are_validated_upserted_and_deleted() {
        let env = setup().await;
        let (status, _) = env
            .call(
                "POST",
                "/api/arcana/context-memory",
                Some(json!({"key": "bad key!", "value": 1})),
            )
            .await;
        assert_eq!(status, 422);
        let (status, _) = env
            .call(
                "POST",
                "/api/arcana/context-memory",
                Some(json!({"key": "big", "value": "x".repeat(20_000)})),
            )
            .await;
        assert_eq!(status, 422);
        let (status, m) = env
            .call(
                "POST",
                "/api/arcana/context-memory",
                Some(json!({"key": "project", "value": {"name": "arcana"}})),
            )
            .await;
        assert_eq!(status, 201);
        let (status, m2) = env
            .call(
                "POST",
                "/api/arcana/context-memory",
                Some(json!({"key": "project", "value": {"name": "arcana2"}})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(m["id"], m2["id"]);
        let (_, got) = env
            .call("GET", "/api/arcana/context-memory/project", None)
            .await;
        assert_eq!(got["value"]["name"], "arcana2");
        assert_eq!(
            env.call("DELETE", "/api/arcana/context-memory/project", None)
                .await
                .0,
            204
        );
        assert_eq!(
            env.call("GET", "/api/arcana/context-memory/project", None)
                .await
                .0,
            404
        );
    }
}

both_hosts! {
    async fn concurrent_messages_keep_a_total_order_without_duplicates() {
        let env = setup().await;
        let (_, c) = env
            .call(
                "POST",
                "/api/chat/conversations",
                Some(json!({"title": "busy"})),
            )
            .await;
        let conv = c["id"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let url = env.runner.at("/api/chat");
            let token = env.admin.clone();
            let conv = conv.clone();
            tasks.push(tokio::spawn(async move {
                client()
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"conversation_id": conv, "message": format!("m{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        // Read back in pages of 3 while more messages arrive: oldest first, no repeats, no gaps.
        let mut seen: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/chat/history/{conv}?limit=3&cursor={c}"),
                None => format!("/api/chat/history/{conv}?limit=3"),
            };
            let (_, page) = env.call("GET", &path, None).await;
            seen.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["seq"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, (1..=16).collect::<Vec<i64>>());
        let history = history_of(&env, &conv).await;
        let users: Vec<&str> = history
            .iter()
            .filter(|m| m["sender"] == "user")
            .map(|m| m["message_content"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), 8);
    }
}

both_hosts! {
    /// NUL and other control characters in queries, titles, keys, names and messages are
    /// refused with 422 or handled; never a server error.
    async fn control_characters_never_cause_a_server_error() {
        let env = setup().await;
        let (code, conv) = env
            .call("POST", "/api/chat/conversations", Some(json!({"title": "plain"})))
            .await;
        assert_eq!(code, 201);
        let id = conv["id"].as_str().unwrap();
        for q in ["a%00b", "%00", "x%01%1fy", "%07bell", "a%0Ab"] {
            let (code, body) = env.call("GET", &format!("/api/chat/search?q={q}"), None).await;
            assert_eq!(code, 200, "search {q}: {body}");
        }
        for bad in ["a\u{0}b", "tab\tand\u{1b}[31mred", "line\nbreak"] {
            let (code, body) = env
                .call("POST", "/api/chat/conversations", Some(json!({"title": bad})))
                .await;
            assert_eq!(code, 422, "title {bad:?}: {body}");
            let (code, _) = env
                .call("PUT", &format!("/api/chat/conversations/{id}"), Some(json!({"title": bad})))
                .await;
            assert_eq!(code, 422, "rename {bad:?}");
            let (code, _) = env
                .call("POST", "/api/arcana/context-memory", Some(json!({"key": bad, "value": 1})))
                .await;
            assert_eq!(code, 422, "memory key {bad:?}");
            let (code, _) = env
                .call(
                    "POST",
                    "/api/admin/users",
                    Some(json!({"username": bad, "password": "a long password"})),
                )
                .await;
            assert_eq!(code, 422, "username {bad:?}");
            let resp = client()
                .post(env.runner.at("/api/auth/login"))
                .json(&json!({"username": bad, "password": "whatever it is"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "login {bad:?}");
            let (code, _) = env
                .call(
                    "POST",
                    "/api/arcana/llm/providers",
                    Some(json!({"name": bad, "kind": "openai", "base_url": "http://127.0.0.1:9/v1"})),
                )
                .await;
            assert_eq!(code, 422, "provider name {bad:?}");
        }
        // Control characters in memory values and messages are content: stored and read back.
        let (code, m) = env
            .call("POST", "/api/arcana/context-memory", Some(json!({"key": "ctl", "value": "a\u{0}b\u{1}"})))
            .await;
        assert_eq!(code, 201, "{m}");
        let (_, m) = env.call("GET", "/api/arcana/context-memory/ctl", None).await;
        assert_eq!(m["value"], "a\u{0}b\u{1}");
        let (code, reply) = env
            .call(
                "POST",
                "/api/chat",
                Some(json!({"conversation_id": id, "message": "nul\u{0}inside\u{1b}[0m"})),
            )
            .await;
        assert!(code == 200 || code == 422, "{code}: {reply}");
        let (code, _) = env.call("GET", "/api/chat/search?q=inside", None).await;
        assert_eq!(code, 200);
    }
}

both_hosts! {
    async fn new_conversations_get_a_title_from_the_title_route() {
        let env = Backend::start_with(
            arcana_tests::RunnerOptions::default().env("SPIN_VARIABLE_GENERATE_TITLES", "true"),
        )
        .await;
        let provider = env.openai_provider().await;
        env.model(&provider, "gpt-chat", true).await;
        let route_titles_to = async |name: &str| {
            let model = env.model(&provider, name, false).await;
            let (status, rule) = env
                .call("POST", "/api/arcana/llm/routing-rules", Some(json!({
                    "name": format!("titles by {name}"), "priority": 1, "target_model_id": model,
                    "conditions": {"tags": ["title"]}, "fallback_to_default": false})))
                .await;
            assert_eq!(status, 201, "{rule}");
            rule["id"].as_str().unwrap().to_string()
        };
        let title_of = async |conv: &str| {
            let (_, list) = env.call("GET", "/api/chat/conversations", None).await;
            list["items"].as_array().unwrap().iter()
                .find(|c| c["id"] == conv).unwrap()["title"].as_str().unwrap().to_string()
        };
        let rule = route_titles_to("gpt-title").await;

        // Plain: titled before the answer; the title call is in the ledger.
        let (status, r) = env.call("POST", "/api/chat", Some(json!({"message": "how do I make soup"}))).await;
        assert_eq!(status, 200, "{r}");
        let conv = r["conversation_id"].as_str().unwrap();
        assert_eq!(title_of(conv).await, "echo: User: how do I make soup");
        let (_, usage) = env.call("GET", "/api/arcana/llm/usage", None).await;
        assert!(usage["rows"].as_array().unwrap().iter().any(|r| r["model_name"] == "gpt-title"), "{usage}");
        // A message to an existing conversation asks for no title.
        let calls = env.stand_in.received().len();
        env.call("POST", "/api/chat", Some(json!({"conversation_id": conv, "message": "and bread"}))).await;
        assert_eq!(env.stand_in.received().len(), calls + 1);

        // Streamed: titled once the reply is done.
        let resp = client().post(env.runner.at("/api/chat")).bearer_auth(&env.admin)
            .json(&json!({"message": "streamed soup", "stream": true})).send().await.unwrap();
        let events = read_sse(resp).await;
        let conv = events[0].1["conversation_id"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while title_of(&conv).await != "echo: User: streamed soup" {
            assert!(Instant::now() < deadline, "never titled: {}", title_of(&conv).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A failing title model leaves the first-line title.
        env.call("DELETE", &format!("/api/arcana/llm/routing-rules/{rule}"), None).await;
        route_titles_to("fail-500").await;
        let (status, r) = env.call("POST", "/api/chat", Some(json!({"message": "no title for me"}))).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(title_of(r["conversation_id"].as_str().unwrap()).await, "no title for me");
    }
}
