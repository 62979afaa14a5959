//! Conversations as trees: regenerate (a sibling reply), edit (a sibling message and
//! its reply), `parent_id`, branch switching, subtree delete; the prompt is the active
//! path only. On both hosts.

use arcana_tests::backend::Backend;
use arcana_tests::both_hosts;
use arcana_tests::client;
use serde_json::{Value, json};

type Env = Backend;

async fn setup() -> Env {
    let env = Backend::start().await;
    let provider = env.openai_provider().await;
    env.model(&provider, "gpt-tree", true).await;
    env.model(&provider, "gpt-other", false).await;
    env
}

async fn say(env: &Env, body: Value) -> Value {
    let (status, v) = env.call("POST", "/api/chat", Some(body)).await;
    assert_eq!(status, 200, "{v}\n{}", env.runner.log());
    v
}

async fn history(env: &Env, conv: &str) -> Vec<Value> {
    let (status, page) = env
        .call("GET", &format!("/api/chat/history/{conv}"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn contents(h: &[Value]) -> Vec<&str> {
    h.iter()
        .map(|m| m["message_content"].as_str().unwrap())
        .collect()
}

/// The user turns of the last prompt the provider received.
fn last_prompt(env: &Env) -> Vec<String> {
    let sent = env.stand_in.received();
    sent.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

both_hosts! {
    async fn regenerate_and_edit_make_branches_and_the_prompt_follows_the_active_one() {
        let env = setup().await;
        let first = say(&env, json!({"message": "one"})).await;
        let conv = first["conversation_id"].as_str().unwrap().to_string();
        let second = say(&env, json!({"conversation_id": conv, "message": "two"})).await;

        // Regenerate the second reply with another model: a sibling, now active.
        let reply2 = second["reply_message_id"].as_str().unwrap();
        let (status, again) = env
            .call("POST", &format!("/api/chat/messages/{reply2}/regenerate"), Some(json!({"model": "gpt-other"})))
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["model_name"], "gpt-other");
        assert_eq!(again["user_message_id"], second["user_message_id"]);
        assert_eq!(last_prompt(&env), vec!["one", "echo: one", "two"], "the old reply is not in the prompt");
        let h = history(&env, &conv).await;
        assert_eq!(h.len(), 4);
        let last = &h[3];
        assert_eq!(last["id"], again["reply_message_id"]);
        assert_eq!(last["parent_id"], second["user_message_id"]);
        assert_eq!(last["sibling_ids"], json!([reply2, again["reply_message_id"]]));
        assert_eq!(last["sibling_index"], 1);
        assert_eq!(h[0]["parent_id"], Value::Null);
        assert_eq!(h[1]["parent_id"], h[0]["id"]);

        // Edit the second message: a sibling of it, answered, active.
        let user2 = second["user_message_id"].as_str().unwrap();
        let (status, edited) = env
            .call("PUT", &format!("/api/chat/messages/{user2}"), Some(json!({"content": "two, edited"})))
            .await;
        assert_eq!(status, 200, "{edited}");
        assert_eq!(last_prompt(&env), vec!["one", "echo: one", "two, edited"]);
        let h = history(&env, &conv).await;
        assert_eq!(contents(&h), vec!["one", "echo: one", "two, edited", "echo: two, edited"]);
        assert_eq!(h[2]["sibling_ids"], json!([user2, edited["user_message_id"]]));

        // The next message continues the active branch only.
        say(&env, json!({"conversation_id": conv, "message": "three"})).await;
        assert_eq!(
            last_prompt(&env),
            vec!["one", "echo: one", "two, edited", "echo: two, edited", "three"]
        );

        // Back to the first branch: through `two` and on down its newest reply.
        let (status, leaf) = env
            .call("PUT", &format!("/api/chat/conversations/{conv}/active-leaf"), Some(json!({"message_id": user2})))
            .await;
        assert_eq!(status, 200, "{leaf}");
        assert_eq!(leaf["active_leaf"], again["reply_message_id"]);
        let h = history(&env, &conv).await;
        assert_eq!(h.len(), 4);
        assert_eq!(h[3]["id"], again["reply_message_id"]);

        // A branch from any message with parent_id: under the first reply.
        let reply1 = first["reply_message_id"].as_str().unwrap();
        say(&env, json!({"conversation_id": conv, "parent_id": reply1, "message": "two, other way"})).await;
        let h = history(&env, &conv).await;
        assert_eq!(contents(&h)[2..], ["two, other way", "echo: two, other way"]);
        assert_eq!(h[2]["sibling_ids"].as_array().unwrap().len(), 3);

        // Delete the edited branch with its subtree (its reply, `three` and its reply).
        let edited_id = edited["user_message_id"].as_str().unwrap();
        let (status, gone) = env
            .call("DELETE", &format!("/api/chat/messages/{edited_id}"), None)
            .await;
        assert_eq!(status, 200, "{gone}");
        assert_eq!(gone["deleted"], 4);
        let (status, _) = env
            .call("PUT", &format!("/api/chat/conversations/{conv}/active-leaf"), Some(json!({"message_id": edited_id})))
            .await;
        assert_eq!(status, 404);
        // Export keeps the tree: every message with its parent.
        let (status, export) = env
            .call("GET", &format!("/api/chat/conversations/{conv}/export"), None)
            .await;
        assert_eq!(status, 200);
        let messages = export["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 11 - 4);
        assert!(messages.iter().skip(1).all(|m| m["parent_id"].is_string()), "{export}");

        // Import round-trips the tree: the same active path and the same branches.
        let (status, imported) = env.call("POST", "/api/chat/import", Some(export.clone())).await;
        assert_eq!(status, 201, "{imported}");
        let copy = imported["id"].as_str().unwrap();
        let (h, h2) = (history(&env, &conv).await, history(&env, copy).await);
        assert_eq!(contents(&h2), contents(&h));
        let branches = |h: &[Value]| h.iter().map(|m| m["sibling_ids"].as_array().unwrap().len()).collect::<Vec<_>>();
        assert_eq!(branches(&h2), branches(&h));
        let (_, export2) = env.call("GET", &format!("/api/chat/conversations/{copy}/export"), None).await;
        let shape = |e: &Value| {
            let ms = e["messages"].as_array().unwrap();
            let index = |id: &Value| ms.iter().position(|m| m["id"] == *id);
            ms.iter().map(|m| (m["message_content"].clone(), index(&m["parent_id"]))).collect::<Vec<_>>()
        };
        assert_eq!(shape(&export2), shape(&export));

        // A parent that is not an earlier message of the file is refused, naming it.
        let mut bad = export.clone();
        bad["messages"][1]["parent_id"] = json!("nowhere");
        let (status, err) = env.call("POST", "/api/chat/import", Some(bad)).await;
        assert_eq!(status, 422);
        assert_eq!(err["errors"][0]["field"], "messages[1].parent_id", "{err}");
    }
}

both_hosts! {
    async fn branch_endpoints_refuse_other_users_and_wrong_kinds() {
        let env = setup().await;
        let first = say(&env, json!({"message": "mine"})).await;
        let conv = first["conversation_id"].as_str().unwrap();
        let reply = first["reply_message_id"].as_str().unwrap();
        let user_msg = first["user_message_id"].as_str().unwrap();
        let bob = env.user("bob", &[]).await;
        let as_bob = |method: reqwest::Method, path: String, body: Value| {
            let req = client().request(method, env.runner.at(&path)).bearer_auth(&bob).json(&body);
            async move { req.send().await.unwrap().status().as_u16() }
        };
        use reqwest::Method;
        assert_eq!(as_bob(Method::POST, format!("/api/chat/messages/{reply}/regenerate"), json!({})).await, 404);
        assert_eq!(as_bob(Method::PUT, format!("/api/chat/messages/{user_msg}"), json!({"content": "x"})).await, 404);
        assert_eq!(as_bob(Method::DELETE, format!("/api/chat/messages/{reply}"), json!({})).await, 404);
        assert_eq!(
            as_bob(Method::PUT, format!("/api/chat/conversations/{conv}/active-leaf"), json!({"message_id": reply})).await,
            404
        );
        // Bob's own conversation cannot take Alice's message as a parent.
        let his = {
            let (s, v) = arcana_tests::call(&env.runner, "POST", "/api/chat", &bob, Some(json!({"message": "his"}))).await;
            assert_eq!(s, 200, "{v}");
            v
        };
        let (s, v) = arcana_tests::call(
            &env.runner, "POST", "/api/chat", &bob,
            Some(json!({"conversation_id": his["conversation_id"], "parent_id": reply, "message": "x"})),
        ).await;
        assert_eq!(s, 404, "{v}");
        // Wrong kinds: a user message is edited, not regenerated; a reply the reverse.
        let (s, v) = env.call("POST", &format!("/api/chat/messages/{user_msg}/regenerate"), None).await;
        assert_eq!((s.as_u16(), v["code"].as_str()), (422, Some("not_a_reply")));
        let (s, v) = env.call("PUT", &format!("/api/chat/messages/{reply}"), Some(json!({"content": "x"}))).await;
        assert_eq!((s.as_u16(), v["code"].as_str()), (422, Some("not_a_user_message")));
        let (s, _) = env.call("PUT", &format!("/api/chat/messages/{user_msg}"), Some(json!({"content": " "}))).await;
        assert_eq!(s, 422);
        // Nothing of Alice's changed.
        assert_eq!(history(&env, conv).await.len(), 2);
    }
}

both_hosts! {
    async fn chatgpt_and_open_webui_exports_import_with_their_branches() {
        let env = setup().await;
        // ChatGPT: a hidden root, a system message, an edited first question.
        let chatgpt: Value =
            serde_json::from_str(include_str!("fixtures/chatgpt-branches.json")).unwrap();
        let (status, got) = env.call("POST", "/api/chat/import/chatgpt", Some(chatgpt)).await;
        assert_eq!(status, 201, "{got}");
        let conv = got["conversations"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(got["conversations"][0]["title"], "Trip");
        let h = history(&env, &conv).await;
        assert_eq!(contents(&h), vec!["hi again", "hey"]);
        assert_eq!(h[0]["sibling_ids"].as_array().unwrap().len(), 2, "the other branch is kept");
        assert_eq!(h[0]["timestamp"], "2023-11-14T22:13:23.000Z");

        // Open WebUI: a regenerated reply; the second one is shown.
        let webui = json!([{"id": "c1", "title": "Recipes", "created_at": 1700000000,
            "chat": {"title": "Recipes", "history": {"currentId": "r2", "messages": {
                "q": {"id": "q", "parentId": null, "childrenIds": ["r1", "r2"], "role": "user", "content": "soup?", "timestamp": 1700000001},
                "r1": {"id": "r1", "parentId": "q", "childrenIds": [], "role": "assistant", "content": "tomato", "model": "llama3", "timestamp": 1700000002},
                "r2": {"id": "r2", "parentId": "q", "childrenIds": [], "role": "assistant", "content": "leek", "model": "llama3", "timestamp": 1700000003}
            }}}}]);
        let (status, got) = env.call("POST", "/api/chat/import/open-webui", Some(webui)).await;
        assert_eq!(status, 201, "{got}");
        let conv = got["conversations"][0]["id"].as_str().unwrap();
        let h = history(&env, conv).await;
        assert_eq!(contents(&h), vec!["soup?", "leek"]);
        assert_eq!(h[1]["sibling_index"], 1);
        assert_eq!(h[1]["model_name"], "llama3");

        // The first bad record is named; nothing of the file is stored.
        let (_, before) = env.call("GET", "/api/chat/conversations", None).await;
        let bad = json!([{"title": "ok", "mapping": {}}, {"title": "broken"}]);
        let (status, err) = env.call("POST", "/api/chat/import/chatgpt", Some(bad)).await;
        assert_eq!(status, 422);
        assert_eq!(err["errors"][0]["field"], "$[1].mapping", "{err}");
        let (_, after) = env.call("GET", "/api/chat/conversations", None).await;
        assert_eq!(before["items"], after["items"]);
    }
}
