//! The llm component over real HTTP: providers with sealed keys, models, allowlists,
//! preferences, routing rules and the explain endpoint, key rotation.

use arcana_tests::both_hosts;
use arcana_tests::{
    Runner, RunnerOptions, TEST_JWT_SECRET, TEST_MASTER_KEY, TEST_METRICS_TOKEN, client, login,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET_KEY: &str = "sk-test-TOPSECRET-0123456789";

struct Api {
    runner: Runner,
    admin: String,
}

async fn call(
    runner: &Runner,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let mut req = client()
        .request(method.parse().unwrap(), runner.at(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

impl Api {
    async fn start_with(opts: RunnerOptions) -> Api {
        let runner = Runner::start_with(opts);
        client()
            .post(runner.at("/api/auth/register"))
            .json(&json!({"username": "root", "password": "root password"}))
            .send()
            .await
            .unwrap();
        let admin = login(&runner, "root", "root password").await;
        Api { runner, admin }
    }

    async fn start() -> Api {
        Api::start_with(RunnerOptions::default()).await
    }

    async fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        call(&self.runner, method, path, &self.admin, body).await
    }

    async fn user(&self, name: &str, permissions: Value) -> (String, String) {
        let (status, body, _) = call(
            &self.runner,
            "POST",
            "/api/admin/users",
            &self.admin,
            Some(
                json!({"username": name, "password": "user password", "permissions": permissions}),
            ),
        )
        .await;
        assert_eq!(status, 201);
        (
            body["id"].as_str().unwrap().to_string(),
            login(&self.runner, name, "user password").await,
        )
    }

    async fn provider(&self, name: &str, key: Option<&str>) -> String {
        let mut body = json!({"name": name, "kind": "openai", "base_url": "http://127.0.0.1:9/v1"});
        if let Some(k) = key {
            body["api_key"] = json!(k);
        }
        let (status, p, text) = self
            .admin_call("POST", "/api/arcana/llm/providers", Some(body))
            .await;
        assert_eq!(status, 201, "{text}");
        p["id"].as_str().unwrap().to_string()
    }

    async fn model(&self, provider: &str, name: &str, extra: Value) -> String {
        let mut body = json!({"provider_id": provider, "model_name": name, "max_tokens": 1024, "context_window": 8192,
                              "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, m, text) = self
            .admin_call("POST", "/api/arcana/llm/models", Some(body))
            .await;
        assert_eq!(status, 201, "{text}");
        m["id"].as_str().unwrap().to_string()
    }
}

both_hosts! {
    async fn api_keys_are_sealed_write_only_and_never_logged() {
        let api = Api::start().await;
        let id = api.provider("openai", Some(SECRET_KEY)).await;
        let (_, list, text) = api
            .admin_call("GET", "/api/arcana/llm/providers", None)
            .await;
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert_eq!(list[0]["has_api_key"], true);
        assert_eq!(list[0]["api_key_hint"], "…6789");
        assert_eq!(list[0]["api_key_kid"], "test1");

        // Update without api_key keeps it; null removes it; a string replaces it.
        let base = json!({"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"});
        let (_, p, text) = api
            .admin_call(
                "PUT",
                &format!("/api/arcana/llm/providers/{id}"),
                Some(base.clone()),
            )
            .await;
        assert!(!text.contains("TOPSECRET"));
        assert_eq!(p["has_api_key"], true);
        let mut cleared = base.clone();
        cleared["api_key"] = Value::Null;
        let (_, p, _) = api
            .admin_call(
                "PUT",
                &format!("/api/arcana/llm/providers/{id}"),
                Some(cleared),
            )
            .await;
        assert_eq!(p["has_api_key"], false);
        let mut again = base.clone();
        again["api_key"] = json!(SECRET_KEY);
        let (_, p, _) = api
            .admin_call(
                "PUT",
                &format!("/api/arcana/llm/providers/{id}"),
                Some(again),
            )
            .await;
        assert_eq!(p["has_api_key"], true);

        // Not in the log, and not in the database file as plain text.
        assert!(!api.runner.log().contains("TOPSECRET"));
        let mut bytes = std::fs::read(api.runner.db_path()).unwrap();
        if let Ok(wal) = std::fs::read(api.runner.db_path().with_extension("db-wal")) {
            bytes.extend(wal);
        }
        assert!(
            !bytes.windows(9).any(|w| w == b"TOPSECRET"),
            "the key is stored in clear"
        );
    }
}

both_hosts! {
    async fn llm_admin_endpoints_need_the_permission() {
        let api = Api::start().await;
        let (_, plain) = api.user("plain", json!([])).await;
        let (_, llm_admin) = api.user("llmadmin", json!(["llm:admin"])).await;
        let body = json!({"name": "p", "kind": "anthropic", "base_url": "https://api.anthropic.com"});
        let (status, err, _) = call(
            &api.runner,
            "POST",
            "/api/arcana/llm/providers",
            &plain,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("permission_denied"))
        );
        let (status, _, _) = call(
            &api.runner,
            "POST",
            "/api/arcana/llm/providers",
            &llm_admin,
            Some(body),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _, _) = call(
            &api.runner,
            "GET",
            "/api/arcana/llm/routing-rules",
            &plain,
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _, _) = call(&api.runner, "GET", "/api/arcana/llm/models", "nope", None).await;
        assert_eq!(status, 401);
    }
}

both_hosts! {
    async fn providers_and_models_crud_with_conflicts_and_validation() {
        let api = Api::start().await;
        let p = api.provider("openai", None).await;
        let (status, _, _) = api
            .admin_call(
                "POST",
                "/api/arcana/llm/providers",
                Some(json!({"name": "openai", "kind": "openai", "base_url": "https://x"})),
            )
            .await;
        assert_eq!(status, 409);
        let (status, err, _) = api
            .admin_call(
                "POST",
                "/api/arcana/llm/providers",
                Some(
                    json!({"name": "bad", "kind": "openai", "base_url": "ftp://x", "timeout_secs": 0}),
                ),
            )
            .await;
        assert_eq!(status, 422);
        assert_eq!(err["errors"].as_array().unwrap().len(), 2);
        let (status, _, _) = api
            .admin_call(
                "POST",
                "/api/arcana/llm/providers",
                Some(json!({"name": "bad", "kind": "gemini", "base_url": "https://x"})),
            )
            .await;
        assert_eq!(status, 422);

        let m = api
            .model(
                &p,
                "gpt-4o-mini",
                json!({"tags": ["cheap"], "is_default": true}),
            )
            .await;
        let m2 = api.model(&p, "gpt-4o", json!({"is_default": true})).await;
        let (_, all, _) = api
            .admin_call("GET", "/api/arcana/llm/models?all=true", None)
            .await;
        let defaults: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["is_default"] == true)
            .map(|x| x["id"].as_str().unwrap())
            .collect();
        assert_eq!(defaults, vec![m2.as_str()], "only one system default");
        let (status, _, _) = api.admin_call("POST", "/api/arcana/llm/models", Some(json!({"provider_id": p, "model_name": "gpt-4o", "max_tokens": 1, "context_window": 1}))).await;
        assert_eq!(status, 409);
        let (status, _, _) = api.admin_call("POST", "/api/arcana/llm/models", Some(json!({"provider_id": p, "model_name": "x", "max_tokens": 100, "context_window": 10}))).await;
        assert_eq!(status, 422);

        let (status, err, _) = api
            .admin_call("DELETE", &format!("/api/arcana/llm/providers/{p}"), None)
            .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::CONFLICT, Some("provider_in_use"))
        );
        for id in [&m, &m2] {
            let (status, _, _) = api
                .admin_call("DELETE", &format!("/api/arcana/llm/models/{id}"), None)
                .await;
            assert_eq!(status, 204);
        }
        let (status, _, _) = api
            .admin_call("DELETE", &format!("/api/arcana/llm/providers/{p}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, _, _) = api
            .admin_call("DELETE", &format!("/api/arcana/llm/providers/{p}"), None)
            .await;
        assert_eq!(status, 404);
    }
}

both_hosts! {
    async fn allowlists_hide_models_and_refuse_them_in_routing() {
        let api = Api::start().await;
        let (bob_id, bob) = api.user("bob", json!([])).await;
        let (_, alice) = api.user("alice", json!([])).await;
        let p = api.provider("openai", None).await;
        let open = api
            .model(&p, "open-model", json!({"is_default": true}))
            .await;
        let private = api.model(&p, "private-model", json!({})).await;
        let (status, _, _) = api
            .admin_call(
                "PUT",
                &format!("/api/arcana/llm/models/{private}/access"),
                Some(json!({"users": [bob_id]})),
            )
            .await;
        assert_eq!(status, 200);

        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| m["model_name"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, models, _) = call(&api.runner, "GET", "/api/arcana/llm/models", &alice, None).await;
        assert_eq!(names(&models), vec!["open-model"]);
        let (_, models, _) = call(&api.runner, "GET", "/api/arcana/llm/models", &bob, None).await;
        assert_eq!(names(&models), vec!["open-model", "private-model"]);
        let (_, providers, text) = call(
            &api.runner,
            "GET",
            "/api/arcana/llm/providers",
            &alice,
            None,
        )
        .await;
        assert_eq!(providers[0]["name"], "openai");
        assert!(
            !text.contains("base_url"),
            "users do not see provider settings: {text}"
        );

        let (status, err, _) = call(
            &api.runner,
            "POST",
            "/api/arcana/llm/route/explain",
            &alice,
            Some(json!({"message": "hi", "model": "private-model"})),
        )
        .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("model_not_allowed"))
        );
        let (status, d, _) = call(
            &api.runner,
            "POST",
            "/api/arcana/llm/route/explain",
            &bob,
            Some(json!({"message": "hi", "model": "private-model"})),
        )
        .await;
        assert_eq!(
            (status, d["source"].as_str()),
            (StatusCode::OK, Some("requested"))
        );
        let (status, _, _) = call(
            &api.runner,
            "PUT",
            "/api/arcana/llm/preferences",
            &alice,
            Some(json!({"default_model_id": private})),
        )
        .await;
        assert_eq!(
            status, 422,
            "a user cannot default to a model they may not use"
        );

        // A role allowlist.
        api.admin_call(
            "PUT",
            &format!("/api/arcana/llm/models/{open}/access"),
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        let (_, models, _) = call(&api.runner, "GET", "/api/arcana/llm/models", &alice, None).await;
        assert!(models.as_array().unwrap().is_empty());
        let (status, err, _) = call(
            &api.runner,
            "POST",
            "/api/arcana/llm/route/explain",
            &alice,
            Some(json!({"message": "hi"})),
        )
        .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::CONFLICT, Some("no_model_available"))
        );
    }
}

both_hosts! {
    async fn preferences_are_validated_and_per_user() {
        let api = Api::start().await;
        let (_, alice) = api.user("alice", json!([])).await;
        let (status, prefs, _) = call(
            &api.runner,
            "GET",
            "/api/arcana/llm/preferences",
            &alice,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(prefs["temperature"].is_null());
        let (status, err, _) = call(
            &api.runner,
            "PUT",
            "/api/arcana/llm/preferences",
            &alice,
            Some(json!({"temperature": 3.5, "top_p": 0, "max_tokens": 0})),
        )
        .await;
        assert_eq!(status, 422);
        assert_eq!(err["errors"].as_array().unwrap().len(), 3);
        let (status, prefs, _) = call(&api.runner, "PUT", "/api/arcana/llm/preferences", &alice,
            Some(json!({"temperature": 0.2, "top_p": 0.9, "max_tokens": 500, "system_prompt": "Be brief."}))).await;
        assert_eq!(status, 200);
        assert_eq!(prefs["system_prompt"], "Be brief.");
        let (_, admin_prefs, _) = api
            .admin_call("GET", "/api/arcana/llm/preferences", None)
            .await;
        assert!(
            admin_prefs["system_prompt"].is_null(),
            "preferences are per user"
        );
    }
}

both_hosts! {
    async fn routing_rules_of_every_kind_and_the_explanation() {
        let api = Api::start().await;
        let (_, alice) = api.user("alice", json!([])).await;
        let p = api.provider("openai", None).await;
        let default = api
            .model(&p, "default-model", json!({"is_default": true}))
            .await;
        let coder = api.model(&p, "coder", json!({})).await;
        let big = api.model(&p, "long-context", json!({})).await;
        let cheap = api.model(&p, "cheap", json!({})).await;
        let admins = api.model(&p, "admins-only-route", json!({})).await;
        let mine = api.model(&p, "my-default", json!({})).await;

        let rule = |name: &str, priority: i64, conditions: Value, target: &str, fallbacks: Value| json!({"name": name, "priority": priority, "conditions": conditions, "target_model_id": target, "fallback_model_ids": fallbacks});
        for body in [
            rule("admins", 1, json!({"roles": ["admin"]}), &admins, json!([])),
            rule(
                "code",
                2,
                json!({"pattern": "(?i)\\b(rust|cargo)\\b"}),
                &coder,
                json!([big]),
            ),
            rule(
                "long",
                3,
                json!({"min_prompt_tokens": 1000}),
                &big,
                json!([]),
            ),
            rule(
                "cheap",
                4,
                json!({"tags": ["cheap"], "max_prompt_tokens": 50}),
                &cheap,
                json!([]),
            ),
        ] {
            let (status, _, text) = api
                .admin_call("POST", "/api/arcana/llm/routing-rules", Some(body))
                .await;
            assert_eq!(status, 201, "{text}");
        }
        let (status, _, _) = api
            .admin_call(
                "POST",
                "/api/arcana/llm/routing-rules",
                Some(rule(
                    "bad",
                    9,
                    json!({"pattern": "(unclosed"}),
                    &cheap,
                    json!([]),
                )),
            )
            .await;
        assert_eq!(status, 422);

        let explain = |token: String, body: Value| {
            let runner = &api.runner;
            async move {
                call(
                    runner,
                    "POST",
                    "/api/arcana/llm/route/explain",
                    &token,
                    Some(body),
                )
                .await
                .1
            }
        };
        let d = explain(api.admin.clone(), json!({"message": "hello"})).await;
        assert_eq!(
            (d["source"].as_str(), d["rule_name"].as_str()),
            (Some("rule"), Some("admins"))
        );

        let d = explain(
            alice.clone(),
            json!({"message": "How do I use cargo workspaces?"}),
        )
        .await;
        assert_eq!(d["rule_name"], "code");
        assert_eq!(d["model"]["model_name"], "coder");
        let fallbacks: Vec<&str> = d["fallbacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model_name"].as_str().unwrap())
            .collect();
        assert_eq!(fallbacks, vec!["long-context", "default-model"]);
        assert_eq!(d["rules"][0]["matched"], false);
        assert!(
            d["rules"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("role user")
        );

        let d = explain(alice.clone(), json!({"message": "x".repeat(5000)})).await;
        assert_eq!(d["rule_name"], "long");
        assert_eq!(d["prompt_tokens"], 1250);

        let d = explain(
            alice.clone(),
            json!({"message": "short", "tags": ["cheap"]}),
        )
        .await;
        assert_eq!(d["rule_name"], "cheap");

        let d = explain(alice.clone(), json!({"message": "short"})).await;
        assert_eq!(
            (d["source"].as_str(), d["model"]["id"].as_str()),
            (Some("system_default"), Some(default.as_str()))
        );

        call(
            &api.runner,
            "PUT",
            "/api/arcana/llm/preferences",
            &alice,
            Some(json!({"default_model_id": mine})),
        )
        .await;
        let d = explain(alice.clone(), json!({"message": "short"})).await;
        assert_eq!(d["source"], "user_default");
        assert_eq!(d["model"]["model_name"], "my-default");

        // A requested model beats every rule.
        let d = explain(alice.clone(), json!({"message": "cargo", "model": "cheap"})).await;
        assert_eq!(d["source"], "requested");

        // A model named by a rule cannot be deleted; rules can be edited and deleted.
        let (status, err, _) = api
            .admin_call("DELETE", &format!("/api/arcana/llm/models/{coder}"), None)
            .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (StatusCode::CONFLICT, Some("model_in_use"))
        );
        let (_, rules, _) = api
            .admin_call("GET", "/api/arcana/llm/routing-rules", None)
            .await;
        let names: Vec<&str> = rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["admins", "code", "long", "cheap"]);
        let code_id = rules[1]["id"].as_str().unwrap();
        let (status, updated, _) = api
            .admin_call(
                "PUT",
                &format!("/api/arcana/llm/routing-rules/{code_id}"),
                Some(rule("code", 2, json!({"pattern": "go"}), &coder, json!([])).clone()),
            )
            .await;
        assert_eq!(
            (status, updated["conditions"]["pattern"].as_str()),
            (StatusCode::OK, Some("go"))
        );
        let (status, _, _) = api
            .admin_call(
                "DELETE",
                &format!("/api/arcana/llm/routing-rules/{code_id}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
        let (status, _, _) = api
            .admin_call(
                "GET",
                &format!("/api/arcana/llm/routing-rules/{code_id}"),
                None,
            )
            .await;
        assert_eq!(status, 404);
    }
}

const NEW_KEY: &str = "9999999999999999999999999999999999999999999999999999999999999999";

both_hosts! {
    async fn rotation_reseals_every_key_and_moved_ciphertexts_fail() {
        let api = Api::start().await;
        let a = api.provider("a", Some("sk-aaaa-1111")).await;
        let b = api.provider("b", Some("sk-bbbb-2222")).await;
        let admin = api.admin.clone();
        let dir = api.runner.stop();
        let db_path = dir.path().join("arcana.db");
        let rc = std::fs::read_to_string(dir.path().join("runtime-config.toml")).unwrap();

        // Copy a's sealed key onto b's row: it must not open there.
        {
            let db = libsql::Builder::new_local(&db_path).build().await.unwrap();
            let conn = db.connect().unwrap();
            conn.execute(
                "UPDATE llm_providers SET (api_key_kid, api_key_nonce, api_key_sealed) =
                   (SELECT api_key_kid, api_key_nonce, api_key_sealed FROM llm_providers WHERE id = ?1) WHERE id = ?2",
                [a.as_str(), b.as_str()],
            )
            .await
            .unwrap();
        }
        let opts = RunnerOptions {
            runtime_config: Some(rc),
            env: vec![
                ("SPIN_VARIABLE_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
                (
                    "SPIN_VARIABLE_LLM_MASTER_KEYS".into(),
                    format!("new:{NEW_KEY},test1:{TEST_MASTER_KEY}"),
                ),
                (
                    "SPIN_VARIABLE_METRICS_TOKEN".into(),
                    TEST_METRICS_TOKEN.into(),
                ),
            ],
            ..Default::default()
        };
        let runner = Runner::start_with(opts);
        let (status, _, _) = call(&runner, "POST", "/api/arcana/llm/keys/rotate", &admin, None).await;
        assert_eq!(status, 500, "a moved ciphertext must not decrypt");
        let (_, list, _) = call(&runner, "GET", "/api/arcana/llm/providers", &admin, None).await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|p| p["api_key_kid"] == "test1"),
            "the failed rotation changed nothing"
        );

        // Replace b's key, then rotation succeeds for both.
        let (status, _, _) = call(&runner, "PUT", &format!("/api/arcana/llm/providers/{b}"), &admin,
            Some(json!({"name": "b", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-bbbb-3333"}))).await;
        assert_eq!(status, 200);
        let (status, result, _) =
            call(&runner, "POST", "/api/arcana/llm/keys/rotate", &admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            (result["key_id"].as_str(), result["resealed"].as_i64()),
            (Some("new"), Some(1)),
            "b was already sealed under the new key"
        );
        let (_, list, _) = call(&runner, "GET", "/api/arcana/llm/providers", &admin, None).await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|p| p["api_key_kid"] == "new")
        );
    }
}
