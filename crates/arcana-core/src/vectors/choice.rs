//! Which model embeds memories and messages in this deployment: the local
//! `all-minilm-l6-v2` (Spin's LLM interface, the default) or a provider's model an admin
//! chose, kept in `app_settings` under `embedding_model`.

use crate::db::{Db, DbError};

const KEY: &str = "embedding_model";

/// The chosen provider model's id; `None` for the local model.
pub fn chosen(db: &dyn Db) -> Result<Option<String>, DbError> {
    let rows = db.query(
        "SELECT value FROM app_settings WHERE key = ?1",
        &[KEY.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<Option<String>>(&row.text(0)?).unwrap_or(None))
}

/// Chooses a provider model (`Some(id)`) or the local one (`None`).
pub fn choose(db: &dyn Db, model_id: Option<&str>, now: &str) -> Result<(), DbError> {
    match model_id {
        None => db.execute("DELETE FROM app_settings WHERE key = ?1", &[KEY.into()]),
        Some(id) => db.execute(
            "INSERT INTO app_settings (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            &[
                KEY.into(),
                serde_json::Value::from(id).to_string().into(),
                now.into(),
            ],
        ),
    }
}
