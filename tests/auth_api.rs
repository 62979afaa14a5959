//! The auth and system components over real HTTP: registration, login, tokens,
//! permissions, admin user management and the API conventions every endpoint shares.

use arcana_tests::both_hosts;
use arcana_tests::{Runner, RunnerOptions, TEST_JWT_SECRET, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api {
    runner: Runner,
    http: reqwest::Client,
}

impl Api {
    fn start() -> Api {
        Api::start_with(RunnerOptions::default())
    }

    fn start_with(opts: RunnerOptions) -> Api {
        Api {
            runner: Runner::start_with(opts),
            http: client(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.runner.at(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn register(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Registers the first user (admin) and logs in.
    async fn admin(&self) -> String {
        let (status, _) = self.register("root", "correct horse battery").await;
        assert_eq!(status, 201);
        self.login("root", "correct horse battery").await
    }

    /// Creates a plain user through the admin API and logs in as them.
    async fn user(&self, admin: &str, name: &str, permissions: Value) -> (String, String) {
        let (status, body) = self
            .send(
                "POST",
                "/api/admin/users",
                Some(admin),
                Some(json!({"username": name, "password": "password-of-user", "permissions": permissions})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        (id, self.login(name, "password-of-user").await)
    }
}

fn forge(claims: Value, secret: &str) -> String {
    let claims: arcana_core::auth::token::Claims = serde_json::from_value(claims).unwrap();
    arcana_core::auth::token::issue(secret.as_bytes(), &claims).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

both_hosts! {
    async fn register_login_me_and_first_user_is_admin() {
        let api = Api::start();
        let (status, user) = api.register("Alice", "correct horse battery").await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(user["role"], "admin");
        assert_eq!(user["username"], "Alice");
        assert!(user.get("password_hash").is_none());
        uuid_like(user["id"].as_str().unwrap());
        assert!(user["created_at"].as_str().unwrap().ends_with('Z'));

        let resp = api
            .http
            .post(api.runner.at("/api/auth/login"))
            .json(&json!({"username": "alice", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let tok: Value = resp.json().await.unwrap();
        assert_eq!(tok["token_type"], "bearer");
        assert_eq!(tok["expires_in"], 3600);
        let token = tok["access_token"].as_str().unwrap();

        let (status, me) = api.send("GET", "/api/auth/me", Some(token), None).await;
        assert_eq!(status, 200);
        assert_eq!(me["id"], user["id"]);
        assert_eq!(
            me["effective_permissions"],
            json!(["terminal", "llm:admin", "users:admin"])
        );
    }
}

fn uuid_like(s: &str) {
    assert_eq!(s.len(), 36, "{s}");
    assert_eq!(s.matches('-').count(), 4, "{s}");
}

both_hosts! {
    async fn login_accepts_oauth2_form_bodies() {
        let api = Api::start();
        api.admin().await;
        let resp = api
            .http
            .post(api.runner.at("/api/auth/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=root&password=correct+horse+battery")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

both_hosts! {
    async fn signup_is_closed_after_the_first_user_by_default() {
        let api = Api::start();
        api.admin().await;
        let (status, body) = api.register("bob", "another password").await;
        assert_eq!(status, 403);
        assert_eq!(body["code"], "signup_closed");
    }
}

both_hosts! {
    async fn signup_can_be_opened_and_new_users_are_plain_users() {
        let api = Api::start_with(RunnerOptions::default().env("SPIN_VARIABLE_ALLOW_SIGNUP", "true"));
        api.admin().await;
        let (status, body) = api.register("bob", "another password").await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["role"], "user");
        let (status, body) = api.register("BOB", "another password").await;
        assert_eq!(status, 409, "names are unique ignoring case");
        assert_eq!(body["code"], "username_taken");
    }
}

both_hosts! {
    async fn wrong_password_and_unknown_user_look_the_same() {
        let api = Api::start();
        api.admin().await;
        let (s1, b1) = api
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": "root", "password": "nope-nope"})),
            )
            .await;
        let (s2, b2) = api
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": "ghost", "password": "nope-nope"})),
            )
            .await;
        assert_eq!(
            (s1, s2),
            (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
        );
        assert_eq!(b1["code"], "invalid_credentials");
        assert_eq!(b1["detail"], b2["detail"]);
        assert_eq!(b1["code"], b2["code"]);
    }
}

both_hosts! {
    async fn repeated_failures_are_throttled_for_real_and_unknown_accounts() {
        let api = Api::start();
        api.admin().await;
        for name in ["root", "ghost"] {
            for _ in 0..5 {
                let (status, _) = api
                    .send(
                        "POST",
                        "/api/auth/login",
                        None,
                        Some(json!({"username": name, "password": "bad-bad-bad"})),
                    )
                    .await;
                assert_eq!(status, 401);
            }
            let resp = api
                .http
                .post(api.runner.at("/api/auth/login"))
                .json(&json!({"username": name, "password": "correct horse battery"}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                429,
                "{name} must be locked even with the right password"
            );
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=30).contains(&retry));
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "too_many_attempts");
        }
    }
}

both_hosts! {
    async fn missing_malformed_forged_and_expired_tokens_are_401() {
        let api = Api::start();
        let admin = api.admin().await;
        let (_, me) = api.send("GET", "/api/auth/me", Some(&admin), None).await;
        let id = me["id"].as_str().unwrap();

        let (status, body) = api.send("GET", "/api/auth/me", None, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("missing_token"))
        );
        let (status, body) = api
            .send("GET", "/api/auth/me", Some("not-a-jwt"), None)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );

        let claims = |exp: i64| json!({"sub": id, "role": "admin", "ver": 0, "iat": now(), "exp": exp, "iss": "arcana", "jti": "x"});
        let forged = forge(claims(now() + 600), "some-other-secret-some-other-secret!!");
        let (status, _) = api.send("GET", "/api/auth/me", Some(&forged), None).await;
        assert_eq!(status, 401);
        // Past the 30 s leeway for clocks that differ.
        let expired = forge(claims(now() - 120), TEST_JWT_SECRET);
        let (status, body) = api.send("GET", "/api/auth/me", Some(&expired), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_expired"))
        );
        let mut early = claims(now() + 600);
        early["nbf"] = json!(now() + 600);
        let (status, body) = api
            .send("GET", "/api/auth/me", Some(&forge(early, TEST_JWT_SECRET)), None)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token_not_yet_valid"))
        );
        let mut from_the_future = claims(now() + 600);
        from_the_future["iat"] = json!(now() + 600);
        let (status, _) = api
            .send("GET", "/api/auth/me", Some(&forge(from_the_future, TEST_JWT_SECRET)), None)
            .await;
        assert_eq!(status, 401);
        // The same claims, unexpired and properly signed, are accepted: the 401s above were real.
        let good = forge(claims(now() + 600), TEST_JWT_SECRET);
        assert_eq!(
            api.send("GET", "/api/auth/me", Some(&good), None).await.0,
            200
        );
    }
}

both_hosts! {
    async fn admin_endpoints_need_the_users_admin_permission() {
        let api = Api::start();
        let admin = api.admin().await;
        let (_, plain) = api.user(&admin, "plain", json!([])).await;
        let (status, body) = api
            .send("GET", "/api/admin/users", Some(&plain), None)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("permission_denied"))
        );

        // A delegated user manager may list users but not create admins.
        let (_, manager) = api.user(&admin, "manager", json!(["users:admin"])).await;
        let (status, page) = api
            .send("GET", "/api/admin/users?limit=2", Some(&manager), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        let next = page["next_cursor"].as_str().unwrap();
        let (_, page2) = api
            .send(
                "GET",
                &format!("/api/admin/users?limit=2&cursor={next}"),
                Some(&manager),
                None,
            )
            .await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert!(page2["next_cursor"].is_null());
        let (status, body) = api
            .send(
                "POST",
                "/api/admin/users",
                Some(&manager),
                Some(json!({"username": "sneaky", "password": "password123", "role": "admin"})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required"))
        );
    }
}

both_hosts! {
    async fn disabling_a_user_revokes_their_existing_tokens() {
        let api = Api::start();
        let admin = api.admin().await;
        let (id, token) = api.user(&admin, "carol", json!(["terminal"])).await;
        assert_eq!(
            api.send("GET", "/api/auth/me", Some(&token), None).await.0,
            200
        );

        let (status, body) = api
            .send(
                "PUT",
                &format!("/api/admin/users/{id}"),
                Some(&admin),
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["disabled"], true);
        let (status, body) = api.send("GET", "/api/auth/me", Some(&token), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        let (status, _) = api
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": "carol", "password": "password-of-user"})),
            )
            .await;
        assert_eq!(status, 401, "a disabled user cannot log in");

        api.send(
            "PUT",
            &format!("/api/admin/users/{id}"),
            Some(&admin),
            Some(json!({"disabled": false})),
        )
        .await;
        let fresh = api.login("carol", "password-of-user").await;
        assert_eq!(
            api.send("GET", "/api/auth/me", Some(&fresh), None).await.0,
            200
        );
        assert_eq!(
            api.send("GET", "/api/auth/me", Some(&token), None).await.0,
            401,
            "old token stays revoked"
        );
    }
}

both_hosts! {
    async fn admin_crud_and_last_admin_protection() {
        let api = Api::start();
        let admin = api.admin().await;
        let (_, me) = api.send("GET", "/api/auth/me", Some(&admin), None).await;
        let admin_id = me["id"].as_str().unwrap().to_string();
        let (id, _) = api.user(&admin, "dave", json!([])).await;

        let (status, body) = api
            .send(
                "PUT",
                &format!("/api/admin/users/{id}"),
                Some(&admin),
                Some(json!({"permissions": ["terminal", "llm:admin"], "email": "dave@example.com"})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(body["permissions"], json!(["llm:admin", "terminal"]));
        assert_eq!(body["email"], "dave@example.com");
        let (status, body) = api
            .send("GET", &format!("/api/admin/users/{id}"), Some(&admin), None)
            .await;
        assert_eq!(
            (status, body["username"].as_str()),
            (StatusCode::OK, Some("dave"))
        );

        let (status, body) = api
            .send(
                "PUT",
                &format!("/api/admin/users/{id}"),
                Some(&admin),
                Some(json!({"permissions": ["root"]})),
            )
            .await;
        assert_eq!(status, 422, "{body}");

        let (status, body) = api
            .send(
                "PUT",
                &format!("/api/admin/users/{admin_id}"),
                Some(&admin),
                Some(json!({"role": "user"})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("last_admin"))
        );
        let (status, _) = api
            .send(
                "DELETE",
                &format!("/api/admin/users/{admin_id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, 409);

        let (status, _) = api
            .send(
                "DELETE",
                &format!("/api/admin/users/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, 204);
        let (status, body) = api
            .send("GET", &format!("/api/admin/users/{id}"), Some(&admin), None)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let (status, _) = api
            .send("GET", "/api/admin/users/not-a-uuid", Some(&admin), None)
            .await;
        assert_eq!(status, 404);
    }
}

both_hosts! {
    async fn bad_input_gets_clear_json_errors() {
        let api = Api::start();
        let send_raw = |body: &'static str, ct: &'static str| {
            api.http
                .post(api.runner.at("/api/auth/register"))
                .header("content-type", ct)
                .body(body)
                .send()
        };
        let resp = send_raw("{\"username\": ", "application/json")
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "malformed_json");
        assert!(body["request_id"].is_string());

        let resp = send_raw("username=a", "text/plain").await.unwrap();
        assert_eq!(resp.status(), 415);

        let (status, body) = api.register("x", "short").await;
        assert_eq!(status, 422);
        assert_eq!(body["code"], "validation_failed");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, vec!["username", "password"]);

        let (status, body) = api
            .send(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({"username": "okname", "password": "longenough", "admin": true})),
            )
            .await;
        assert_eq!(status, 422, "unknown fields are refused: {body}");
    }
}

both_hosts! {
    async fn oversize_bodies_are_refused_with_413() {
        let api = Api::start_with(RunnerOptions::default().env("SPIN_VARIABLE_MAX_BODY_BYTES", "2048"));
        let big = "x".repeat(10_000);
        let (status, body) = api
            .send(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({"username": "big", "password": big})),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
        );
    }
}

both_hosts! {
    async fn unknown_routes_and_wrong_methods() {
        let api = Api::start();
        let (status, body) = api.send("GET", "/api/auth/nope", None, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("route_not_found"))
        );
        let resp = api
            .http
            .delete(api.runner.at("/api/auth/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET");
        let (status, _) = api.send("GET", "/api/nowhere", None, None).await;
        assert_eq!(status, 404);
    }
}

both_hosts! {
    async fn cors_allows_only_configured_origins() {
        let api = Api::start();
        let preflight = |origin: &'static str| {
            api.http
                .request(reqwest::Method::OPTIONS, api.runner.at("/api/auth/login"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .send()
        };
        let ok = preflight("http://localhost:5173").await.unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(
            ok.headers()["access-control-allow-origin"],
            "http://localhost:5173"
        );
        assert!(
            ok.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        let bad = preflight("https://evil.example").await.unwrap();
        assert!(bad.headers().get("access-control-allow-origin").is_none());
    }
}

both_hosts! {
    async fn health_is_public_and_reports_the_database() {
        let api = Api::start();
        let (status, body) = api.send("GET", "/api/health", None, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["database"]["ok"], true);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }
}

both_hosts! {
    async fn openapi_documents_every_served_route() {
        let api = Api::start();
        let (status, doc) = api.send("GET", "/api/openapi.json", None, None).await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for route in arcana_core::api::all_routes() {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not in the served OpenAPI document",
                route.method,
                route.path
            );
            // And the route is really served: anything but the dispatcher's 404.
            let path = route
                .path
                .replace("{id}", "00000000-0000-0000-0000-000000000000");
            let resp = api
                .http
                .request(route.method.parse().unwrap(), api.runner.at(&path))
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["code"], "route_not_found",
                "{} {} is documented but not served",
                route.method, path
            );
        }
    }
}
