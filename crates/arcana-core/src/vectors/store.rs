//! The `vectors` table (migration 0011): one vector per memory or message, with the
//! model that made it and its dimension. Rows go when their item goes (triggers).

use crate::db::{Db, DbError, Value};

use super::rank;

/// What a vector belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Message,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Message => "message",
        }
    }
}

/// How [`nearest`] ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// libSQL's approximate vector index ([`nearest_indexed`]).
    Index,
    /// In the database, over every vector of the caller (libSQL's `vector_distance_cos`).
    Database,
    /// In the component, over the caller's newest `scanned` vectors (plain SQLite, such
    /// as Spin's embedded database, has no vector functions).
    Scan { scanned: usize },
}

/// A vector as stored: little-endian `f32`s, libSQL's F32 vector format.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`encode`]; `None` for a length that is not a multiple of 4.
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes.len().is_multiple_of(4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// Stores (or replaces) an item's vector.
pub fn put(
    db: &dyn Db,
    kind: Kind,
    item_id: &str,
    user_id: &str,
    model: &str,
    vector: &[f32],
    now: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO vectors (item_kind, item_id, user_id, model, dim, vector, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (item_kind, item_id) DO UPDATE SET
           model = excluded.model, dim = excluded.dim, vector = excluded.vector,
           created_at = excluded.created_at",
        &[
            kind.as_str().into(),
            item_id.into(),
            user_id.into(),
            model.into(),
            (vector.len() as i64).into(),
            Value::Blob(encode(vector)),
            now.into(),
        ],
    )
}

/// The caller's newest `limit` vectors of `kind` made by `model`.
pub fn of_user(
    db: &dyn Db,
    user_id: &str,
    kind: Kind,
    model: &str,
    limit: usize,
) -> Result<Vec<(String, Vec<f32>)>, DbError> {
    let rows = db.query(
        "SELECT item_id, vector FROM vectors
         WHERE user_id = ?1 AND item_kind = ?2 AND model = ?3
         ORDER BY created_at DESC LIMIT ?4",
        &[
            user_id.into(),
            kind.as_str().into(),
            model.into(),
            (limit as i64).into(),
        ],
    )?;
    let mut out = Vec::with_capacity(rows.rows.len());
    for r in rows.iter() {
        let vector = decode(r.blob(1)?).ok_or_else(|| DbError::Decode("vector length".into()))?;
        out.push((r.text(0)?, vector));
    }
    Ok(out)
}

/// The caller's `limit` items of `kind` nearest to `query` (cosine similarity, best
/// first), among vectors of `model` only. In the database where it can rank vectors;
/// otherwise over the newest `scan_limit` vectors, here.
pub fn nearest(
    db: &dyn Db,
    user_id: &str,
    kind: Kind,
    model: &str,
    query: &[f32],
    limit: usize,
    scan_limit: usize,
) -> Result<(Vec<(String, f32)>, Method), DbError> {
    let ranked = db.query(
        "SELECT item_id, 1.0 - vector_distance_cos(vector, ?4) AS similarity FROM vectors
         WHERE user_id = ?1 AND item_kind = ?2 AND model = ?3 AND dim = ?5
         ORDER BY similarity DESC LIMIT ?6",
        &[
            user_id.into(),
            kind.as_str().into(),
            model.into(),
            Value::Blob(encode(query)),
            (query.len() as i64).into(),
            (limit as i64).into(),
        ],
    );
    match ranked {
        Ok(rows) => {
            let mut out = Vec::with_capacity(rows.rows.len());
            for r in rows.iter() {
                out.push((r.text(0)?, r.real(1)? as f32));
            }
            Ok((out, Method::Database))
        }
        Err(DbError::Other(e)) if e.contains("no such function") => {
            let items = of_user(db, user_id, kind, model, scan_limit)?;
            let scanned = items.len();
            let best = rank::nearest(
                query,
                items.iter().map(|(id, v)| (id.as_str(), v.as_slice())),
                limit,
            );
            Ok((best, Method::Scan { scanned }))
        }
        Err(e) => Err(e),
    }
}

/// The vector space the libSQL index covers (migrations/libsql/1001_message_vector_index.sql).
pub const INDEXED_MODEL: &str = crate::api::embedding_model::LOCAL_VECTORS;

/// The caller's `limit` messages nearest to `query` through libSQL's vector index
/// (DiskANN, approximate): the `candidates` nearest of everyone's, then the caller's
/// among them. `None` when there is no index (plain SQLite, another model), or when
/// the candidates held fewer than `limit` of the caller's while more vectors remain
/// (a user with few messages among many users'): then [`nearest`] ranks exactly.
pub fn nearest_indexed(
    db: &dyn Db,
    user_id: &str,
    model: &str,
    query: &[f32],
    limit: usize,
    candidates: usize,
) -> Result<Option<Vec<(String, f32)>>, DbError> {
    if model != INDEXED_MODEL || query.len() != 384 {
        return Ok(None);
    }
    let ranked = db.query(
        "SELECT i.message_id, i.user_id, 1.0 - vector_distance_cos(i.vector, ?1) AS similarity
         FROM vector_top_k('message_vector_index_ann', ?1, ?2) AS t
         JOIN message_vector_index i ON i.rowid = t.id",
        &[Value::Blob(encode(query)), (candidates as i64).into()],
    );
    let rows = match ranked {
        Ok(rows) => rows,
        Err(DbError::Other(e)) if e.contains("no such") => return Ok(None),
        Err(e) => return Err(e),
    };
    let exhausted = rows.rows.len() < candidates;
    let mut own = Vec::new();
    for r in rows.iter() {
        if r.text(1)? == user_id {
            own.push((r.text(0)?, r.real(2)? as f32));
        }
    }
    if own.len() < limit && !exhausted {
        return Ok(None);
    }
    own.sort_by(|a, b| b.1.total_cmp(&a.1));
    own.truncate(limit);
    Ok(Some(own))
}

/// How many of a caller's newest messages the backfill looks through per request: its
/// cost stays bounded however many messages there are (older ones without a vector,
/// from a large import, are found by keyword only; see README).
pub const BACKFILL_WINDOW: i64 = 2_000;

/// Up to `limit` of the caller's newest [`BACKFILL_WINDOW`] messages without a vector of
/// `model`, newest first: `(id, text)`.
pub fn messages_without(
    db: &dyn Db,
    user_id: &str,
    model: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, DbError> {
    let rows = db.query(
        "SELECT m.id, m.message_content FROM (
             SELECT id, message_content, timestamp FROM chat_messages
             WHERE user_id = ?1 ORDER BY timestamp DESC LIMIT ?4) m
         LEFT JOIN vectors v ON v.item_kind = 'message' AND v.item_id = m.id AND v.model = ?2
         WHERE v.item_id IS NULL AND m.message_content <> ''
         ORDER BY m.timestamp DESC LIMIT ?3",
        &[
            user_id.into(),
            model.into(),
            (limit as i64).into(),
            BACKFILL_WINDOW.into(),
        ],
    )?;
    rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
}

/// What a memory's vector is made from: its key (words split) and its value.
pub fn memory_text(key: &str, value_json: &str) -> String {
    let key = key.replace(['_', '.', ':', '-'], " ");
    let value = match serde_json::from_str::<serde_json::Value>(value_json) {
        Ok(serde_json::Value::String(s)) => s,
        _ => value_json.to_string(),
    };
    format!("{key}: {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_their_stored_form() {
        let v = vec![0.25f32, -1.5, 3.0e-7];
        assert_eq!(encode(&v).len(), 12);
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        assert!(decode(&[1, 2, 3]).is_none());
    }

    #[test]
    fn memory_texts_read_like_sentences() {
        assert_eq!(memory_text("pet_name", "\"Miso\""), "pet name: Miso");
        assert_eq!(
            memory_text("diet", "{\"vegan\":true}"),
            "diet: {\"vegan\":true}"
        );
    }
}
