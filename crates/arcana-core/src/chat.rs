//! Conversations and their messages: the SQL behind the chat endpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{Db, DbError, Row};
use crate::pagination::{Cursor, Page, PageRequest};

/// A conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    User,
    Llm,
}

impl Sender {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Llm => "llm",
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender: Sender,
    pub message_content: String,
    pub timestamp: String,
    pub model_name: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub latency_ms: Option<f64>,
    /// `complete`; `partial` when a provider failure cut the answer off; `streaming`
    /// while a reply is generated; `cancelled` when the user stopped it.
    pub status: String,
    /// The message this one answers or follows (`None`: the conversation's first).
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Every child of the same parent, oldest first, this one included (history only):
    /// the branches a user can switch between.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sibling_ids: Vec<String>,
    /// This message's place in `sibling_ids` (history only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sibling_index: Option<usize>,
}

fn conversation_from_row(r: Row<'_>) -> Result<Conversation, DbError> {
    Ok(Conversation {
        id: r.text(0)?,
        user_id: r.text(1)?,
        title: r.text(2)?,
        created_at: r.text(3)?,
        updated_at: r.text(4)?,
    })
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender, message_content, timestamp, model_name, prompt_tokens, completion_tokens, cost, latency_ms, \
     COALESCE((SELECT s.status FROM chat_reply_streams s WHERE s.message_id = chat_messages.id AND s.status IN ('streaming', 'cancelled')), status), \
     (SELECT pr.parent_id FROM chat_message_parents pr WHERE pr.message_id = chat_messages.id)";
/// How many columns [`MESSAGE_COLUMNS`] has.
const MESSAGE_COLUMN_COUNT: usize = 13;
/// The columns a `RETURNING` clause gives back (no subquery there; a new message has
/// no stream state yet).
const RETURNED_COLUMNS: &str = "id, conversation_id, seq, sender, message_content, timestamp, model_name, prompt_tokens, completion_tokens, cost, latency_ms, status, NULL";

fn opt_real(r: &Row<'_>, i: usize) -> Result<Option<f64>, DbError> {
    match r.opt_int(i) {
        Ok(None) => Ok(None),
        _ => r.real(i).map(Some).or(Ok(None)),
    }
}

fn message_from_row(r: Row<'_>) -> Result<ChatMessage, DbError> {
    Ok(ChatMessage {
        id: r.text(0)?,
        conversation_id: r.text(1)?,
        seq: r.int(2)?,
        sender: if r.text(3)? == "llm" {
            Sender::Llm
        } else {
            Sender::User
        },
        message_content: r.text(4)?,
        timestamp: r.text(5)?,
        model_name: r.opt_text(6)?,
        prompt_tokens: r.opt_int(7)?,
        completion_tokens: r.opt_int(8)?,
        cost: opt_real(&r, 9)?,
        latency_ms: opt_real(&r, 10)?,
        status: r.text(11)?,
        parent_id: r.opt_text(12)?,
        sibling_ids: Vec::new(),
        sibling_index: None,
    })
}

/// A title from a first message: its first line, at most 60 characters.
pub fn title_from(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("New conversation");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// Creates a conversation.
pub fn create(db: &dyn Db, user_id: &str, title: &str, now: &str) -> Result<Conversation, DbError> {
    let id = uuid::Uuid::new_v4().to_string();
    db.execute(
        "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        &[id.clone().into(), user_id.into(), title.into(), now.into()],
    )?;
    Ok(Conversation {
        id,
        user_id: user_id.to_string(),
        title: title.to_string(),
        created_at: now.to_string(),
        updated_at: now.to_string(),
    })
}

/// The caller's conversation, or `None` (also for other users' ids).
pub fn get(db: &dyn Db, user_id: &str, id: &str) -> Result<Option<Conversation>, DbError> {
    let rows = db.query(
        "SELECT id, user_id, title, created_at, updated_at FROM conversations WHERE id = ?1 AND user_id = ?2",
        &[id.into(), user_id.into()],
    )?;
    rows.first().map(conversation_from_row).transpose()
}

/// The caller's conversations, newest updated first, optionally filtered by title.
pub fn list(
    db: &dyn Db,
    user_id: &str,
    title_filter: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Conversation>, DbError> {
    let (key, id) = page
        .after
        .as_ref()
        .map(|c| (c.key.clone(), c.id.clone()))
        .unwrap_or_default();
    let pattern = title_filter.map(|f| {
        let escaped = f
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = db.query(
        "SELECT id, user_id, title, created_at, updated_at FROM conversations
         WHERE user_id = ?1 AND (?2 IS NULL OR title LIKE ?2 ESCAPE '\\')
           AND (?3 = '' OR (updated_at, id) < (?3, ?4))
         ORDER BY updated_at DESC, id DESC LIMIT ?5",
        &[
            user_id.into(),
            pattern.into(),
            key.into(),
            id.into(),
            (page.limit + 1).into(),
        ],
    )?;
    let items = rows
        .iter()
        .map(conversation_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, page.limit, |c| Cursor {
        key: c.updated_at.clone(),
        id: c.id.clone(),
    }))
}

/// Renames a conversation.
pub fn rename(db: &dyn Db, id: &str, title: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE conversations SET title = ?2, updated_at = ?3 WHERE id = ?1",
        &[id.into(), title.into(), now.into()],
    )
}

/// Sets a generated title unless the conversation's title is no longer `expected` (its
/// owner renamed it). Whether it was set.
pub fn retitle_unless_renamed(
    db: &dyn Db,
    user_id: &str,
    id: &str,
    expected: &str,
    title: &str,
) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE conversations SET title = ?4 WHERE id = ?1 AND user_id = ?2 AND title = ?3 RETURNING 1",
        &[id.into(), user_id.into(), expected.into(), title.into()],
    )?;
    Ok(rows.first().is_some())
}

/// Deletes a conversation and its messages.
pub fn delete(db: &dyn Db, id: &str) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM chat_messages WHERE conversation_id = ?1",
        &[id.into()],
    )?;
    db.execute("DELETE FROM conversations WHERE id = ?1", &[id.into()])
}

/// Fields of a new message.
#[derive(Debug, Default)]
pub struct NewMessage<'a> {
    pub model_id: Option<&'a str>,
    pub model_name: Option<&'a str>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub latency_ms: Option<f64>,
    /// Stored status (default `complete`).
    pub status: MessageStatus,
}

/// The stored status of a message. A streamed reply is stored `partial` until it
/// finishes; whether it is still `streaming` or was `cancelled` is its stream row's
/// (see [`crate::streams`]), and the message columns read it from there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageStatus {
    /// Written in full.
    #[default]
    Complete,
    /// Not all of it: cut off, stopped, or still being generated.
    Partial,
}

impl MessageStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Partial => "partial",
        }
    }
}

/// Appends a message (next `seq` of its conversation); a trigger touches the
/// conversation's `updated_at`.
pub fn append(
    db: &dyn Db,
    user_id: &str,
    conversation_id: &str,
    sender: Sender,
    content: &str,
    extra: &NewMessage<'_>,
    now: &str,
) -> Result<ChatMessage, DbError> {
    let id = uuid::Uuid::new_v4().to_string();
    let rows = db.query(
        &format!("INSERT INTO chat_messages (id, user_id, conversation_id, seq, sender, message_content, timestamp,
             model_id, model_name, prompt_tokens, completion_tokens, cost, latency_ms, status)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(max(seq), 0) + 1 FROM chat_messages WHERE conversation_id = ?3),
                 ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING {RETURNED_COLUMNS}"),
        &[
            id.clone().into(),
            user_id.into(),
            conversation_id.into(),
            sender.as_str().into(),
            content.into(),
            now.into(),
            extra.model_id.into(),
            extra.model_name.into(),
            extra.prompt_tokens.into(),
            extra.completion_tokens.into(),
            extra.cost.into(),
            extra.latency_ms.into(),
            extra.status.as_str().into(),
        ],
    )?;
    rows.first()
        .map(message_from_row)
        .transpose()?
        .ok_or_else(|| DbError::Other("message vanished".into()))
}

/// Stores the final text, status and usage of a reply whose row was made up front
/// (streamed replies); the FTS trigger indexes the text once, here.
pub fn finish_reply(
    db: &dyn Db,
    message_id: &str,
    content: &str,
    extra: &NewMessage<'_>,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE chat_messages SET message_content = ?2, model_id = ?3, model_name = ?4,
             prompt_tokens = ?5, completion_tokens = ?6, cost = ?7, latency_ms = ?8, status = ?9
         WHERE id = ?1",
        &[
            message_id.into(),
            content.into(),
            extra.model_id.into(),
            extra.model_name.into(),
            extra.prompt_tokens.into(),
            extra.completion_tokens.into(),
            extra.cost.into(),
            extra.latency_ms.into(),
            extra.status.as_str().into(),
        ],
    )
}

/// The messages of the caller's conversation `conversation_id`, oldest first, one page
/// at a time; `None` when the caller has no such conversation. One statement: the
/// ownership check and the page come together (a conversation without messages gives
/// one row of NULLs).
pub fn history(
    db: &dyn Db,
    user_id: &str,
    conversation_id: &str,
    page: &PageRequest,
) -> Result<Option<Page<ChatMessage>>, DbError> {
    let after: i64 = page
        .after
        .as_ref()
        .and_then(|c| c.key.parse().ok())
        .unwrap_or(0);
    // The active path: from the active leaf up through the parents. Along a path `seq`
    // grows, so it stays the page key.
    let rows = db.query(
        &format!(
            "WITH RECURSIVE path(id) AS (
                 SELECT l.message_id FROM chat_active_leaf l WHERE l.conversation_id = ?1
                 UNION ALL
                 SELECT pr.parent_id FROM path JOIN chat_message_parents pr ON pr.message_id = path.id
                 WHERE pr.parent_id IS NOT NULL)
             SELECT {JOINED_MESSAGE_COLUMNS},
                    (SELECT json_group_array(id) FROM (
                         SELECT sib.message_id AS id FROM chat_message_parents sib
                         JOIN chat_messages sm ON sm.id = sib.message_id
                         WHERE sib.conversation_id = ?1
                           AND sib.parent_id IS (SELECT parent_id FROM chat_message_parents WHERE message_id = m.id)
                         ORDER BY sm.seq))
             FROM conversations c
             LEFT JOIN chat_messages m ON m.conversation_id = c.id AND m.seq > ?3
                                      AND m.id IN (SELECT id FROM path)
             WHERE c.id = ?1 AND c.user_id = ?2 ORDER BY m.seq LIMIT ?4"
        ),
        &[
            conversation_id.into(),
            user_id.into(),
            after.into(),
            (page.limit + 1).into(),
        ],
    )?;
    if rows.rows.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.opt_text(0).ok().flatten().is_some())
    {
        let mut m = message_from_row(r)?;
        m.sibling_ids =
            serde_json::from_str(&r.opt_text(MESSAGE_COLUMN_COUNT)?.unwrap_or_default())
                .unwrap_or_default();
        m.sibling_index = m.sibling_ids.iter().position(|id| *id == m.id);
        items.push(m);
    }
    Ok(Some(Page::from_rows(items, page.limit, |m| Cursor {
        key: m.seq.to_string(),
        id: m.id.clone(),
    })))
}

/// The caller's conversation and all its messages, oldest first (export); one statement.
pub fn with_messages(
    db: &dyn Db,
    user_id: &str,
    conversation_id: &str,
) -> Result<Option<(Conversation, Vec<ChatMessage>)>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {JOINED_MESSAGE_COLUMNS}, c.id, c.user_id, c.title, c.created_at, c.updated_at
             FROM conversations c LEFT JOIN chat_messages m ON m.conversation_id = c.id
             WHERE c.id = ?1 AND c.user_id = ?2 ORDER BY m.seq"
        ),
        &[conversation_id.into(), user_id.into()],
    )?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let n = MESSAGE_COLUMN_COUNT;
    let conv = Conversation {
        id: first.text(n)?,
        user_id: first.text(n + 1)?,
        title: first.text(n + 2)?,
        created_at: first.text(n + 3)?,
        updated_at: first.text(n + 4)?,
    };
    Ok(Some((conv, present_messages(&rows)?)))
}

/// [`MESSAGE_COLUMNS`] of `chat_messages m`, for joins from `conversations c`.
/// The status of a reply in progress or stopped comes from its stream row (the
/// `chat_messages` column only knows `complete` and `partial`).
const JOINED_MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.seq, m.sender, m.message_content, m.timestamp, m.model_name, m.prompt_tokens, m.completion_tokens, m.cost, m.latency_ms, \
     COALESCE((SELECT s.status FROM chat_reply_streams s WHERE s.message_id = m.id AND s.status IN ('streaming', 'cancelled')), m.status), \
     (SELECT pr.parent_id FROM chat_message_parents pr WHERE pr.message_id = m.id)";

/// The messages of a LEFT JOIN's rows (a NULL id is the row of a conversation without any).
fn present_messages(rows: &crate::db::Rows) -> Result<Vec<ChatMessage>, DbError> {
    rows.iter()
        .filter(|r| r.opt_text(0).ok().flatten().is_some())
        .map(message_from_row)
        .collect()
}

/// The path ending at `message_id`, newest first, at most `limit` messages: the
/// turns a prompt is built from (other branches are not part of it).
pub fn path_to(db: &dyn Db, message_id: &str, limit: i64) -> Result<Vec<ChatMessage>, DbError> {
    let rows = db.query(
        &format!(
            "WITH RECURSIVE path(step, depth) AS (
                 SELECT ?1, 0
                 UNION ALL
                 SELECT pr.parent_id, depth + 1 FROM path JOIN chat_message_parents pr ON pr.message_id = path.step
                 WHERE pr.parent_id IS NOT NULL AND depth + 1 < ?2)
             SELECT {MESSAGE_COLUMNS} FROM path JOIN chat_messages ON chat_messages.id = path.step
             ORDER BY path.depth"
        ),
        &[message_id.into(), limit.into()],
    )?;
    rows.iter().map(message_from_row).collect()
}

/// One message of the caller's, with its parent; `None` when the caller has none such.
pub fn get_message(
    db: &dyn Db,
    user_id: &str,
    message_id: &str,
) -> Result<Option<ChatMessage>, DbError> {
    let rows = db.query(
        &format!("SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE id = ?1 AND user_id = ?2"),
        &[message_id.into(), user_id.into()],
    )?;
    rows.first().map(message_from_row).transpose()
}

/// Makes the next message of the conversation hang under `parent` (`None`: a new root).
pub fn set_active_leaf(
    db: &dyn Db,
    conversation_id: &str,
    parent: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO chat_active_leaf (conversation_id, message_id) VALUES (?1, ?2)
         ON CONFLICT (conversation_id) DO UPDATE SET message_id = excluded.message_id",
        &[conversation_id.into(), parent.into()],
    )
}

/// Makes the active path go through `message_id` and on down its newest replies; the
/// leaf it ends at.
pub fn activate(db: &dyn Db, conversation_id: &str, message_id: &str) -> Result<String, DbError> {
    let rows = db.query(
        "WITH RECURSIVE down(id, depth) AS (
             SELECT ?2, 0
             UNION ALL
             SELECT (SELECT pr.message_id FROM chat_message_parents pr
                     JOIN chat_messages cm ON cm.id = pr.message_id
                     WHERE pr.conversation_id = ?1 AND pr.parent_id = down.id
                     ORDER BY cm.seq DESC LIMIT 1), depth + 1
             FROM down WHERE down.id IS NOT NULL AND depth < 100000)
         INSERT INTO chat_active_leaf (conversation_id, message_id)
         SELECT ?1, id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
         ON CONFLICT (conversation_id) DO UPDATE SET message_id = excluded.message_id
         RETURNING message_id",
        &[conversation_id.into(), message_id.into()],
    )?;
    rows.first()
        .map(|r| r.text(0))
        .transpose()?
        .ok_or_else(|| DbError::Other("no leaf".into()))
}

/// Deletes the caller's message `message_id` and everything under it; the active leaf
/// moves to its parent when it was inside. How many messages went.
pub fn delete_subtree(
    db: &dyn Db,
    conversation_id: &str,
    message_id: &str,
    parent: Option<&str>,
) -> Result<usize, DbError> {
    let rows = db.query(
        "WITH RECURSIVE sub(id) AS (
             SELECT ?2
             UNION ALL
             SELECT pr.message_id FROM chat_message_parents pr
             JOIN sub ON pr.conversation_id = ?1 AND pr.parent_id = sub.id)
         DELETE FROM chat_messages WHERE conversation_id = ?1 AND id IN (SELECT id FROM sub)
         RETURNING id",
        &[conversation_id.into(), message_id.into()],
    )?;
    db.execute(
        "UPDATE chat_active_leaf SET message_id = ?2
         WHERE conversation_id = ?1
           AND (message_id IS NULL OR message_id NOT IN (SELECT id FROM chat_messages WHERE conversation_id = ?1))",
        &[conversation_id.into(), parent.into()],
    )?;
    Ok(rows.rows.len())
}

/// One search hit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    pub conversation_id: String,
    pub conversation_title: String,
    /// The matching message; absent when only the title matched.
    pub message_id: Option<String>,
    /// Text around the match, with `<mark>…</mark>` around matched terms.
    pub snippet: String,
    /// Lower is better (FTS5 bm25); 0 for hits found by meaning only.
    pub rank: f64,
    pub timestamp: String,
    /// Semantic mode: cosine similarity to the query; hybrid mode: the fused score
    /// (reciprocal rank fusion). Higher is better. Absent in keyword mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// Search hits for messages found by other means (by meaning), with the start of each
/// message as its snippet; only the caller's, in no particular order.
pub fn hits_for_messages(
    db: &dyn Db,
    user_id: &str,
    ids: &[String],
) -> Result<Vec<SearchHit>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(ids).map_err(|e| DbError::Decode(e.to_string()))?;
    let rows = db.query(
        "SELECT m.conversation_id, c.title, m.id, substr(m.message_content, 1, 200), 0.0, m.timestamp
         FROM chat_messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.user_id = ?1 AND m.id IN (SELECT value FROM json_each(?2))",
        &[user_id.into(), ids.into()],
    )?;
    rows.iter().map(hit_from_row).collect()
}

/// A hit from `conversation_id, title, message_id, snippet, rank, timestamp`.
fn hit_from_row(r: Row<'_>) -> Result<SearchHit, DbError> {
    Ok(SearchHit {
        conversation_id: r.text(0)?,
        conversation_title: r.text(1)?,
        message_id: r.opt_text(2)?,
        snippet: r.text(3)?,
        rank: r.real(4)?,
        timestamp: r.text(5)?,
        score: None,
    })
}

/// Turns user input into a safe FTS5 expression: every word quoted, all required.
pub fn fts_query(q: &str) -> Option<String> {
    // Control characters separate words like spaces do (a NUL would end FTS5's string).
    let terms: Vec<String> = q
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|t| !t.is_empty())
        .take(20)
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The full MATCH expression: the terms in `column`, and the owner's id (one token in
/// the indexed `owner` column), so FTS5 intersects both posting lists.
fn scoped_match(column: &str, terms: &str, user_id: &str) -> String {
    let owner: String = user_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("owner : \"{owner}\" AND {column} : ({terms})")
}

/// Full-text search over the caller's messages and conversation titles, best first.
/// Ranking and limiting happen inside FTS5 first; snippets are made for the few rows
/// returned only (making them for every match was 100x slower at 100k messages).
pub fn search(
    db: &dyn Db,
    user_id: &str,
    query: &str,
    limit: i64,
) -> Result<Vec<SearchHit>, DbError> {
    let Some(terms) = fts_query(query) else {
        return Ok(Vec::new());
    };
    let messages = scoped_match("message_content", &terms, user_id);
    let titles = scoped_match("title", &terms, user_id);
    let rows = db.query(
        "SELECT * FROM (
            SELECT m.conversation_id, c.title, m.id,
                   snippet(chat_messages_fts, 0, '<mark>', '</mark>', '…', 12), chat_messages_fts.rank, m.timestamp
            FROM chat_messages_fts
            JOIN chat_messages m ON m.rowid = chat_messages_fts.rowid
            JOIN conversations c ON c.id = m.conversation_id
            WHERE chat_messages_fts MATCH ?1
              AND chat_messages_fts.rowid IN (
                  SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH ?1 ORDER BY rank LIMIT ?3)
            UNION ALL
            SELECT c.id, c.title, NULL,
                   snippet(conversations_fts, 0, '<mark>', '</mark>', '…', 12), conversations_fts.rank, c.updated_at
            FROM conversations_fts JOIN conversations c ON c.rowid = conversations_fts.rowid
            WHERE conversations_fts MATCH ?2
              AND conversations_fts.rowid IN (
                  SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ?2 ORDER BY rank LIMIT ?3)
         ) ORDER BY 5, 6 DESC LIMIT ?3",
        &[messages.into(), titles.into(), limit.into()],
    )?;
    rows.iter().map(hit_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_queries_are_safe() {
        assert_eq!(title_from("\n  Hello world\nmore"), "Hello world");
        assert_eq!(title_from(&"x".repeat(100)).chars().count(), 61);
        assert_eq!(
            fts_query("rust \"cargo\" OR"),
            Some("\"rust\" \"\"\"cargo\"\"\" \"OR\"".into())
        );
        assert_eq!(fts_query("   "), None);
    }
}
