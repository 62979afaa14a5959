-- 0001: users and the login throttle.
--
-- Every statement is idempotent (IF NOT EXISTS), so this file can also be passed to
-- real Spin as `spin up --sqlite @migrations/0001_users.sql`, which runs it at every
-- start. The runner applies it once and records it in _arcana_migrations.
-- Never edit this file once applied; add 0002_... instead.

CREATE TABLE IF NOT EXISTS users (
    id              TEXT PRIMARY KEY,                 -- UUID v4
    username        TEXT NOT NULL,                    -- as typed at registration
    username_norm   TEXT NOT NULL UNIQUE,             -- lower-case: names are unique ignoring case
    email           TEXT,
    password_hash   TEXT NOT NULL,                    -- argon2id PHC string
    role            TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    permissions     TEXT NOT NULL DEFAULT '[]',       -- JSON array of permission names
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    token_version   INTEGER NOT NULL DEFAULT 0,       -- bumped to revoke every issued token
    created_at      TEXT NOT NULL,                    -- RFC 3339 UTC, fixed width
    updated_at      TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS users_created_idx ON users (created_at, id);

-- Failed logins per normalized user name, whether or not the account exists,
-- so that throttling never tells an attacker which names are real.
CREATE TABLE IF NOT EXISTS login_throttle (
    username_norm   TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    window_start    TEXT NOT NULL,
    locked_until    TEXT
);
