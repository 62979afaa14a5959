//! Streamed replies that survive the client: the text generated so far is persisted in
//! batches while the reply is generated, so that any request — another tab, a reload,
//! another API instance, a fresh Spin instance — can follow it through the database
//! alone, and a stop request can reach the generating request.
//!
//! Event ids are byte offsets into the reply: `start` is `0`, each `delta` carries the
//! offset where its text ends, and the closing event (`done`, `error` or `cancelled`)
//! is the reply's length plus one. Resuming after id `n` is then "the text from byte
//! `n`, then the closing event": exactly what was missed, with no duplicate and no gap,
//! however the text was batched.

use crate::db::{Db, DbError};

/// How a stream ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Streaming,
    Done,
    Error,
    Cancelled,
}

impl StreamStatus {
    /// Stored name, also the closing event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Streaming => "streaming",
            StreamStatus::Done => "done",
            StreamStatus::Error => "error",
            StreamStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "streaming" => StreamStatus::Streaming,
            "done" => StreamStatus::Done,
            "error" => StreamStatus::Error,
            "cancelled" => StreamStatus::Cancelled,
            other => return Err(DbError::Other(format!("unknown stream status {other}"))),
        })
    }
}

/// Seconds without a write after which a reply still marked `streaming` is taken for
/// abandoned (its generating request died): followers end with `stream_interrupted`.
pub const STALE_AFTER_SECS: f64 = 120.0;

/// What a follower sees of a reply, from a byte offset on.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub conversation_id: String,
    pub status: StreamStatus,
    /// The reply's length in bytes so far.
    pub length: usize,
    /// The text from the requested offset to `length`.
    pub text: String,
    /// Where each persisted batch ended (byte offsets, ascending); empty for a reply
    /// that was never streamed.
    pub marks: Vec<usize>,
    /// The closing event's JSON once finished (`None` for replies that were never
    /// streamed: the caller builds it from the message).
    pub final_data: Option<String>,
    /// Seconds since the generating request last wrote.
    pub idle_secs: f64,
    /// The offset falls inside a character: no event of this reply ends there.
    pub mid_character: bool,
}

/// Registers a reply about to be streamed (its message row exists, empty).
pub fn begin(db: &dyn Db, message_id: &str, user_id: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO chat_reply_streams (message_id, user_id, updated_at) VALUES (?1, ?2, ?3)",
        &[message_id.into(), user_id.into(), now.into()],
    )
}

/// Appends a batch of generated text ending at byte `end` of the reply; one
/// statement, which also answers whether the user asked to stop.
pub fn append(
    db: &dyn Db,
    message_id: &str,
    text: &str,
    end: usize,
    now: &str,
) -> Result<bool, DbError> {
    let rows = db.query(
        "UPDATE chat_reply_streams SET content = content || ?2, marks = marks || ',' || ?3, updated_at = ?4
         WHERE message_id = ?1 RETURNING cancel_requested",
        &[message_id.into(), text.into(), (end as i64).into(), now.into()],
    )?;
    match rows.first() {
        Some(r) => Ok(r.int(0)? != 0),
        None => Ok(false),
    }
}

/// Marks the reply finished; its text now lives in the message row only.
pub fn finish(
    db: &dyn Db,
    message_id: &str,
    status: StreamStatus,
    final_data: &str,
    now: &str,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE chat_reply_streams SET status = ?2, final_data = ?3, content = '', updated_at = ?4
         WHERE message_id = ?1",
        &[
            message_id.into(),
            status.as_str().into(),
            final_data.into(),
            now.into(),
        ],
    )
}

/// The caller's reply `message_id` from byte `from` on; `None` when the caller has no
/// such reply. One statement. A reply that was never streamed reads as finished.
pub fn read(
    db: &dyn Db,
    message_id: &str,
    user_id: &str,
    from: usize,
) -> Result<Option<Progress>, DbError> {
    // `b` is the text as bytes: the stream row's while streaming, else the message's.
    let rows = db.query(
        "WITH r AS (
             SELECT m.conversation_id AS conv, COALESCE(s.status, 'done') AS status,
                    s.final_data AS final_data, s.marks AS marks,
                    CAST(CASE WHEN s.status = 'streaming' THEN s.content ELSE m.message_content END AS BLOB) AS b,
                    COALESCE((julianday('now') - julianday(s.updated_at)) * 86400.0, 0.0) AS idle
             FROM chat_messages m LEFT JOIN chat_reply_streams s ON s.message_id = m.id
             WHERE m.id = ?1 AND m.user_id = ?2 AND m.sender = 'llm')
         SELECT conv, status, final_data, length(b),
                CASE WHEN hex(substr(b, ?3 + 1, 1)) BETWEEN '80' AND 'BF' THEN NULL
                     ELSE CAST(substr(b, ?3 + 1) AS TEXT) END,
                idle, hex(substr(b, ?3 + 1, 1)) BETWEEN '80' AND 'BF', marks
         FROM r",
        &[message_id.into(), user_id.into(), (from as i64).into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Progress {
        conversation_id: r.text(0)?,
        status: StreamStatus::parse(&r.text(1)?)?,
        final_data: r.opt_text(2)?,
        length: r.int(3)? as usize,
        text: r.opt_text(4)?.unwrap_or_default(),
        idle_secs: r.real(5)?,
        mid_character: r.int(6)? != 0,
        marks: r
            .opt_text(7)?
            .unwrap_or_default()
            .split(',')
            .filter_map(|m| m.parse().ok())
            .collect(),
    }))
}

/// What a stop request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The generating request will stop at its next batch.
    Requested,
    /// The reply exists but is no longer being generated.
    NotGenerating,
    /// The caller has no such reply.
    NotFound,
}

/// Asks the request generating the caller's reply `message_id` to stop.
pub fn request_cancel(
    db: &dyn Db,
    message_id: &str,
    user_id: &str,
    now: &str,
) -> Result<CancelOutcome, DbError> {
    let rows = db.query(
        "UPDATE chat_reply_streams SET cancel_requested = 1, updated_at = ?3
         WHERE message_id = ?1 AND user_id = ?2 AND status = 'streaming' RETURNING 1",
        &[message_id.into(), user_id.into(), now.into()],
    )?;
    if rows.first().is_some() {
        return Ok(CancelOutcome::Requested);
    }
    let exists = db.query(
        "SELECT 1 FROM chat_messages WHERE id = ?1 AND user_id = ?2 AND sender = 'llm'",
        &[message_id.into(), user_id.into()],
    )?;
    Ok(if exists.first().is_none() {
        CancelOutcome::NotFound
    } else {
        CancelOutcome::NotGenerating
    })
}
