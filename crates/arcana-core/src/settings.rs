//! Configuration read from Spin variables (declared in `spin.toml`, set with
//! `SPIN_VARIABLE_<NAME>` or the platform's variable provider).

use crate::error::ApiError;

/// Where variables come from: `spin_sdk::variables` in components, a map in tests.
pub trait Vars {
    /// The variable's value, or `None` when the component does not define it.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for std::collections::HashMap<&'static str, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Settings shared by all components.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HMAC key for access tokens (at least 32 bytes).
    pub jwt_secret: Vec<u8>,
    /// Access-token lifetime in seconds.
    pub token_ttl_secs: i64,
    /// Whether anyone may register after the first (admin) user.
    pub allow_signup: bool,
    /// Browser origins allowed by CORS (exact match; `*` allows any).
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Master keys sealing provider API keys (`kid:hex64,...`, newest first); only the
    /// `llm` component is given this variable.
    pub llm_master_keys: Option<String>,
    /// Bearer token that Prometheus scrapers present at `/metrics` (only the `system`
    /// component is given it; admins may scrape with their access token instead).
    pub metrics_token: Option<String>,
    /// When the application started (Unix seconds), for the uptime in the status.
    pub started_at: Option<i64>,
    /// Whether the caller's and the system's default models are tried after a routing
    /// choice and its fallbacks failed (a rule may say otherwise). Default true.
    pub fallback_to_default: bool,
    /// How often a streamed reply's progress is saved (`None`: only at its end).
    pub reply_progress: Option<std::time::Duration>,
    /// Whether new conversations get a title written by a model (routing tag `title`).
    pub generate_titles: bool,
    /// How long a followed reply stream may stay silent before a `: keep-alive` comment.
    pub stream_heartbeat: std::time::Duration,
    /// Whether memories are chosen by relevance to the message (embeddings) rather than
    /// in key order. Default true; without an embedding model the key order is used.
    pub semantic_memory: bool,
    /// Least cosine similarity for a memory to be injected (pinned ones always are).
    pub memory_min_score: f32,
}

/// Default of [`Settings::memory_min_score`] (see README, Semantic memory and search).
pub const DEFAULT_MEMORY_MIN_SCORE: f32 = 0.25;

/// Smallest accepted JWT secret.
pub const MIN_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads every setting; a missing or weak secret is a 500 with a clear log line
    /// (a deployment error, not a client error).
    pub fn load(vars: &dyn Vars) -> Result<Settings, ApiError> {
        let jwt_secret = vars.get("jwt_secret").unwrap_or_default().into_bytes();
        if jwt_secret.len() < MIN_SECRET_BYTES {
            return Err(ApiError::internal(format!(
                "variable jwt_secret must be at least {MIN_SECRET_BYTES} bytes (set SPIN_VARIABLE_JWT_SECRET)"
            )));
        }
        Ok(Settings {
            jwt_secret,
            token_ttl_secs: parse_or(vars, "access_token_ttl_secs", 3600).clamp(60, 30 * 86400),
            allow_signup: vars
                .get("allow_signup")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            cors_origins: vars
                .get("cors_allowed_origins")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            max_body_bytes: parse_or(vars, "max_body_bytes", 1 << 20).clamp(1024, 64 << 20)
                as usize,
            llm_master_keys: vars.get("llm_master_keys"),
            metrics_token: vars
                .get("metrics_token")
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            started_at: vars
                .get("started_at")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|&t| t > 0),
            fallback_to_default: !vars
                .get("fallback_to_default")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
            reply_progress: match parse_or(vars, "reply_progress_ms", 100) {
                0 => None,
                ms => Some(std::time::Duration::from_millis(ms.clamp(10, 10_000) as u64)),
            },
            generate_titles: !vars
                .get("generate_titles")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
            stream_heartbeat: std::time::Duration::from_secs(
                parse_or(vars, "stream_heartbeat_secs", 15).clamp(1, 300) as u64,
            ),
            semantic_memory: !vars
                .get("semantic_memory")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false")),
            memory_min_score: vars
                .get("memory_min_score")
                .and_then(|v| v.trim().parse::<f32>().ok())
                .filter(|s| s.is_finite())
                .map_or(DEFAULT_MEMORY_MIN_SCORE, |s| s.clamp(-1.0, 1.0)),
        })
    }

    /// Settings for unit tests.
    pub fn for_tests() -> Settings {
        Settings {
            jwt_secret: b"test-secret-test-secret-test-secret!!".to_vec(),
            token_ttl_secs: 3600,
            allow_signup: false,
            cors_origins: vec!["http://localhost:5173".into()],
            max_body_bytes: 1 << 20,
            llm_master_keys: None,
            metrics_token: None,
            started_at: None,
            fallback_to_default: true,
            reply_progress: Some(std::time::Duration::from_millis(100)),
            generate_titles: true,
            stream_heartbeat: std::time::Duration::from_secs(15),
            semantic_memory: true,
            memory_min_score: DEFAULT_MEMORY_MIN_SCORE,
        }
    }
}

fn parse_or(vars: &dyn Vars, name: &str, default: i64) -> i64 {
    vars.get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
