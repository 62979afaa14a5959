//! A backend ready for LLM work: the provider stand-in, a runner allowed to call it,
//! the first (admin) user, and helpers to add providers, models and users as that admin.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stand_in::StandIn;
use crate::{Runner, RunnerOptions, call, login, register_admin};

/// The API key every test provider is configured with.
pub const PROVIDER_KEY: &str = "sk-stand-in-0123456789";

/// A runner, the stand-in it may call, and the admin's token.
pub struct Backend {
    pub runner: Runner,
    pub stand_in: StandIn,
    pub admin: String,
}

impl Backend {
    /// Starts the stand-in and a runner (with `opts`) that may call it; registers `root`.
    pub async fn start_with(opts: RunnerOptions) -> Backend {
        let stand_in = StandIn::start().await;
        let runner = Runner::start_with(opts.env("SPIN_VARIABLE_LLM_HOST_CUSTOM", &stand_in.url()));
        let admin = register_admin(&runner, "root", "root password").await;
        Backend {
            runner,
            stand_in,
            admin,
        }
    }

    /// [`Backend::start_with`] default options.
    pub async fn start() -> Backend {
        Backend::start_with(RunnerOptions::default()).await
    }

    /// An authenticated request as the admin.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call(&self.runner, method, path, &self.admin, body).await
    }

    /// Adds a provider (`kind` openai or anthropic) and returns its id.
    pub async fn provider(
        &self,
        name: &str,
        kind: &str,
        base_url: &str,
        timeout_secs: i64,
        max_retries: i64,
    ) -> String {
        let (status, p) = self
            .call(
                "POST",
                "/api/arcana/llm/providers",
                Some(json!({
                "name": name, "kind": kind, "base_url": base_url, "api_key": PROVIDER_KEY,
                "timeout_secs": timeout_secs, "max_retries": max_retries})),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        p["id"].as_str().unwrap().to_string()
    }

    /// An OpenAI-compatible provider at the stand-in, without retries.
    pub async fn openai_provider(&self) -> String {
        let base = format!("{}/v1", self.stand_in.url());
        self.provider("oa", "openai", &base, 10, 0).await
    }

    /// Adds a model priced at $0.001 / $0.002 per prompt / completion token; returns its id.
    pub async fn model(&self, provider: &str, name: &str, default: bool) -> String {
        let (status, m) = self
            .call("POST", "/api/arcana/llm/models", Some(json!({
                "provider_id": provider, "model_name": name, "max_tokens": 256, "context_window": 8192,
                "input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "is_default": default})))
            .await;
        assert_eq!(status, 201, "{m}");
        m["id"].as_str().unwrap().to_string()
    }

    /// Creates a user with permissions and returns their token.
    pub async fn user(&self, name: &str, permissions: &[&str]) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/admin/users",
                Some(json!({
                "username": name, "password": "user password", "permissions": permissions})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        login(&self.runner, name, "user password").await
    }
}
