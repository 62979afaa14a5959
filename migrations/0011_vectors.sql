-- Semantic vectors of memories and messages (crates/arcana-core/src/vectors): one per
-- item, with the model that made it and its dimension, so vectors of different models
-- are never compared. Rows go with their item (triggers: they fire on cascades too).
CREATE TABLE IF NOT EXISTS vectors (
    item_kind   TEXT NOT NULL CHECK (item_kind IN ('memory', 'message')),
    item_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL,
    vector      BLOB NOT NULL,                     -- dim little-endian f32s (libSQL's F32 format)
    created_at  TEXT NOT NULL,
    PRIMARY KEY (item_kind, item_id)
);
CREATE INDEX IF NOT EXISTS vectors_user_idx ON vectors (user_id, item_kind, model, created_at);

-- Memories injected into every chat whatever its message.
CREATE TABLE IF NOT EXISTS context_memory_pins (
    memory_id  TEXT PRIMARY KEY
);

CREATE TRIGGER IF NOT EXISTS vectors_memory_gone AFTER DELETE ON context_memory BEGIN
    DELETE FROM vectors WHERE item_kind = 'memory' AND item_id = old.id;
    DELETE FROM context_memory_pins WHERE memory_id = old.id;
END;
CREATE TRIGGER IF NOT EXISTS vectors_message_gone AFTER DELETE ON chat_messages BEGIN
    DELETE FROM vectors WHERE item_kind = 'message' AND item_id = old.id;
END;

-- Deployment-wide settings an admin changes through the API (key → JSON value):
-- `embedding_model` (a model id whose provider answers /embeddings, or absent for the
-- local all-minilm-l6-v2).
CREATE TABLE IF NOT EXISTS app_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
