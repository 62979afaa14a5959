//! Per-user LLM preferences.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{Db, DbError};
use crate::validate::Validator;

/// A user's defaults; `null` fields mean "the model's or provider's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default)]
    pub default_model_id: Option<String>,
    /// 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Greater than 0, at most 1.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// 1 to 1,000,000 (further capped by the model's own limit).
    #[serde(default)]
    pub max_tokens: Option<i64>,
    /// At most 20,000 characters.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

impl Preferences {
    /// Records every out-of-range field.
    pub fn validate(&self, v: &mut Validator) {
        if let Some(t) = self.temperature {
            v.check((0.0..=2.0).contains(&t), "temperature", "must be 0 to 2");
        }
        if let Some(p) = self.top_p {
            v.check(
                p > 0.0 && p <= 1.0,
                "top_p",
                "must be greater than 0 and at most 1",
            );
        }
        if let Some(m) = self.max_tokens {
            v.check(
                (1..=1_000_000).contains(&m),
                "max_tokens",
                "must be 1 to 1000000",
            );
        }
        if let Some(s) = &self.system_prompt {
            v.check(
                s.chars().count() <= 20_000,
                "system_prompt",
                "must be at most 20000 characters",
            );
        }
    }
}

/// A user's preferences (all `None` when never set).
pub fn get(db: &dyn Db, user_id: &str) -> Result<Preferences, DbError> {
    let rows = db.query(
        "SELECT default_model_id, temperature, top_p, max_tokens, system_prompt FROM user_llm_preferences WHERE user_id = ?1",
        &[user_id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(Preferences::default());
    };
    Ok(Preferences {
        default_model_id: r.opt_text(0)?,
        temperature: match &rows.rows[0][1] {
            crate::db::Value::Null => None,
            _ => Some(r.real(1)?),
        },
        top_p: match &rows.rows[0][2] {
            crate::db::Value::Null => None,
            _ => Some(r.real(2)?),
        },
        max_tokens: r.opt_int(3)?,
        system_prompt: r.opt_text(4)?,
    })
}

/// Replaces a user's preferences.
pub fn put(db: &dyn Db, user_id: &str, p: &Preferences, now: &str) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO user_llm_preferences (user_id, default_model_id, temperature, top_p, max_tokens, system_prompt, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (user_id) DO UPDATE SET default_model_id = excluded.default_model_id,
             temperature = excluded.temperature, top_p = excluded.top_p, max_tokens = excluded.max_tokens,
             system_prompt = excluded.system_prompt, updated_at = excluded.updated_at",
        &[
            user_id.into(),
            p.default_model_id.clone().into(),
            p.temperature.into(),
            p.top_p.into(),
            p.max_tokens.into(),
            p.system_prompt.clone().into(),
            now.into(),
        ],
    )
}
