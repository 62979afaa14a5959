-- Personal access tokens: long-lived, scoped bearer secrets for scripts and
-- OpenAI-compatible clients (`/v1/*`). Only the SHA-256 of a secret is stored; the
-- secret itself is shown once, when the token is created. Revoking deletes the row.
CREATE TABLE IF NOT EXISTS auth_access_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- hex SHA-256 of the whole secret (`arc_…`)
    secret_hash   TEXT NOT NULL UNIQUE,
    -- the secret's first characters, so a person can tell tokens apart
    prefix        TEXT NOT NULL,
    -- JSON array of scope names
    scopes        TEXT NOT NULL,
    -- whether gateway calls made with it are kept as conversations
    keep_history  INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT
);

CREATE INDEX IF NOT EXISTS auth_access_tokens_by_user ON auth_access_tokens (user_id, created_at, id);
CREATE INDEX IF NOT EXISTS auth_access_tokens_by_created ON auth_access_tokens (created_at, id);
