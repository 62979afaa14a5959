//! Context memory: per-user facts (key → JSON value) injected into chat prompts.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{Db, DbError, Row};
use crate::pagination::{Cursor, Page, PageRequest};

/// One memory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Memory {
    pub id: String,
    pub key: String,
    /// Any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub value: serde_json::Value,
    /// Injected into every chat, whatever the message (otherwise by relevance).
    pub pinned: bool,
    pub last_accessed: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /api/arcana/context-memory`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryInput {
    /// 1 to 128 characters: letters, digits, `_ . : -`.
    pub key: String,
    /// Any JSON, at most 16 KiB serialized.
    /// Any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub value: serde_json::Value,
    /// Inject it into every chat (default: unchanged, `false` for a new memory).
    #[serde(default)]
    pub pinned: Option<bool>,
}

/// Largest serialized value.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Whether a key is well-formed.
pub fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn from_row(r: Row<'_>) -> Result<Memory, DbError> {
    Ok(Memory {
        id: r.text(0)?,
        key: r.text(1)?,
        value: serde_json::from_str(&r.text(2)?).map_err(|e| DbError::Decode(e.to_string()))?,
        last_accessed: r.text(3)?,
        created_at: r.text(4)?,
        updated_at: r.text(5)?,
        pinned: r.bool(6)?,
    })
}

const COLUMNS: &str = "id, key, value, last_accessed, created_at, updated_at, \
     EXISTS (SELECT 1 FROM context_memory_pins p WHERE p.memory_id = context_memory.id)";

/// [`COLUMNS`] for a query that joins other tables.
const QUALIFIED_COLUMNS: &str = "m.id, m.key, m.value, m.last_accessed, m.created_at, \
     m.updated_at, EXISTS (SELECT 1 FROM context_memory_pins p WHERE p.memory_id = m.id)";

/// Creates or replaces a memory; returns it and whether it was new. One statement: the
/// row keeps its id when replaced, so a returned id equal to the new one means created.
pub fn upsert(
    db: &dyn Db,
    user_id: &str,
    input: &MemoryInput,
    now: &str,
) -> Result<(Memory, bool), DbError> {
    let id = uuid::Uuid::new_v4().to_string();
    let rows = db.query(
        &format!(
            "INSERT INTO context_memory (id, user_id, key, value, last_accessed, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)
             ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        ),
        &[
            id.clone().into(),
            user_id.into(),
            input.key.clone().into(),
            input.value.to_string().into(),
            now.into(),
        ],
    )?;
    let mut memory = rows
        .first()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| DbError::Other("memory vanished".into()))?;
    let created = memory.id == id;
    if let Some(pinned) = input.pinned {
        set_pinned(db, &memory.id, pinned)?;
        memory.pinned = pinned;
    }
    Ok((memory, created))
}

/// Pins or unpins a memory.
fn set_pinned(db: &dyn Db, memory_id: &str, pinned: bool) -> Result<(), DbError> {
    let sql = if pinned {
        "INSERT INTO context_memory_pins (memory_id) VALUES (?1) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM context_memory_pins WHERE memory_id = ?1"
    };
    db.execute(sql, &[memory_id.into()])
}

/// A memory with its vector of one model, when it has one.
pub type WithVector = (Memory, Option<Vec<f32>>);

/// Every memory of the caller (key order, at most 1,000) with its vector of `model` when
/// it has one: in one statement, all that choosing memories by relevance needs.
pub fn all_with_vectors(
    db: &dyn Db,
    user_id: &str,
    model: &str,
) -> Result<Vec<WithVector>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {QUALIFIED_COLUMNS}, v.vector FROM context_memory m
             LEFT JOIN vectors v ON v.item_kind = 'memory' AND v.item_id = m.id AND v.model = ?2
             WHERE m.user_id = ?1 ORDER BY m.key LIMIT 1000"
        ),
        &[user_id.into(), model.into()],
    )?;
    rows.iter()
        .map(|r| {
            let vector = match r.opt_blob(7)? {
                Some(b) => Some(
                    crate::vectors::store::decode(b)
                        .ok_or_else(|| DbError::Decode("vector length".into()))?,
                ),
                None => None,
            };
            Ok((from_row(r)?, vector))
        })
        .collect()
}

/// Marks memories as read now, in one statement however many there are.
pub fn touch(db: &dyn Db, user_id: &str, keys: &[String], now: &str) -> Result<(), DbError> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys = serde_json::to_string(keys).map_err(|e| DbError::Decode(e.to_string()))?;
    db.execute(
        "UPDATE context_memory SET last_accessed = ?3
         WHERE user_id = ?1 AND key IN (SELECT value FROM json_each(?2))",
        &[user_id.into(), keys.into(), now.into()],
    )
}

/// Reads one memory and marks it read, in one statement.
pub fn read(db: &dyn Db, user_id: &str, key: &str, now: &str) -> Result<Option<Memory>, DbError> {
    let rows = db.query(
        &format!(
            "UPDATE context_memory SET last_accessed = ?3 WHERE user_id = ?1 AND key = ?2 RETURNING {COLUMNS}"
        ),
        &[user_id.into(), key.into(), now.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// Memories in key order, one page at a time.
pub fn list(db: &dyn Db, user_id: &str, page: &PageRequest) -> Result<Page<Memory>, DbError> {
    let after = page
        .after
        .as_ref()
        .map(|c| c.key.clone())
        .unwrap_or_default();
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM context_memory WHERE user_id = ?1 AND key > ?2 ORDER BY key LIMIT ?3"),
        &[user_id.into(), after.into(), (page.limit + 1).into()],
    )?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(items, page.limit, |m| Cursor {
        key: m.key.clone(),
        id: m.id.clone(),
    }))
}

/// All memories in key order (prompt building; bounded by the caller's budget).
pub fn all(db: &dyn Db, user_id: &str) -> Result<Vec<Memory>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM context_memory WHERE user_id = ?1 ORDER BY key LIMIT 1000"),
        &[user_id.into()],
    )?;
    rows.iter().map(from_row).collect()
}

/// Deletes a memory; `false` when there was none.
pub fn delete(db: &dyn Db, user_id: &str, key: &str) -> Result<bool, DbError> {
    let rows = db.query(
        "DELETE FROM context_memory WHERE user_id = ?1 AND key = ?2 RETURNING id",
        &[user_id.into(), key.into()],
    )?;
    Ok(!rows.rows.is_empty())
}
