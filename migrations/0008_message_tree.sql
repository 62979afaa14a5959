-- 0008: conversations as trees (edit, regenerate, branches). New tables rather than new
-- columns: `spin up` runs every migration file at each start, and SQLite's ADD COLUMN
-- cannot be repeated. Idempotent; never edit once applied.

-- Each message's parent (NULL: a root). Written by the trigger below for every new
-- message: it hangs under the conversation's active leaf and becomes the active leaf.
-- To branch, the application first moves the active leaf to the parent it wants.
-- The conversation is repeated here so that a message's siblings are one index range
-- (roots included: their NULL parent would otherwise match every conversation's roots).
CREATE TABLE IF NOT EXISTS chat_message_parents (
    message_id       TEXT PRIMARY KEY REFERENCES chat_messages (id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL,
    parent_id        TEXT
);
CREATE INDEX IF NOT EXISTS chat_message_parents_children
    ON chat_message_parents (conversation_id, parent_id);

-- The message the conversation's active path ends at (NULL: no messages).
CREATE TABLE IF NOT EXISTS chat_active_leaf (
    conversation_id  TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    message_id       TEXT
);

-- Conversations from before trees: a linear history becomes one path (each message's
-- parent is the one before it), ending at its newest message. Done once: the marker row
-- makes the reruns (Spin runs this file at every start) scan nothing.
CREATE TABLE IF NOT EXISTS chat_tree_backfilled (done INTEGER PRIMARY KEY CHECK (done = 1));
INSERT OR IGNORE INTO chat_message_parents (message_id, conversation_id, parent_id)
SELECT m.id, m.conversation_id, (SELECT p.id FROM chat_messages p
              WHERE p.conversation_id = m.conversation_id AND p.seq < m.seq
              ORDER BY p.seq DESC LIMIT 1)
FROM chat_messages m WHERE NOT EXISTS (SELECT 1 FROM chat_tree_backfilled);
INSERT OR IGNORE INTO chat_active_leaf (conversation_id, message_id)
SELECT c.id, (SELECT m.id FROM chat_messages m WHERE m.conversation_id = c.id ORDER BY m.seq DESC LIMIT 1)
FROM conversations c WHERE NOT EXISTS (SELECT 1 FROM chat_tree_backfilled);
INSERT OR IGNORE INTO chat_tree_backfilled (done) VALUES (1);

-- A new message hangs under the active leaf (when that message still exists) and
-- becomes the active leaf.
CREATE TRIGGER IF NOT EXISTS chat_messages_tree_insert AFTER INSERT ON chat_messages BEGIN
    INSERT OR REPLACE INTO chat_message_parents (message_id, conversation_id, parent_id)
    VALUES (new.id, new.conversation_id, (SELECT l.message_id FROM chat_active_leaf l
                     JOIN chat_messages m ON m.id = l.message_id
                     WHERE l.conversation_id = new.conversation_id));
    INSERT INTO chat_active_leaf (conversation_id, message_id) VALUES (new.conversation_id, new.id)
    ON CONFLICT (conversation_id) DO UPDATE SET message_id = excluded.message_id;
END;

-- A deleted message takes its parent row along; an active leaf moves up to its parent.
CREATE TRIGGER IF NOT EXISTS chat_messages_tree_delete AFTER DELETE ON chat_messages BEGIN
    UPDATE chat_active_leaf
    SET message_id = (SELECT parent_id FROM chat_message_parents WHERE message_id = old.id)
    WHERE conversation_id = old.conversation_id AND message_id = old.id;
    DELETE FROM chat_message_parents WHERE message_id = old.id;
END;
