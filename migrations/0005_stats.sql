-- 0005: aggregates behind GET /api/arcana/status and /metrics, kept by triggers in the
-- same transaction as the rows they count, so reading them never scans the data.
-- Idempotent; never edit once applied.

-- Chat, memory and terminal counts per user.
--   span 'stored': rows that exist now (inserts add one, deletes take one away)
--   span 'all':    rows ever created (never decreases; Prometheus counters)
--   span 'hour':   rows created in that clock hour (bucket 'YYYY-MM-DDTHH', UTC)
CREATE TABLE IF NOT EXISTS stats_activity (
    span               TEXT NOT NULL CHECK (span IN ('stored', 'all', 'hour')),
    bucket             TEXT NOT NULL,                -- '' for stored and all
    user_id            TEXT NOT NULL,
    conversations      INTEGER NOT NULL DEFAULT 0,
    messages           INTEGER NOT NULL DEFAULT 0,
    memories           INTEGER NOT NULL DEFAULT 0,
    terminal_sessions  INTEGER NOT NULL DEFAULT 0,
    terminal_commands  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (span, bucket, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_activity_user_idx ON stats_activity (user_id, span, bucket);

-- LLM provider attempts (one llm_usage row each) per user, provider and model.
--   span 'minute' (bucket 'YYYY-MM-DDTHH:MM', kept 2 hours), 'hour' (kept 8 days), 'all'.
-- lat_N counts attempts that took at most N ms and more than the previous bound
-- (not cumulative); lat_inf counts the rest.
CREATE TABLE IF NOT EXISTS stats_llm (
    span               TEXT NOT NULL CHECK (span IN ('minute', 'hour', 'all')),
    bucket             TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    provider_id        TEXT NOT NULL,                -- '' when the attempt had none
    model_name         TEXT NOT NULL,
    calls              INTEGER NOT NULL DEFAULT 0,
    errors             INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    cost               REAL NOT NULL DEFAULT 0,
    latency_ms_sum     REAL NOT NULL DEFAULT 0,
    lat_5 INTEGER NOT NULL DEFAULT 0, lat_10 INTEGER NOT NULL DEFAULT 0,
    lat_25 INTEGER NOT NULL DEFAULT 0, lat_50 INTEGER NOT NULL DEFAULT 0,
    lat_100 INTEGER NOT NULL DEFAULT 0, lat_250 INTEGER NOT NULL DEFAULT 0,
    lat_500 INTEGER NOT NULL DEFAULT 0, lat_1000 INTEGER NOT NULL DEFAULT 0,
    lat_2500 INTEGER NOT NULL DEFAULT 0, lat_5000 INTEGER NOT NULL DEFAULT 0,
    lat_10000 INTEGER NOT NULL DEFAULT 0, lat_30000 INTEGER NOT NULL DEFAULT 0,
    lat_60000 INTEGER NOT NULL DEFAULT 0, lat_120000 INTEGER NOT NULL DEFAULT 0,
    lat_inf INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (span, bucket, user_id, provider_id, model_name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_llm_user_idx ON stats_llm (user_id, span, bucket);

-- Failed attempts by error code, same spans and buckets.
CREATE TABLE IF NOT EXISTS stats_llm_errors (
    span         TEXT NOT NULL CHECK (span IN ('minute', 'hour', 'all')),
    bucket       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    model_name   TEXT NOT NULL,
    code         TEXT NOT NULL,
    n            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (span, bucket, user_id, provider_id, model_name, code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_llm_errors_user_idx ON stats_llm_errors (user_id, span, bucket);

-- Whether the aggregates were filled from the rows that existed before this file ran.
CREATE TABLE IF NOT EXISTS stats_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- Backfill, once: a database that already had data when this migration first ran.
-- (`spin up --sqlite @file` runs this file at every start; the marker keeps it to one fill.)
INSERT INTO stats_activity (span, bucket, user_id, conversations, messages, memories, terminal_sessions, terminal_commands)
SELECT s.span, substr(e.at, 1, s.len), e.user_id,
       sum(e.kind = 'c'), sum(e.kind = 'm'), sum(e.kind = 'k'), sum(e.kind = 's'), sum(e.kind = 'x')
FROM (SELECT user_id, created_at AS at, 'c' AS kind FROM conversations
      UNION ALL SELECT user_id, timestamp, 'm' FROM chat_messages
      UNION ALL SELECT user_id, created_at, 'k' FROM context_memory
      UNION ALL SELECT user_id, started_at, 's' FROM terminal_sessions
      UNION ALL SELECT t.user_id, h.timestamp, 'x' FROM terminal_command_history h
                JOIN terminal_sessions t ON t.id = h.session_id) AS e,
     (SELECT 'stored' AS span, 0 AS len UNION ALL SELECT 'all', 0 UNION ALL SELECT 'hour', 13) AS s
WHERE NOT EXISTS (SELECT 1 FROM stats_meta WHERE key = 'backfilled')
GROUP BY s.span, substr(e.at, 1, s.len), e.user_id;

INSERT INTO stats_llm (span, bucket, user_id, provider_id, model_name, calls, errors, prompt_tokens,
                       completion_tokens, cost, latency_ms_sum, lat_5, lat_10, lat_25, lat_50, lat_100,
                       lat_250, lat_500, lat_1000, lat_2500, lat_5000, lat_10000, lat_30000, lat_60000,
                       lat_120000, lat_inf)
SELECT s.span, substr(u.created_at, 1, s.len), u.user_id, coalesce(u.provider_id, ''), u.model_name,
       count(*), sum(u.outcome <> 'ok'), sum(u.prompt_tokens), sum(u.completion_tokens), sum(u.cost),
       sum(u.latency_ms),
       sum(u.latency_ms <= 5), sum(u.latency_ms > 5 AND u.latency_ms <= 10),
       sum(u.latency_ms > 10 AND u.latency_ms <= 25), sum(u.latency_ms > 25 AND u.latency_ms <= 50),
       sum(u.latency_ms > 50 AND u.latency_ms <= 100), sum(u.latency_ms > 100 AND u.latency_ms <= 250),
       sum(u.latency_ms > 250 AND u.latency_ms <= 500), sum(u.latency_ms > 500 AND u.latency_ms <= 1000),
       sum(u.latency_ms > 1000 AND u.latency_ms <= 2500), sum(u.latency_ms > 2500 AND u.latency_ms <= 5000),
       sum(u.latency_ms > 5000 AND u.latency_ms <= 10000), sum(u.latency_ms > 10000 AND u.latency_ms <= 30000),
       sum(u.latency_ms > 30000 AND u.latency_ms <= 60000), sum(u.latency_ms > 60000 AND u.latency_ms <= 120000),
       sum(u.latency_ms > 120000)
FROM llm_usage u,
     (SELECT 'minute' AS span, 16 AS len UNION ALL SELECT 'hour', 13 UNION ALL SELECT 'all', 0) AS s
WHERE NOT EXISTS (SELECT 1 FROM stats_meta WHERE key = 'backfilled')
GROUP BY s.span, substr(u.created_at, 1, s.len), u.user_id, coalesce(u.provider_id, ''), u.model_name;

INSERT INTO stats_llm_errors (span, bucket, user_id, provider_id, model_name, code, n)
SELECT s.span, substr(u.created_at, 1, s.len), u.user_id, coalesce(u.provider_id, ''), u.model_name,
       u.outcome, count(*)
FROM llm_usage u,
     (SELECT 'minute' AS span, 16 AS len UNION ALL SELECT 'hour', 13 UNION ALL SELECT 'all', 0) AS s
WHERE u.outcome <> 'ok' AND NOT EXISTS (SELECT 1 FROM stats_meta WHERE key = 'backfilled')
GROUP BY s.span, substr(u.created_at, 1, s.len), u.user_id, coalesce(u.provider_id, ''), u.model_name, u.outcome;

INSERT OR IGNORE INTO stats_meta (key, value) VALUES ('backfilled', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- Triggers. Each bumps the 'stored', 'all' and 'hour' rows of its owner; deletes only
-- the 'stored' row. Hour buckets older than 8 days are pruned as new ones are written.

CREATE TRIGGER IF NOT EXISTS stats_conversations_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, conversations)
    VALUES ('stored', '', new.user_id, 1), ('all', '', new.user_id, 1),
           ('hour', substr(new.created_at, 1, 13), new.user_id, 1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET conversations = conversations + excluded.conversations;
END;
CREATE TRIGGER IF NOT EXISTS stats_conversations_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, conversations) VALUES ('stored', '', old.user_id, -1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET conversations = conversations + excluded.conversations;
END;

CREATE TRIGGER IF NOT EXISTS stats_messages_insert AFTER INSERT ON chat_messages BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, messages)
    VALUES ('stored', '', new.user_id, 1), ('all', '', new.user_id, 1),
           ('hour', substr(new.timestamp, 1, 13), new.user_id, 1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET messages = messages + excluded.messages;
    DELETE FROM stats_activity
    WHERE span = 'hour' AND bucket < strftime('%Y-%m-%dT%H', substr(new.timestamp, 1, 19), '-8 days');
END;
CREATE TRIGGER IF NOT EXISTS stats_messages_delete AFTER DELETE ON chat_messages BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, messages) VALUES ('stored', '', old.user_id, -1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET messages = messages + excluded.messages;
END;

-- An upsert that updates an existing key fires no INSERT trigger, so it is not counted twice.
CREATE TRIGGER IF NOT EXISTS stats_memories_insert AFTER INSERT ON context_memory BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, memories)
    VALUES ('stored', '', new.user_id, 1), ('all', '', new.user_id, 1),
           ('hour', substr(new.created_at, 1, 13), new.user_id, 1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET memories = memories + excluded.memories;
END;
CREATE TRIGGER IF NOT EXISTS stats_memories_delete AFTER DELETE ON context_memory BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, memories) VALUES ('stored', '', old.user_id, -1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET memories = memories + excluded.memories;
END;

CREATE TRIGGER IF NOT EXISTS stats_terminal_sessions_insert AFTER INSERT ON terminal_sessions BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, terminal_sessions)
    VALUES ('stored', '', new.user_id, 1), ('all', '', new.user_id, 1),
           ('hour', substr(new.started_at, 1, 13), new.user_id, 1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET terminal_sessions = terminal_sessions + excluded.terminal_sessions;
END;
CREATE TRIGGER IF NOT EXISTS stats_terminal_sessions_delete AFTER DELETE ON terminal_sessions BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, terminal_sessions) VALUES ('stored', '', old.user_id, -1)
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET terminal_sessions = terminal_sessions + excluded.terminal_sessions;
END;

CREATE TRIGGER IF NOT EXISTS stats_terminal_commands_insert AFTER INSERT ON terminal_command_history BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, terminal_commands)
    SELECT s.span, s.bucket, t.user_id, 1
    FROM terminal_sessions t,
         (SELECT 'stored' AS span, '' AS bucket UNION ALL SELECT 'all', ''
          UNION ALL SELECT 'hour', substr(new.timestamp, 1, 13)) AS s
    WHERE t.id = new.session_id
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET terminal_commands = terminal_commands + excluded.terminal_commands;
END;
-- When the session itself is being deleted its row may already be gone; then its
-- owner is being deleted too and there is nothing left to count.
CREATE TRIGGER IF NOT EXISTS stats_terminal_commands_delete AFTER DELETE ON terminal_command_history BEGIN
    INSERT INTO stats_activity (span, bucket, user_id, terminal_commands)
    SELECT 'stored', '', t.user_id, -1 FROM terminal_sessions t WHERE t.id = old.session_id
    ON CONFLICT (span, bucket, user_id) DO UPDATE SET terminal_commands = terminal_commands + excluded.terminal_commands;
END;

-- A deleted user's rows cascade away; their 'stored' counts go with them ('all' stays,
-- as counters never go down). Runs after the cascades, whose triggers touched the row.
CREATE TRIGGER IF NOT EXISTS stats_users_delete AFTER DELETE ON users BEGIN
    DELETE FROM stats_activity WHERE user_id = old.id AND span = 'stored';
END;

CREATE TRIGGER IF NOT EXISTS stats_llm_usage_insert AFTER INSERT ON llm_usage BEGIN
    INSERT INTO stats_llm (span, bucket, user_id, provider_id, model_name, calls, errors, prompt_tokens,
                           completion_tokens, cost, latency_ms_sum, lat_5, lat_10, lat_25, lat_50, lat_100,
                           lat_250, lat_500, lat_1000, lat_2500, lat_5000, lat_10000, lat_30000, lat_60000,
                           lat_120000, lat_inf)
    SELECT s.span, s.bucket, new.user_id, coalesce(new.provider_id, ''), new.model_name,
           1, new.outcome <> 'ok', new.prompt_tokens, new.completion_tokens, new.cost, new.latency_ms,
           new.latency_ms <= 5, new.latency_ms > 5 AND new.latency_ms <= 10,
           new.latency_ms > 10 AND new.latency_ms <= 25, new.latency_ms > 25 AND new.latency_ms <= 50,
           new.latency_ms > 50 AND new.latency_ms <= 100, new.latency_ms > 100 AND new.latency_ms <= 250,
           new.latency_ms > 250 AND new.latency_ms <= 500, new.latency_ms > 500 AND new.latency_ms <= 1000,
           new.latency_ms > 1000 AND new.latency_ms <= 2500, new.latency_ms > 2500 AND new.latency_ms <= 5000,
           new.latency_ms > 5000 AND new.latency_ms <= 10000, new.latency_ms > 10000 AND new.latency_ms <= 30000,
           new.latency_ms > 30000 AND new.latency_ms <= 60000, new.latency_ms > 60000 AND new.latency_ms <= 120000,
           new.latency_ms > 120000
    FROM (SELECT 'minute' AS span, substr(new.created_at, 1, 16) AS bucket
          UNION ALL SELECT 'hour', substr(new.created_at, 1, 13) UNION ALL SELECT 'all', '') AS s
    WHERE true
    ON CONFLICT (span, bucket, user_id, provider_id, model_name) DO UPDATE SET
        calls = calls + excluded.calls, errors = errors + excluded.errors,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        cost = cost + excluded.cost, latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
        lat_5 = lat_5 + excluded.lat_5, lat_10 = lat_10 + excluded.lat_10, lat_25 = lat_25 + excluded.lat_25,
        lat_50 = lat_50 + excluded.lat_50, lat_100 = lat_100 + excluded.lat_100,
        lat_250 = lat_250 + excluded.lat_250, lat_500 = lat_500 + excluded.lat_500,
        lat_1000 = lat_1000 + excluded.lat_1000, lat_2500 = lat_2500 + excluded.lat_2500,
        lat_5000 = lat_5000 + excluded.lat_5000, lat_10000 = lat_10000 + excluded.lat_10000,
        lat_30000 = lat_30000 + excluded.lat_30000, lat_60000 = lat_60000 + excluded.lat_60000,
        lat_120000 = lat_120000 + excluded.lat_120000, lat_inf = lat_inf + excluded.lat_inf;
    INSERT INTO stats_llm_errors (span, bucket, user_id, provider_id, model_name, code, n)
    SELECT s.span, s.bucket, new.user_id, coalesce(new.provider_id, ''), new.model_name, new.outcome, 1
    FROM (SELECT 'minute' AS span, substr(new.created_at, 1, 16) AS bucket
          UNION ALL SELECT 'hour', substr(new.created_at, 1, 13) UNION ALL SELECT 'all', '') AS s
    WHERE new.outcome <> 'ok'
    ON CONFLICT (span, bucket, user_id, provider_id, model_name, code) DO UPDATE SET n = n + excluded.n;
    DELETE FROM stats_llm
    WHERE span = 'minute' AND bucket < strftime('%Y-%m-%dT%H:%M', substr(new.created_at, 1, 19), '-2 hours');
    DELETE FROM stats_llm
    WHERE span = 'hour' AND bucket < strftime('%Y-%m-%dT%H', substr(new.created_at, 1, 19), '-8 days');
    DELETE FROM stats_llm_errors
    WHERE span = 'minute' AND bucket < strftime('%Y-%m-%dT%H:%M', substr(new.created_at, 1, 19), '-2 hours');
    DELETE FROM stats_llm_errors
    WHERE span = 'hour' AND bucket < strftime('%Y-%m-%dT%H', substr(new.created_at, 1, 19), '-8 days');
END;
