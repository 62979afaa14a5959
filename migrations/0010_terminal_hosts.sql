-- 0010: several terminal-hosts on one database. Each host registers itself and beats
-- a heartbeat; each session records the host that owns its shell; WebSocket tickets
-- live here so that one host may redeem what another issued. New tables rather than
-- new columns: `spin up` runs every migration file at each start, and SQLite's
-- ADD COLUMN cannot be repeated. Idempotent; never edit once applied.

CREATE TABLE IF NOT EXISTS terminal_hosts (
    id             TEXT PRIMARY KEY,     -- --host-id, by default hostname:port
    advertise_url  TEXT NOT NULL,        -- where clients and proxies reach it
    started_at     TEXT NOT NULL,        -- RFC 3339 UTC
    last_seen      TEXT NOT NULL         -- heartbeat, RFC 3339 UTC
);

CREATE TABLE IF NOT EXISTS terminal_session_hosts (
    session_id  TEXT PRIMARY KEY REFERENCES terminal_sessions (id) ON DELETE CASCADE,
    host_id     TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS terminal_session_hosts_host_idx ON terminal_session_hosts (host_id);

-- Single-use WebSocket tickets (their SHA-256), valid until expires_at.
CREATE TABLE IF NOT EXISTS terminal_tickets (
    ticket_hash  TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   TEXT NOT NULL
);
