-- libSQL only (sqld, Turso, the runner's embedded libSQL): an approximate nearest
-- neighbour index (DiskANN) over messages' all-minilm-l6-v2 vectors, kept in step with
-- `vectors` by triggers. `arcana up` and `arcana migrate` apply the files of this folder
-- when the database has libSQL's vector functions; plain SQLite (Spin's embedded
-- database) never sees them, and search ranks there without an index.
CREATE TABLE IF NOT EXISTS message_vector_index (
    message_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    vector      F32_BLOB(384) NOT NULL
);
-- 16 neighbours, stored as 8-bit floats: an insert costs ~2 ms instead of ~22 ms with
-- the defaults (measured on sqld, 384 dimensions); candidates are re-ranked exactly.
CREATE INDEX IF NOT EXISTS message_vector_index_ann ON message_vector_index (
    libsql_vector_idx(vector, 'metric=cosine', 'max_neighbors=16', 'compress_neighbors=float8'));

CREATE TRIGGER IF NOT EXISTS message_vector_index_insert AFTER INSERT ON vectors
    WHEN new.item_kind = 'message' AND new.model = 'spin:all-minilm-l6-v2' AND new.dim = 384
BEGIN
    INSERT OR REPLACE INTO message_vector_index (message_id, user_id, vector)
    VALUES (new.item_id, new.user_id, new.vector);
END;
CREATE TRIGGER IF NOT EXISTS message_vector_index_update AFTER UPDATE ON vectors
    WHEN new.item_kind = 'message'
BEGIN
    DELETE FROM message_vector_index WHERE message_id = old.item_id;
    INSERT INTO message_vector_index (message_id, user_id, vector)
    SELECT new.item_id, new.user_id, new.vector
    WHERE new.model = 'spin:all-minilm-l6-v2' AND new.dim = 384;
END;
CREATE TRIGGER IF NOT EXISTS message_vector_index_delete AFTER DELETE ON vectors
    WHEN old.item_kind = 'message'
BEGIN
    DELETE FROM message_vector_index WHERE message_id = old.item_id;
END;

-- Vectors stored before the index existed.
INSERT OR IGNORE INTO message_vector_index (message_id, user_id, vector)
SELECT item_id, user_id, vector FROM vectors
WHERE item_kind = 'message' AND model = 'spin:all-minilm-l6-v2' AND dim = 384;
