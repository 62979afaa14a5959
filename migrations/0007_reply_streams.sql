-- 0007: replies in progress, so that any request can follow a streamed reply through
-- the database alone (another tab, a reload, another instance, real Spin), and a
-- trigger that touches the conversation on every new message (one statement fewer
-- per message). Idempotent; never edit once applied.

-- One row per streamed reply. While `status` is `streaming`, `content` holds the text
-- generated so far (appended in batches); once finished it is emptied, the text being
-- in `chat_messages`, and `final_data` holds the closing event's JSON. `marks` lists
-- the byte offset where each batch ended (`,12,40,...`): followers cut their events
-- there, so every follower sees the same events.
CREATE TABLE IF NOT EXISTS chat_reply_streams (
    message_id        TEXT PRIMARY KEY REFERENCES chat_messages (id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL,
    content           TEXT NOT NULL DEFAULT '',
    marks             TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'streaming'
                      CHECK (status IN ('streaming', 'done', 'error', 'cancelled')),
    final_data        TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL
);

CREATE TRIGGER IF NOT EXISTS chat_messages_touch_conversation AFTER INSERT ON chat_messages BEGIN
    UPDATE conversations SET updated_at = new.timestamp WHERE id = new.conversation_id;
END;
