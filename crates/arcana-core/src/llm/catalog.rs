//! Providers, models and model allowlists.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::crypto::Sealed;
use crate::db::{Db, DbError, Row, Value};

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions: OpenAI, Azure OpenAI, Groq, vLLM, Ollama, llama.cpp, ...
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    fn parse(s: &str) -> Result<ProviderKind, DbError> {
        match s {
            "openai" => Ok(ProviderKind::Openai),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(DbError::Decode(format!("provider kind {other:?}"))),
        }
    }
}

/// A provider as admins see it. The key itself is never part of this type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub enabled: bool,
    pub timeout_secs: i64,
    pub max_retries: i64,
    /// Whether an API key is stored.
    pub has_api_key: bool,
    /// Last four characters of the key, e.g. `…f123`.
    pub api_key_hint: Option<String>,
    /// Which master key sealed it.
    pub api_key_kid: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A provider as any user sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicProvider {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
}

const PROVIDER_COLUMNS: &str = "id, name, kind, base_url, enabled, timeout_secs, max_retries, api_key_sealed IS NOT NULL, api_key_hint, api_key_kid, created_at, updated_at";

fn provider_from_row(r: Row<'_>) -> Result<Provider, DbError> {
    Ok(Provider {
        id: r.text(0)?,
        name: r.text(1)?,
        kind: ProviderKind::parse(&r.text(2)?)?,
        base_url: r.text(3)?,
        enabled: r.bool(4)?,
        timeout_secs: r.int(5)?,
        max_retries: r.int(6)?,
        has_api_key: r.bool(7)?,
        api_key_hint: r.opt_text(8)?,
        api_key_kid: r.opt_text(9)?,
        created_at: r.text(10)?,
        updated_at: r.text(11)?,
    })
}

/// All providers, by name.
pub fn list_providers(db: &dyn Db) -> Result<Vec<Provider>, DbError> {
    let rows = db.query(
        &format!("SELECT {PROVIDER_COLUMNS} FROM llm_providers ORDER BY name"),
        &[],
    )?;
    rows.iter().map(provider_from_row).collect()
}

/// One provider.
pub fn get_provider(db: &dyn Db, id: &str) -> Result<Option<Provider>, DbError> {
    let rows = db.query(
        &format!("SELECT {PROVIDER_COLUMNS} FROM llm_providers WHERE id = ?1"),
        &[id.into()],
    )?;
    rows.first().map(provider_from_row).transpose()
}

/// A provider and its sealed API key (if any), in one statement: what a call needs.
pub fn get_provider_with_key(
    db: &dyn Db,
    id: &str,
) -> Result<Option<(Provider, Option<Sealed>)>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {PROVIDER_COLUMNS}, api_key_kid, api_key_nonce, api_key_sealed FROM llm_providers WHERE id = ?1"
        ),
        &[id.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let n = PROVIDER_COLUMNS.split(',').count();
    let sealed = match (row.opt_text(n)?, &rows.rows[0][n + 1], &rows.rows[0][n + 2]) {
        (Some(kid), Value::Blob(nonce), Value::Blob(ciphertext)) => Some(Sealed {
            kid,
            nonce: nonce.clone(),
            ciphertext: ciphertext.clone(),
        }),
        _ => None,
    };
    Ok(Some((provider_from_row(row)?, sealed)))
}

/// Fields of a provider row (the key is passed sealed).
pub struct ProviderFields<'a> {
    pub name: &'a str,
    pub kind: ProviderKind,
    pub base_url: &'a str,
    pub enabled: bool,
    pub timeout_secs: i64,
    pub max_retries: i64,
}

/// Inserts a provider.
pub fn insert_provider(
    db: &dyn Db,
    id: &str,
    f: &ProviderFields<'_>,
    now: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO llm_providers (id, name, kind, base_url, enabled, timeout_secs, max_retries, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        &[
            id.into(),
            f.name.into(),
            f.kind.as_str().into(),
            f.base_url.into(),
            f.enabled.into(),
            f.timeout_secs.into(),
            f.max_retries.into(),
            now.into(),
        ],
    )
}

/// Updates a provider's fields.
pub fn update_provider(
    db: &dyn Db,
    id: &str,
    f: &ProviderFields<'_>,
    now: &str,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE llm_providers SET name = ?2, kind = ?3, base_url = ?4, enabled = ?5, timeout_secs = ?6,
                max_retries = ?7, updated_at = ?8 WHERE id = ?1",
        &[
            id.into(),
            f.name.into(),
            f.kind.as_str().into(),
            f.base_url.into(),
            f.enabled.into(),
            f.timeout_secs.into(),
            f.max_retries.into(),
            now.into(),
        ],
    )
}

/// Stores a sealed key (or removes it with `None`).
pub fn set_provider_key(
    db: &dyn Db,
    id: &str,
    key: Option<(&Sealed, &str)>,
    now: &str,
) -> Result<(), DbError> {
    let (kid, nonce, sealed, hint): (Value, Value, Value, Value) = match key {
        Some((s, hint)) => (
            s.kid.clone().into(),
            Value::Blob(s.nonce.clone()),
            Value::Blob(s.ciphertext.clone()),
            hint.into(),
        ),
        None => (Value::Null, Value::Null, Value::Null, Value::Null),
    };
    db.execute(
        "UPDATE llm_providers SET api_key_kid = ?2, api_key_nonce = ?3, api_key_sealed = ?4, api_key_hint = ?5,
                updated_at = ?6 WHERE id = ?1",
        &[id.into(), kid, nonce, sealed, hint, now.into()],
    )
}

/// Every sealed key (for rotation).
pub fn sealed_keys(db: &dyn Db) -> Result<Vec<(String, Sealed)>, DbError> {
    let rows = db.query(
        "SELECT id, api_key_kid, api_key_nonce, api_key_sealed FROM llm_providers WHERE api_key_sealed IS NOT NULL",
        &[],
    )?;
    rows.rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[2], &r[3]) {
            (Value::Text(id), Value::Text(kid), Value::Blob(nonce), Value::Blob(ct)) => Ok((
                id.clone(),
                Sealed {
                    kid: kid.clone(),
                    nonce: nonce.clone(),
                    ciphertext: ct.clone(),
                },
            )),
            _ => Err(DbError::Decode("sealed key columns".into())),
        })
        .collect()
}

/// Number of models of a provider.
pub fn provider_model_count(db: &dyn Db, id: &str) -> Result<i64, DbError> {
    db.query(
        "SELECT count(*) FROM llm_models WHERE provider_id = ?1",
        &[id.into()],
    )?
    .first()
    .map(|r| r.int(0))
    .unwrap_or(Ok(0))
}

/// Deletes a provider (callers check it has no models first).
pub fn delete_provider(db: &dyn Db, id: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM llm_providers WHERE id = ?1", &[id.into()])
}

/// A model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Model {
    pub id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub model_name: String,
    pub display_name: String,
    pub max_tokens: i64,
    pub context_window: i64,
    pub input_cost_per_token: f64,
    pub output_cost_per_token: f64,
    pub enabled: bool,
    /// The system default model (at most one).
    pub is_default: bool,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

const MODEL_SELECT: &str = "SELECT m.id, m.provider_id, p.name, m.model_name, m.display_name, m.max_tokens, m.context_window,
        m.input_cost_per_token, m.output_cost_per_token, m.enabled, m.is_default, m.tags, m.created_at, m.updated_at
    FROM llm_models m JOIN llm_providers p ON p.id = m.provider_id";

fn model_from_row(r: Row<'_>) -> Result<Model, DbError> {
    Ok(Model {
        id: r.text(0)?,
        provider_id: r.text(1)?,
        provider_name: r.text(2)?,
        model_name: r.text(3)?,
        display_name: r.text(4)?,
        max_tokens: r.int(5)?,
        context_window: r.int(6)?,
        input_cost_per_token: r.real(7)?,
        output_cost_per_token: r.real(8)?,
        enabled: r.bool(9)?,
        is_default: r.bool(10)?,
        tags: serde_json::from_str(&r.text(11)?)
            .map_err(|e| DbError::Decode(format!("tags: {e}")))?,
        created_at: r.text(12)?,
        updated_at: r.text(13)?,
    })
}

/// Every model.
pub fn list_models(db: &dyn Db) -> Result<Vec<Model>, DbError> {
    let rows = db.query(
        &format!("{MODEL_SELECT} ORDER BY p.name, m.display_name"),
        &[],
    )?;
    rows.iter().map(model_from_row).collect()
}

/// One model.
pub fn get_model(db: &dyn Db, id: &str) -> Result<Option<Model>, DbError> {
    let rows = db.query(&format!("{MODEL_SELECT} WHERE m.id = ?1"), &[id.into()])?;
    rows.first().map(model_from_row).transpose()
}

/// The models `caller` may use: enabled, on an enabled provider, and either open to
/// all or listed for the caller's id or role.
pub fn usable_models(db: &dyn Db, caller: &AuthUser) -> Result<Vec<Model>, DbError> {
    let rows = db.query(
        &format!(
            "{MODEL_SELECT}
             WHERE m.enabled = 1 AND p.enabled = 1
               AND (NOT EXISTS (SELECT 1 FROM llm_model_access a WHERE a.model_id = m.id)
                    OR EXISTS (SELECT 1 FROM llm_model_access a WHERE a.model_id = m.id
                               AND ((a.subject_type = 'user' AND a.subject = ?1)
                                 OR (a.subject_type = 'role' AND a.subject = ?2))))
             ORDER BY p.name, m.display_name"
        ),
        &[caller.id().into(), caller.user.role.as_str().into()],
    )?;
    rows.iter().map(model_from_row).collect()
}

/// Fields of a model row.
pub struct ModelFields<'a> {
    pub provider_id: &'a str,
    pub model_name: &'a str,
    pub display_name: &'a str,
    pub max_tokens: i64,
    pub context_window: i64,
    pub input_cost_per_token: f64,
    pub output_cost_per_token: f64,
    pub enabled: bool,
    pub is_default: bool,
    pub tags: &'a [String],
}

fn model_params(id: &str, f: &ModelFields<'_>, now: &str) -> Vec<Value> {
    vec![
        id.into(),
        f.provider_id.into(),
        f.model_name.into(),
        f.display_name.into(),
        f.max_tokens.into(),
        f.context_window.into(),
        f.input_cost_per_token.into(),
        f.output_cost_per_token.into(),
        f.enabled.into(),
        f.is_default.into(),
        serde_json::to_string(f.tags)
            .expect("strings serialize")
            .into(),
        now.into(),
    ]
}

/// Inserts a model; when it is the default, clears the flag elsewhere (same transaction).
pub fn insert_model(db: &dyn Db, id: &str, f: &ModelFields<'_>, now: &str) -> Result<(), DbError> {
    if f.is_default {
        db.execute(
            "UPDATE llm_models SET is_default = 0 WHERE is_default = 1",
            &[],
        )?;
    }
    db.execute(
        "INSERT INTO llm_models (id, provider_id, model_name, display_name, max_tokens, context_window,
            input_cost_per_token, output_cost_per_token, enabled, is_default, tags, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
        &model_params(id, f, now),
    )
}

/// Updates a model; when it becomes the default, clears the flag elsewhere.
pub fn update_model(db: &dyn Db, id: &str, f: &ModelFields<'_>, now: &str) -> Result<(), DbError> {
    if f.is_default {
        db.execute(
            "UPDATE llm_models SET is_default = 0 WHERE is_default = 1 AND id <> ?1",
            &[id.into()],
        )?;
    }
    db.execute(
        "UPDATE llm_models SET provider_id = ?2, model_name = ?3, display_name = ?4, max_tokens = ?5,
            context_window = ?6, input_cost_per_token = ?7, output_cost_per_token = ?8, enabled = ?9,
            is_default = ?10, tags = ?11, updated_at = ?12 WHERE id = ?1",
        &model_params(id, f, now),
    )
}

/// Routing rules that name a model as target or fallback.
pub fn rules_using_model(db: &dyn Db, id: &str) -> Result<Vec<String>, DbError> {
    let rows = db.query(
        "SELECT name FROM llm_routing_rules
         WHERE target_model_id = ?1 OR EXISTS (SELECT 1 FROM json_each(fallback_model_ids) WHERE value = ?1)",
        &[id.into()],
    )?;
    rows.iter().map(|r| r.text(0)).collect()
}

/// Deletes a model (preferences pointing at it fall back to the system default).
pub fn delete_model(db: &dyn Db, id: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE user_llm_preferences SET default_model_id = NULL WHERE default_model_id = ?1",
        &[id.into()],
    )?;
    db.execute("DELETE FROM llm_models WHERE id = ?1", &[id.into()])
}

/// Who may use a model: user ids and roles. Both empty means everyone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelAccess {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A model's allowlist.
pub fn get_access(db: &dyn Db, model_id: &str) -> Result<Option<ModelAccess>, DbError> {
    // One statement: the model's existence and its allowlist (a model without one gives
    // a row of NULLs).
    let rows = db.query(
        "SELECT a.subject_type, a.subject FROM llm_models m
         LEFT JOIN llm_model_access a ON a.model_id = m.id
         WHERE m.id = ?1 ORDER BY a.subject_type, a.subject",
        &[model_id.into()],
    )?;
    if rows.rows.is_empty() {
        return Ok(None);
    }
    let mut access = ModelAccess::default();
    for r in rows.iter() {
        match r.opt_text(0)?.as_deref() {
            Some("user") => access.users.push(r.text(1)?),
            Some(_) => access.roles.push(r.text(1)?),
            None => {}
        }
    }
    Ok(Some(access))
}

/// Replaces a model's allowlist.
pub fn set_access(db: &dyn Db, model_id: &str, access: &ModelAccess) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM llm_model_access WHERE model_id = ?1",
        &[model_id.into()],
    )?;
    for (kind, subjects) in [("user", &access.users), ("role", &access.roles)] {
        for s in subjects {
            db.execute(
                "INSERT OR IGNORE INTO llm_model_access (model_id, subject_type, subject) VALUES (?1, ?2, ?3)",
                &[model_id.into(), kind.into(), s.into()],
            )?;
        }
    }
    Ok(())
}
