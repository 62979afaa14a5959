//! Routing: which model serves a request, and why.
//!
//! Selection order, first that applies wins:
//! 1. a model named in the request, if the caller may use it (otherwise 403);
//! 2. the first enabled rule, by ascending `priority`, whose conditions all hold and
//!    whose target the caller may use;
//! 3. the caller's default model from their preferences;
//! 4. the system default model.
//!
//! A rule's conditions (all optional, all must hold): `roles` (the caller's role is
//! listed), `min_prompt_tokens` / `max_prompt_tokens` (estimated prompt size), `pattern`
//! (a regular expression found in the message) and `tags` (the request asked for one
//! of them, e.g. `code` or `cheap`). The fallback chain is the rule's `fallbacks`, then
//! the other candidates of lower precedence, without repeats and without models the
//! caller may not use.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::db::{Db, DbError, Row};
use crate::error::ApiError;
use crate::llm::catalog::Model;
use crate::validate::Validator;

/// Conditions of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<i64>,
    /// A regular expression (Rust syntax; `(?i)` for case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Largest compiled pattern accepted (keeps hostile patterns cheap).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

impl Conditions {
    /// Records invalid fields.
    pub fn validate(&self, v: &mut Validator) {
        if let (Some(a), Some(b)) = (self.min_prompt_tokens, self.max_prompt_tokens) {
            v.check(
                a <= b,
                "conditions.min_prompt_tokens",
                "must not exceed max_prompt_tokens",
            );
        }
        for n in [self.min_prompt_tokens, self.max_prompt_tokens]
            .into_iter()
            .flatten()
        {
            v.check(n >= 0, "conditions", "token bounds must not be negative");
        }
        if let Some(p) = &self.pattern {
            v.check(
                p.len() <= 1000 && compile(p).is_ok(),
                "conditions.pattern",
                "must be a valid regular expression of at most 1000 characters",
            );
        }
        for r in &self.roles {
            v.check(
                r == "admin" || r == "user",
                "conditions.roles",
                "roles are admin and user",
            );
        }
    }

    /// Why the conditions do not hold for a request, or `None` when they all do.
    pub fn mismatch(&self, req: &RouteRequest<'_>, role: &str) -> Option<String> {
        if !self.roles.is_empty() && !self.roles.iter().any(|r| r == role) {
            return Some(format!("role {role} is not in {:?}", self.roles));
        }
        if let Some(min) = self.min_prompt_tokens.filter(|m| req.prompt_tokens < *m) {
            return Some(format!(
                "prompt has ~{} tokens, fewer than {min}",
                req.prompt_tokens
            ));
        }
        if let Some(max) = self.max_prompt_tokens.filter(|m| req.prompt_tokens > *m) {
            return Some(format!(
                "prompt has ~{} tokens, more than {max}",
                req.prompt_tokens
            ));
        }
        if let Some(p) = &self.pattern {
            match compile(p) {
                Ok(re) if re.is_match(req.message) => {}
                Ok(_) => return Some(format!("message does not match /{p}/")),
                Err(_) => return Some("pattern is invalid".into()),
            }
        }
        if !self.tags.is_empty() && !self.tags.iter().any(|t| req.tags.contains(t)) {
            return Some(format!(
                "request tags {:?} do not include any of {:?}",
                req.tags, self.tags
            ));
        }
        None
    }
}

/// A stored rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub priority: i64,
    pub enabled: bool,
    pub conditions: Conditions,
    pub target_model_id: String,
    pub fallback_model_ids: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn rule_from_row(r: Row<'_>) -> Result<Rule, DbError> {
    let decode = |e: serde_json::Error| DbError::Decode(e.to_string());
    Ok(Rule {
        id: r.text(0)?,
        name: r.text(1)?,
        priority: r.int(2)?,
        enabled: r.bool(3)?,
        conditions: serde_json::from_str(&r.text(4)?).map_err(decode)?,
        target_model_id: r.text(5)?,
        fallback_model_ids: serde_json::from_str(&r.text(6)?).map_err(decode)?,
        created_at: r.text(7)?,
        updated_at: r.text(8)?,
    })
}

const RULE_COLUMNS: &str = "id, name, priority, enabled, conditions, target_model_id, fallback_model_ids, created_at, updated_at";

/// Every rule in evaluation order.
pub fn list_rules(db: &dyn Db) -> Result<Vec<Rule>, DbError> {
    let rows = db.query(
        &format!("SELECT {RULE_COLUMNS} FROM llm_routing_rules ORDER BY priority, created_at, id"),
        &[],
    )?;
    rows.iter().map(rule_from_row).collect()
}

/// One rule.
pub fn get_rule(db: &dyn Db, id: &str) -> Result<Option<Rule>, DbError> {
    let rows = db.query(
        &format!("SELECT {RULE_COLUMNS} FROM llm_routing_rules WHERE id = ?1"),
        &[id.into()],
    )?;
    rows.first().map(rule_from_row).transpose()
}

/// Inserts or replaces a rule.
pub fn upsert_rule(db: &dyn Db, rule: &Rule) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO llm_routing_rules (id, name, priority, enabled, conditions, target_model_id, fallback_model_ids, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, priority = excluded.priority, enabled = excluded.enabled,
             conditions = excluded.conditions, target_model_id = excluded.target_model_id,
             fallback_model_ids = excluded.fallback_model_ids, updated_at = excluded.updated_at",
        &[
            rule.id.clone().into(),
            rule.name.clone().into(),
            rule.priority.into(),
            rule.enabled.into(),
            serde_json::to_string(&rule.conditions).expect("conditions serialize").into(),
            rule.target_model_id.clone().into(),
            serde_json::to_string(&rule.fallback_model_ids).expect("ids serialize").into(),
            rule.created_at.clone().into(),
            rule.updated_at.clone().into(),
        ],
    )
}

/// Deletes a rule.
pub fn delete_rule(db: &dyn Db, id: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM llm_routing_rules WHERE id = ?1", &[id.into()])
}

/// What routing looks at.
#[derive(Debug, Clone)]
pub struct RouteRequest<'a> {
    pub message: &'a str,
    pub prompt_tokens: i64,
    pub tags: &'a [String],
    pub requested_model: Option<&'a str>,
}

/// One rule's verdict, for the explanation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleVerdict {
    pub rule_id: String,
    pub rule_name: String,
    pub matched: bool,
    /// Why it did not apply, when it did not.
    pub reason: Option<String>,
}

/// The choice and its explanation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Decision {
    /// The model to call first.
    pub model: Model,
    /// `requested`, `rule`, `user_default` or `system_default`.
    pub source: String,
    /// The rule that chose it, when `source` is `rule`.
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    /// Models to try next if this one fails before any output, in order.
    pub fallbacks: Vec<Model>,
    /// Every rule considered, in order.
    pub rules: Vec<RuleVerdict>,
    /// The estimated prompt size used for token conditions.
    pub prompt_tokens: i64,
}

/// Chooses a model; `usable` is what the caller may use.
pub fn decide(
    usable: &[Model],
    rules: &[Rule],
    user_default: Option<&str>,
    caller: &AuthUser,
    req: &RouteRequest<'_>,
) -> Result<Decision, ApiError> {
    let find = |id: &str| {
        usable
            .iter()
            .find(|m| m.id == id || m.model_name == id)
            .cloned()
    };
    let mut verdicts = Vec::new();
    let mut chosen: Option<(Model, String, Option<&Rule>)> = None;

    if let Some(name) = req.requested_model {
        let model = find(name).ok_or_else(|| {
            ApiError::forbidden(
                "model_not_allowed",
                format!("Model {name:?} does not exist or is not available to you."),
            )
        })?;
        chosen = Some((model, "requested".into(), None));
    }
    let role = caller.user.role.as_str();
    for rule in rules {
        let reason = if !rule.enabled {
            Some("disabled".to_string())
        } else if chosen.is_some() {
            Some("a model was already chosen".to_string())
        } else if let Some(why) = rule.conditions.mismatch(req, role) {
            Some(why)
        } else if find(&rule.target_model_id).is_none() {
            Some("its target model is not available to this user".to_string())
        } else {
            None
        };
        if reason.is_none() {
            let model = find(&rule.target_model_id).expect("checked above");
            chosen = Some((model, "rule".into(), Some(rule)));
        }
        verdicts.push(RuleVerdict {
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            matched: reason.is_none(),
            reason,
        });
    }
    let user_default = user_default.and_then(find);
    let system_default = usable.iter().find(|m| m.is_default).cloned();
    if chosen.is_none() {
        chosen = user_default
            .clone()
            .map(|m| (m, "user_default".to_string(), None))
            .or_else(|| {
                system_default
                    .clone()
                    .map(|m| (m, "system_default".to_string(), None))
            });
    }
    let Some((model, source, rule)) = chosen else {
        return Err(ApiError::new(
            409,
            "no_model_available",
            "No model is available: ask an administrator to add one or set a default.",
        ));
    };
    let mut fallbacks: Vec<Model> = Vec::new();
    let rule_fallbacks = rule
        .map(|r| r.fallback_model_ids.clone())
        .unwrap_or_default();
    let candidates = rule_fallbacks
        .iter()
        .filter_map(|id| find(id))
        .chain(user_default)
        .chain(system_default);
    for m in candidates {
        if m.id != model.id && !fallbacks.iter().any(|f| f.id == m.id) {
            fallbacks.push(m);
        }
    }
    Ok(Decision {
        model,
        source,
        rule_id: rule.map(|r| r.id.clone()),
        rule_name: rule.map(|r| r.name.clone()),
        fallbacks,
        rules: verdicts,
        prompt_tokens: req.prompt_tokens,
    })
}
