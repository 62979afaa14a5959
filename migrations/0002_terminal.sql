-- 0002: terminal sessions, their command history and their recordings
-- (owned by terminal-host). Idempotent; never edit once applied.

CREATE TABLE IF NOT EXISTS terminal_sessions (
    id            TEXT PRIMARY KEY,                  -- UUID chosen by the client
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('active', 'closed')),
    started_at    TEXT NOT NULL,                     -- RFC 3339 UTC
    ended_at      TEXT,
    end_reason    TEXT,                              -- closed_by_user, exited, idle_timeout, lifetime, detached_timeout, host_shutdown, host_restart
    exit_code     INTEGER,
    last_command  TEXT,
    shell         TEXT NOT NULL,
    cols          INTEGER NOT NULL,
    rows          INTEGER NOT NULL,
    commands_run  INTEGER NOT NULL DEFAULT 0,
    recording_bytes INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS terminal_sessions_user_idx ON terminal_sessions (user_id, started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS terminal_sessions_started_idx ON terminal_sessions (started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS terminal_sessions_active_idx ON terminal_sessions (status) WHERE status = 'active';

CREATE TABLE IF NOT EXISTS terminal_command_history (
    id                TEXT PRIMARY KEY,              -- UUID
    session_id        TEXT NOT NULL REFERENCES terminal_sessions (id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,              -- order within the session
    command           TEXT NOT NULL,                 -- as the shell ran it
    exit_code         INTEGER,
    output            TEXT NOT NULL DEFAULT '',      -- truncated to the configured cap
    output_truncated  INTEGER NOT NULL DEFAULT 0,
    timestamp         TEXT NOT NULL,                 -- when the command started
    finished_at       TEXT,
    UNIQUE (session_id, seq)
);

-- asciicast v2 event lines, appended in chunks while the session runs.
CREATE TABLE IF NOT EXISTS terminal_recordings (
    session_id  TEXT NOT NULL REFERENCES terminal_sessions (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
