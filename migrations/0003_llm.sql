-- 0003: LLM providers, models, per-user preferences, model allowlists, routing rules,
-- the usage ledger and budgets. Idempotent; never edit once applied.

CREATE TABLE IF NOT EXISTS llm_providers (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('openai', 'anthropic')),
    base_url         TEXT NOT NULL,
    api_key_kid      TEXT,              -- id of the master key that sealed the API key
    api_key_nonce    BLOB,              -- 24-byte XChaCha20-Poly1305 nonce
    api_key_sealed   BLOB,              -- ciphertext + tag; associated data = provider id
    api_key_hint     TEXT,              -- last four characters, for people to recognise it
    enabled          INTEGER NOT NULL DEFAULT 1,
    timeout_secs     INTEGER NOT NULL DEFAULT 60,
    max_retries      INTEGER NOT NULL DEFAULT 2,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS llm_models (
    id                     TEXT PRIMARY KEY,
    provider_id            TEXT NOT NULL REFERENCES llm_providers (id),
    model_name             TEXT NOT NULL,
    display_name           TEXT NOT NULL,
    max_tokens             INTEGER NOT NULL,
    context_window         INTEGER NOT NULL,
    input_cost_per_token   REAL NOT NULL DEFAULT 0,   -- USD
    output_cost_per_token  REAL NOT NULL DEFAULT 0,   -- USD
    enabled                INTEGER NOT NULL DEFAULT 1,
    is_default             INTEGER NOT NULL DEFAULT 0, -- the system default (at most one)
    tags                   TEXT NOT NULL DEFAULT '[]', -- JSON array, e.g. ["code","cheap"]
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    UNIQUE (provider_id, model_name)
);

-- Who may use a model. A model without rows is open to every user.
CREATE TABLE IF NOT EXISTS llm_model_access (
    model_id      TEXT NOT NULL REFERENCES llm_models (id) ON DELETE CASCADE,
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject       TEXT NOT NULL,
    PRIMARY KEY (model_id, subject_type, subject)
);

CREATE TABLE IF NOT EXISTS user_llm_preferences (
    user_id           TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    default_model_id  TEXT REFERENCES llm_models (id) ON DELETE SET NULL,
    temperature       REAL,
    top_p             REAL,
    max_tokens        INTEGER,
    system_prompt     TEXT,
    updated_at        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS llm_routing_rules (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    priority           INTEGER NOT NULL,             -- lower runs first
    enabled            INTEGER NOT NULL DEFAULT 1,
    conditions         TEXT NOT NULL,                -- JSON, see arcana_core::llm::routing
    target_model_id    TEXT NOT NULL REFERENCES llm_models (id),
    fallback_model_ids TEXT NOT NULL DEFAULT '[]',   -- JSON array of model ids
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_routing_rules_order_idx ON llm_routing_rules (priority, created_at);

-- One row per provider call, written after the call (streamed calls included).
CREATE TABLE IF NOT EXISTS llm_usage (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    model_id           TEXT,
    provider_id        TEXT,
    model_name         TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    cost               REAL NOT NULL DEFAULT 0,
    latency_ms         REAL NOT NULL DEFAULT 0,
    outcome            TEXT NOT NULL,                -- ok, or an error code
    streamed           INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_usage_user_idx ON llm_usage (user_id, created_at);
CREATE INDEX IF NOT EXISTS llm_usage_created_idx ON llm_usage (created_at);

CREATE TABLE IF NOT EXISTS llm_budgets (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    monthly_usd   REAL NOT NULL,
    updated_at    TEXT NOT NULL
);
