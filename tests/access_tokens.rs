//! Personal access tokens over real HTTP on both hosts: created with a session, the
//! secret shown once and stored hashed, scopes enforced per route, expiry, last use,
//! revocation at once, a disabled user's tokens refused, admins seeing and revoking
//! everyone's, and another user's token a 404.

use std::time::Duration;

use arcana_tests::backend::Backend;
use arcana_tests::{both_hosts, call};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn create(env: &Backend, session: &str, body: Value) -> (StatusCode, Value) {
    call(&env.runner, "POST", "/api/auth/tokens", session, Some(body)).await
}

async fn token(env: &Backend, session: &str, name: &str, scopes: &[&str]) -> (String, String) {
    let (status, t) = create(env, session, json!({"name": name, "scopes": scopes})).await;
    assert_eq!(status, 201, "{t}");
    (
        t["id"].as_str().unwrap().to_string(),
        t["token"].as_str().unwrap().to_string(),
    )
}

both_hosts! {
    async fn a_token_works_once_created_within_its_scopes_until_revoked() {
        let env = Backend::start().await;
        let (status, created) = create(&env, &env.admin, json!({"name": "laptop", "scopes": ["read", "chat"]})).await;
        assert_eq!(status, 201, "{created}");
        let secret = created["token"].as_str().unwrap().to_string();
        assert!(secret.starts_with("arc_"), "{secret}");
        assert_eq!(created["scopes"], json!(["chat", "read"]));
        assert!(created["last_used_at"].is_null());
        assert!(secret.starts_with(created["prefix"].as_str().unwrap()));

        // The secret is never shown again, nor its hash.
        let (status, list) = call(&env.runner, "GET", "/api/auth/tokens", &env.admin, None).await;
        assert_eq!(status, 200);
        let text = list.to_string();
        assert!(!text.contains(&secret) && !text.contains("hash"), "{text}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);

        // read: GETs; chat: conversations; not llm, not admin, not token management.
        let (status, me) = call(&env.runner, "GET", "/api/auth/me", &secret, None).await;
        assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("root")));
        let (status, _) = call(&env.runner, "POST", "/api/chat/conversations", &secret, Some(json!({"title": "by token"}))).await;
        assert_eq!(status, 201);
        for (method, path, body, code) in [
            ("PUT", "/api/arcana/llm/preferences", Some(json!({"temperature": 0.5})), "insufficient_scope"),
            ("GET", "/v1/models", None, "insufficient_scope"),
            ("GET", "/api/admin/users", None, "insufficient_scope"),
            ("POST", "/api/auth/tokens", Some(json!({"name": "more", "scopes": ["read"]})), "session_required"),
            ("GET", "/api/auth/tokens", None, "session_required"),
        ] {
            let (status, err) = call(&env.runner, method, path, &secret, body).await;
            assert_eq!(status, 403, "{method} {path}: {err}");
            let code_found = err["code"].as_str().or(err["error"]["code"].as_str());
            assert_eq!(code_found, Some(code), "{method} {path}: {err}");
        }

        // Its use is recorded.
        let (_, list) = call(&env.runner, "GET", "/api/auth/tokens", &env.admin, None).await;
        assert!(list["items"][0]["last_used_at"].is_string(), "{list}");

        // Revoked: refused at once.
        let id = created["id"].as_str().unwrap();
        let (status, _) = call(&env.runner, "DELETE", &format!("/api/auth/tokens/{id}"), &env.admin, None).await;
        assert_eq!(status, 204);
        let (status, err) = call(&env.runner, "GET", "/api/auth/me", &secret, None).await;
        assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
        let (status, _) = call(&env.runner, "DELETE", &format!("/api/auth/tokens/{id}"), &env.admin, None).await;
        assert_eq!(status, 404);
    }
}

both_hosts! {
    async fn bad_inputs_expiry_and_disabled_users() {
        let env = Backend::start().await;
        for (body, field) in [
            (json!({"name": "", "scopes": ["read"]}), "name"),
            (json!({"name": "x", "scopes": []}), "scopes"),
            (json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
            (json!({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}), "expires_at"),
        ] {
            let (status, err) = create(&env, &env.admin, body.clone()).await;
            assert_eq!(status, 422, "{body}: {err}");
            assert_eq!(err["errors"][0]["field"], field, "{err}");
        }
        let (status, err) = create(&env, &env.admin, json!({"name": "x", "scopes": ["everything"]})).await;
        assert!(status == 400 || status == 422, "{status} {err}");

        // A token that expires in two seconds works, then does not.
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let (status, t) = create(&env, &env.admin, json!({"name": "short", "scopes": ["read"], "expires_at": soon})).await;
        assert_eq!(status, 201, "{t}");
        let secret = t["token"].as_str().unwrap();
        assert_eq!(call(&env.runner, "GET", "/api/auth/me", secret, None).await.0, 200);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (status, err) = call(&env.runner, "GET", "/api/auth/me", secret, None).await;
        assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_expired")));

        // A user's token stops when the user is disabled; a plain user cannot ask for admin.
        let session = env.user("bob", &[]).await;
        let (status, _) = create(&env, &session, json!({"name": "adm", "scopes": ["admin"]})).await;
        assert_eq!(status, 403);
        let (_, bob_token) = token(&env, &session, "bob's", &["read"]).await;
        assert_eq!(call(&env.runner, "GET", "/api/auth/me", &bob_token, None).await.0, 200);
        let (_, me) = call(&env.runner, "GET", "/api/auth/me", &session, None).await;
        let bob_id = me["id"].as_str().unwrap();
        let (status, _) = env.call("PUT", &format!("/api/admin/users/{bob_id}"), Some(json!({"disabled": true}))).await;
        assert_eq!(status, 200);
        assert_eq!(call(&env.runner, "GET", "/api/auth/me", &bob_token, None).await.0, 401);
    }
}

both_hosts! {
    async fn tokens_are_private_to_their_owner_and_visible_to_admins() {
        let env = Backend::start().await;
        let alice = env.user("alice", &[]).await;
        let bob = env.user("bob", &[]).await;
        let (alice_id, alice_secret) = token(&env, &alice, "alice's", &["read"]).await;
        token(&env, &bob, "bob's", &["read"]).await;

        // Bob sees only his, cannot list everyone's, and Alice's token is a 404 to him.
        let (_, list) = call(&env.runner, "GET", "/api/auth/tokens", &bob, None).await;
        let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["bob's"]);
        assert_eq!(call(&env.runner, "GET", "/api/auth/tokens?all=true", &bob, None).await.0, 403);
        let (status, _) = call(&env.runner, "DELETE", &format!("/api/auth/tokens/{alice_id}"), &bob, None).await;
        assert_eq!(status, 404);
        assert_eq!(call(&env.runner, "GET", "/api/auth/me", &alice_secret, None).await.0, 200);

        // The admin sees both, pages through them, and revokes Alice's.
        let (_, all) = env.call("GET", "/api/auth/tokens?all=true&limit=1", None).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 1);
        let cursor = all["next_cursor"].as_str().expect("a second page").to_string();
        let (_, rest) = env.call("GET", &format!("/api/auth/tokens?all=true&cursor={cursor}"), None).await;
        assert_eq!(rest["items"].as_array().unwrap().len(), 1);
        assert_ne!(all["items"][0]["id"], rest["items"][0]["id"]);
        let (status, _) = env.call("DELETE", &format!("/api/auth/tokens/{alice_id}"), None).await;
        assert_eq!(status, 204);
        assert_eq!(call(&env.runner, "GET", "/api/auth/me", &alice_secret, None).await.0, 401);
    }
}

both_hosts! {
    async fn shells_need_a_session_not_a_personal_token() {
        let env = Backend::start_with(arcana_tests::RunnerOptions {
            with_terminal_host: true,
            ..Default::default()
        })
        .await;
        let (_, secret) = token(&env, &env.admin, "everything", &["read", "chat", "llm", "admin"]).await;
        let terminal = env.runner.terminal_url.clone().expect("terminal-host runs");
        let http = arcana_tests::client();
        for (method, path) in [("POST", "/api/arcana/terminal/tickets"), ("GET", "/api/arcana/terminal/sessions")] {
            let url = format!("{terminal}{path}");
            let resp = http.request(method.parse().unwrap(), &url).bearer_auth(&secret).send().await.unwrap();
            assert_eq!(resp.status(), 403, "{method} {path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "session_required", "{body}");
            // The admin's session token may.
            let resp = http.request(method.parse().unwrap(), &url).bearer_auth(&env.admin).send().await.unwrap();
            assert!(resp.status().is_success(), "{method} {path}: {}", resp.status());
        }
    }
}
