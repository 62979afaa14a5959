//! Semantic memory and search on real model output: the `all-minilm-l6-v2` files from
//! the package registry (`arcana models`), run by real Spin's local engine and by the
//! runner's. Nothing here is a made-up vector.
//!
//! Without the model files the tests say SKIPPED, unless `ARCANA_REQUIRE_MODEL=1` (CI).

use arcana_tests::backend::Backend;
use arcana_tests::sse::SseReader;
use arcana_tests::{Host, Runner, RunnerOptions, both_hosts, client, repo_root};
use serde_json::{Value, json};

/// Whether the model is installed where both hosts read it.
fn model_installed() -> bool {
    let dir = repo_root().join(".spin/ai-models/all-minilm-l6-v2");
    let found = ["tokenizer.json", "model.safetensors"]
        .iter()
        .all(|f| dir.join(f).is_file());
    if !found {
        if std::env::var_os("ARCANA_REQUIRE_MODEL").is_some() {
            panic!(
                "ARCANA_REQUIRE_MODEL is set but {} is missing (target/debug/arcana models)",
                dir.display()
            );
        }
        eprintln!("SKIPPED: the embedding model is not installed (target/debug/arcana models)");
    }
    found
}

fn probe(host: Host) -> Option<Runner> {
    let opts = RunnerOptions {
        manifest: repo_root().join("tests/probe/spin.toml"),
        host,
        ..Default::default()
    }
    .env("SPIN_VARIABLE_NEEDS_ENV", "set");
    if host == Host::Spin && arcana_tests::host::spin_binary().is_none() {
        if std::env::var_os("ARCANA_REQUIRE_SPIN").is_some() {
            panic!("ARCANA_REQUIRE_SPIN is set but there is no Spin binary");
        }
        eprintln!("SKIPPED: no Spin binary");
        return None;
    }
    Some(Runner::start_with(opts))
}

async fn embed(runner: &Runner, model: &str, texts: &[&str]) -> (u16, Value) {
    let resp = client()
        .post(runner.at("/probe/embed"))
        .json(&json!({"model": model, "texts": texts}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn vectors(v: &Value) -> Vec<Vec<f64>> {
    v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The same texts through real `spin up` and the runner give the same vectors, alone
/// and batched (a batch is padded to its longest text, on both), and the same errors.
#[tokio::test]
async fn the_runner_computes_the_vectors_real_spin_computes() {
    if !model_installed() {
        return;
    }
    let Some(spin) = probe(Host::Spin) else {
        return;
    };
    let runner = probe(Host::Runner).unwrap();
    let cases: [&[&str]; 3] = [
        &["my cat is named Miso"],
        &["what should I feed my pet?", "fix this SQL query", "a"],
        &["Ünïcödé and emoji 🐈 survive tokenization; punctuation, too!"],
    ];
    for texts in cases {
        let (s1, on_spin) = embed(&spin, "all-minilm-l6-v2", texts).await;
        let (s2, on_runner) = embed(&runner, "all-minilm-l6-v2", texts).await;
        assert_eq!((s1, s2), (200, 200), "{on_spin} {on_runner}");
        assert_eq!(
            on_spin["prompt_token_count"],
            on_runner["prompt_token_count"]
        );
        let (a, b) = (vectors(&on_spin), vectors(&on_runner));
        assert_eq!(a.len(), texts.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.len(), 384);
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "largest difference {worst} for {texts:?}");
            assert!((cosine(x, x) - 1.0).abs() < 1e-4, "unit length");
        }
    }
    // A model the component did not list, and none at all: the same answers.
    for (model, texts) in [("llama2-chat", &["x"][..]), ("all-minilm-l6-v2", &[][..])] {
        let (s1, e1) = embed(&spin, model, texts).await;
        let (s2, e2) = embed(&runner, model, texts).await;
        assert_eq!((s1, s2), (400, 400), "{e1} {e2}");
        assert_eq!(e1["error"], e2["error"], "{model}");
        // Spin appends a backtrace when RUST_BACKTRACE is set; the runner never does.
        let first = |e: &Value| {
            e["message"]
                .as_str()
                .unwrap()
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(first(&e1), first(&e2), "{model}");
        assert!(!e2["message"].as_str().unwrap().contains('\n'), "{e2}");
    }
}

/// A backend whose chats go to the stand-in.
async fn chat_backend() -> Backend {
    let env = Backend::start().await;
    let provider = env.openai_provider().await;
    env.model(&provider, "echo", true).await;
    env
}

async fn put_memory(env: &Backend, token: &str, key: &str, value: Value, pinned: bool) {
    let resp = client()
        .post(env.runner.at("/api/arcana/context-memory"))
        .bearer_auth(token)
        .json(&json!({"key": key, "value": value, "pinned": pinned}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

async fn chat(env: &Backend, token: &str, text: &str) -> Value {
    let resp = client()
        .post(env.runner.at("/api/chat"))
        .bearer_auth(token)
        .json(&json!({"message": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn used_keys(answer: &Value) -> Vec<String> {
    answer["memory_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect()
}

/// The system prompt the stand-in received last.
fn last_system_prompt(env: &Backend) -> String {
    let last = env.stand_in.received().pop().unwrap();
    last.body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

both_hosts! {
    async fn chats_inject_the_memories_relevant_to_the_message() {
        if !model_installed() {
            return;
        }
        let env = chat_backend().await;
        put_memory(&env, &env.admin, "pet", json!("my cat is named Miso"), false).await;
        put_memory(&env, &env.admin, "home_town", json!("I grew up in Lisbon"), false).await;
        put_memory(&env, &env.admin, "answer_style", json!("keep answers short"), true).await;

        let answer = chat(&env, &env.admin, "what should I feed my pet?").await;
        let used = used_keys(&answer);
        assert!(used.contains(&"pet".to_string()), "{answer}");
        assert!(!used.contains(&"home_town".to_string()), "{answer}");
        assert_eq!(used[0], "answer_style", "pinned first: {answer}");
        let pet = answer["memory_used"].as_array().unwrap().iter().find(|m| m["key"] == "pet").unwrap();
        assert!(pet["score"].as_f64().unwrap() >= 0.25, "{pet}");
        assert!(last_system_prompt(&env).contains("Miso"));

        let answer = chat(&env, &env.admin, "fix this SQL query").await;
        let used = used_keys(&answer);
        assert!(!used.contains(&"pet".to_string()), "{answer}");
        assert!(used.contains(&"answer_style".to_string()), "pinned always: {answer}");
        let prompt = last_system_prompt(&env);
        assert!(!prompt.contains("Miso") && prompt.contains("keep answers short"), "{prompt}");

        // Streamed, the start event says what was used too.
        let resp = client()
            .post(env.runner.at("/api/chat"))
            .bearer_auth(&env.admin)
            .json(&json!({"message": "is my kitten hungry?", "stream": true}))
            .send()
            .await
            .unwrap();
        let mut events = SseReader::new(resp);
        let start = events.next().await.unwrap();
        let keys: Vec<&str> = start.data["memory_used"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap()).collect();
        assert!(keys.contains(&"pet"), "{:?}", start.data);
        let done = events.all().await;
        assert_eq!(done.last().unwrap().event, "done");
    }
}

both_hosts! {
    async fn memory_search_ranks_by_meaning_for_the_caller_only() {
        if !model_installed() {
            return;
        }
        let env = chat_backend().await;
        put_memory(&env, &env.admin, "pet", json!("my cat is named Miso"), false).await;
        put_memory(&env, &env.admin, "editor", json!("I write code in vim"), false).await;
        let bob = env.user("bob", &[]).await;
        put_memory(&env, &bob, "car", json!("I drive a red bicycle to work"), false).await;
        let search = |token: String, q: &'static str| {
            let at = env.runner.at("/api/arcana/context-memory/search");
            async move {
                let resp = client().get(at).bearer_auth(token).query(&[("q", q)]).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.json::<Value>().await.unwrap()
            }
        };
        let found = search(env.admin.clone(), "animals living with me").await;
        let hits = found["hits"].as_array().unwrap();
        assert_eq!(hits[0]["key"], "pet", "{found}");
        assert!(hits[0]["score"].as_f64().unwrap() > hits[1]["score"].as_f64().unwrap());
        assert!(hits.iter().all(|h| h["key"] != "car"), "another user's memory: {found}");
        let theirs = search(bob.clone(), "animals living with me").await;
        assert!(theirs["hits"].as_array().unwrap().iter().all(|h| h["key"] == "car"), "{theirs}");
        // Bad input is a 400 with a code.
        let resp = client()
            .get(env.runner.at("/api/arcana/context-memory/search"))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_query");
    }
}

async fn search(env: &Backend, token: &str, q: &str, mode: &str) -> Value {
    let resp = client()
        .get(env.runner.at("/api/chat/search"))
        .bearer_auth(token)
        .query(&[("q", q), ("mode", mode)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{mode}");
    resp.json().await.unwrap()
}

fn hit_texts(found: &Value) -> Vec<String> {
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["snippet"].as_str().unwrap().to_string())
        .collect()
}

both_hosts! {
    async fn semantic_and_hybrid_search_find_paraphrases_and_exact_words() {
        if !model_installed() {
            return;
        }
        let env = chat_backend().await;
        let laptop = chat(&env, &env.admin, "My laptop battery dies after an hour").await;
        for text in [
            "Recommend a recipe for vegetable soup",
            "The invoice number is INV-20931",
            "Please send me the bill for last month",
            "How do I renew my passport?",
        ] {
            chat(&env, &env.admin, text).await;
        }
        let bob = env.user("bob", &[]).await;
        chat(&env, &bob, "My notebook computer runs out of charge quickly").await;

        // No word in common with the battery message.
        let q = "notebook computer runs out of charge quickly";
        let keyword = search(&env, &env.admin, q, "keyword").await;
        assert!(hit_texts(&keyword).iter().all(|t| !t.contains("battery")), "{keyword}");
        let semantic = search(&env, &env.admin, q, "semantic").await;
        assert_eq!(semantic["mode"], "semantic");
        let texts = hit_texts(&semantic);
        assert!(texts[0].contains("laptop battery"), "{semantic}");
        assert!(semantic["hits"][0]["score"].as_f64().unwrap() > 0.3, "{semantic}");
        assert!(texts.iter().all(|t| !t.contains("notebook computer")), "bob's message: {semantic}");
        // The runner's libSQL has a vector index; Spin's embedded SQLite has no vector
        // functions, so the component ranks there.
        let expected = if Host::current() == Host::Runner { "index" } else { "scan" };
        assert_eq!(semantic["ranked_by"], expected, "{semantic}");

        // Hybrid: the exact identifier (a keyword hit) and a paraphrase (found by
        // meaning only) both rank at the top.
        let hybrid = search(&env, &env.admin, "invoice INV-20931", "hybrid").await;
        assert_eq!(hybrid["mode"], "hybrid");
        let top: Vec<String> = hit_texts(&hybrid).into_iter().take(5).collect();
        assert!(top.iter().any(|t| t.contains("INV-20931")), "{hybrid}");
        assert!(top.iter().any(|t| t.contains("the bill for last month")), "{hybrid}");
        let keyword = search(&env, &env.admin, "invoice INV-20931", "keyword").await;
        assert!(hit_texts(&keyword).iter().all(|t| !t.contains("bill")), "{keyword}");
        assert!(hybrid["hits"][0]["score"].as_f64().unwrap() > 0.0);

        // A deleted conversation's messages are gone from the ranking with it.
        let conv = laptop["conversation_id"].as_str().unwrap();
        let resp = client()
            .delete(env.runner.at(&format!("/api/chat/conversations/{conv}")))
            .bearer_auth(&env.admin)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let after = search(&env, &env.admin, q, "semantic").await;
        assert!(hit_texts(&after).iter().all(|t| !t.contains("laptop battery")), "{after}");

        let resp = client()
            .get(env.runner.at("/api/chat/search"))
            .bearer_auth(&env.admin)
            .query(&[("q", "x"), ("mode", "fuzzy")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
}

both_hosts! {
    async fn an_admin_may_embed_with_a_provider_model_and_back_without_mixing() {
        if !model_installed() {
            return;
        }
        let env = Backend::start().await;
        let provider = env.openai_provider().await;
        env.model(&provider, "echo", true).await;
        let embed_model = env.model(&provider, "embed-8", false).await;
        let anthropic = env
            .provider("an", "anthropic", &format!("{}/v1", env.stand_in.url()), 10, 0)
            .await;
        let claude = env.model(&anthropic, "claude", false).await;
        let (status, local) = env.call("GET", "/api/arcana/llm/embedding-model", None).await;
        assert_eq!(status, 200);
        assert_eq!(local, json!({"model_id": null, "model_name": null, "vectors": "spin:all-minilm-l6-v2"}));
        put_memory(&env, &env.admin, "pet", json!("my cat is named Miso"), false).await;
        put_memory(&env, &env.admin, "editor", json!("I write code in vim"), false).await;

        // Refused choices.
        let bob = env.user("bob", &[]).await;
        let resp = client()
            .put(env.runner.at("/api/arcana/llm/embedding-model"))
            .bearer_auth(&bob)
            .json(&json!({"model_id": embed_model}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let (status, body) = env
            .call("PUT", "/api/arcana/llm/embedding-model", Some(json!({"model_id": claude})))
            .await;
        assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("unsupported_model")));
        let (status, _) = env
            .call("PUT", "/api/arcana/llm/embedding-model", Some(json!({"model_id": "00000000-0000-4000-8000-000000000000"})))
            .await;
        assert_eq!(status, 404);

        // The provider's model: new memories and the query go to its /embeddings, the
        // old memories are embedded again with it (their local vectors stay out).
        let (status, chosen) = env
            .call("PUT", "/api/arcana/llm/embedding-model", Some(json!({"model_id": embed_model})))
            .await;
        assert_eq!(status, 200, "{chosen}");
        assert_eq!(chosen["vectors"], format!("provider:{embed_model}"));
        let before = env.stand_in.received().iter().filter(|r| r.path.ends_with("/embeddings")).count();
        let (status, found) = env
            .call("GET", "/api/arcana/context-memory/search?q=animals", None)
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["hits"].as_array().unwrap().len(), 2, "both re-embedded: {found}");
        let calls: Vec<_> = env.stand_in.received().into_iter().filter(|r| r.path.ends_with("/embeddings")).collect();
        assert!(calls.len() >= before + 3, "query and two memories: {}", calls.len());
        assert_eq!(calls.last().unwrap().body["model"], "embed-8");

        // Back to the local model: its vectors rank again, the provider's stay out.
        let (status, _) = env
            .call("PUT", "/api/arcana/llm/embedding-model", Some(json!({"model_id": null})))
            .await;
        assert_eq!(status, 200);
        let (_, found) = env
            .call("GET", "/api/arcana/context-memory/search?q=animals%20living%20with%20me", None)
            .await;
        assert_eq!(found["hits"][0]["key"], "pet", "{found}");
        assert!(found["hits"][0]["score"].as_f64().unwrap() > 0.2, "{found}");
    }
}

both_hosts! {
    async fn without_the_model_files_chats_work_and_semantic_search_says_why() {
        // A state folder without ai-models: Spin's local engine, and the runner's, have
        // no model to load.
        let empty = tempfile::tempdir().unwrap();
        let db = tempfile::tempdir().unwrap();
        let rc = format!(
            "state_dir = \"{}\"\n[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
            empty.path().display(),
            db.path().join("arcana.db").display()
        );
        let env = Backend::start_with(RunnerOptions {
            runtime_config: Some(rc),
            ..Default::default()
        }
        .env("ARCANA_NO_MODEL_INSTALL", "true"))
        .await;
        let provider = env.openai_provider().await;
        env.model(&provider, "echo", true).await;
        put_memory(&env, &env.admin, "pet", json!("my cat is named Miso"), false).await;
        // Memories are injected as before (key order, no scores).
        let answer = chat(&env, &env.admin, "fix this SQL query").await;
        assert_eq!(answer["memory_used"], json!([{"key": "pet", "score": null, "pinned": false}]));
        for path in ["/api/chat/search?q=cat&mode=semantic", "/api/arcana/context-memory/search?q=cat"] {
            let (status, body) = env.call("GET", path, None).await;
            assert_eq!(status, 503, "{path}: {body}");
            assert_eq!(body["code"], "embeddings_unavailable");
        }
        let (status, body) = env.call("GET", "/api/chat/search?q=cat&mode=keyword", None).await;
        assert_eq!(status, 200, "{body}");
        assert!(!empty.path().join("ai-models").exists(), "nothing installed");
    }
}

both_hosts! {
    async fn on_a_libsql_server_search_uses_its_vector_index() {
        if !model_installed() {
            return;
        }
        let Some(sqld) = arcana_tests::sqld::Sqld::start() else { return };
        // As a deployment does before it starts Spin: `arcana migrate` applies the main
        // files and, the server being libSQL, the vector index.
        let rc = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(rc.path(), sqld.runtime_config()).unwrap();
        let migrated = std::process::Command::new(arcana_tests::binary("arcana"))
            .arg("migrate")
            .arg("--from")
            .arg(repo_root().join("spin.toml"))
            .arg("--runtime-config-file")
            .arg(rc.path())
            .output()
            .unwrap();
        assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
        let env = Backend::start_with(RunnerOptions {
            runtime_config: Some(sqld.runtime_config()),
            ..Default::default()
        })
        .await;
        let provider = env.openai_provider().await;
        env.model(&provider, "echo", true).await;
        for text in ["My laptop battery dies after an hour", "How do I renew my passport?"] {
            chat(&env, &env.admin, text).await;
        }
        let found = search(&env, &env.admin, "notebook computer runs out of charge quickly", "semantic").await;
        assert_eq!(found["ranked_by"], "index", "{found}");
        assert!(hit_texts(&found)[0].contains("laptop battery"), "{found}");
    }
}
