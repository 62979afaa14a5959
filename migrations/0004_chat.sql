-- 0004: conversations, chat messages with full-text search, and context memory.
-- Idempotent; never edit once applied.

CREATE TABLE IF NOT EXISTS conversations (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    owner       TEXT GENERATED ALWAYS AS (replace(user_id, '-', '')) VIRTUAL  -- one search token
);
-- Listing is "newest updated first" per user; (updated_at, id) is the cursor.
CREATE INDEX IF NOT EXISTS conversations_user_updated_idx ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS chat_messages (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL,
    conversation_id    TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq                INTEGER NOT NULL,              -- order within the conversation
    sender             TEXT NOT NULL CHECK (sender IN ('user', 'llm')),
    message_content    TEXT NOT NULL,
    timestamp          TEXT NOT NULL,
    model_id           TEXT,
    model_name         TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    cost               REAL,
    latency_ms         REAL,
    status             TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial')),
    owner              TEXT GENERATED ALWAYS AS (replace(user_id, '-', '')) VIRTUAL,  -- one search token
    UNIQUE (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS chat_messages_user_idx ON chat_messages (user_id, timestamp);

-- Full-text search over message content, kept in sync by triggers. The owner's id is
-- indexed too (as one token, `owner`), so a search is scoped to one user inside the index
-- instead of filtering every match afterwards.
CREATE VIRTUAL TABLE IF NOT EXISTS chat_messages_fts USING fts5 (
    message_content, owner, content = 'chat_messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chat_messages_fts_insert AFTER INSERT ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (rowid, message_content, owner) VALUES (new.rowid, new.message_content, new.owner);
END;
CREATE TRIGGER IF NOT EXISTS chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, message_content, owner)
        VALUES ('delete', old.rowid, old.message_content, old.owner);
END;
CREATE TRIGGER IF NOT EXISTS chat_messages_fts_update AFTER UPDATE OF message_content ON chat_messages BEGIN
    INSERT INTO chat_messages_fts (chat_messages_fts, rowid, message_content, owner)
        VALUES ('delete', old.rowid, old.message_content, old.owner);
    INSERT INTO chat_messages_fts (rowid, message_content, owner) VALUES (new.rowid, new.message_content, new.owner);
END;

-- Titles are searched too.
CREATE VIRTUAL TABLE IF NOT EXISTS conversations_fts USING fts5 (
    title, owner, content = 'conversations', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts (rowid, title, owner) VALUES (new.rowid, new.title, new.owner);
END;
CREATE TRIGGER IF NOT EXISTS conversations_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title, owner) VALUES ('delete', old.rowid, old.title, old.owner);
END;
CREATE TRIGGER IF NOT EXISTS conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title, owner) VALUES ('delete', old.rowid, old.title, old.owner);
    INSERT INTO conversations_fts (rowid, title, owner) VALUES (new.rowid, new.title, new.owner);
END;

CREATE TABLE IF NOT EXISTS context_memory (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,                    -- JSON
    last_accessed  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (user_id, key)
);
