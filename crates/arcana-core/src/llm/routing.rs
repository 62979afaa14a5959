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
//! (unless `fallback_to_default` is off, for the deployment or the rule) the caller's
//! and the system's default models, without repeats and without models the caller may
//! not use.
//!
//! When the request says how much of the context window it must fill (system prompt,
//! kept memories, the newest message) and the chosen model's window minus its reply
//! budget is too small, the first model of the chain whose window fits is chosen
//! instead (the decision says so in `context`), models that cannot fit leave the chain,
//! and when none fits the call is refused with 422 `context_too_long` before any
//! provider is called.

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
    /// Whether the defaults follow this rule's fallbacks; `null`: the deployment's
    /// `fallback_to_default` setting decides.
    pub fallback_to_default: Option<bool>,
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
        fallback_to_default: r.opt_int(9)?.map(|b| b != 0),
    })
}

/// A rule's columns, its options joined in (one statement).
const RULE_SELECT: &str =
    "SELECT r.id, r.name, r.priority, r.enabled, r.conditions, r.target_model_id,
        r.fallback_model_ids, r.created_at, r.updated_at, o.fallback_to_default
     FROM llm_routing_rules r LEFT JOIN llm_routing_rule_options o ON o.rule_id = r.id";

/// Every rule in evaluation order.
pub fn list_rules(db: &dyn Db) -> Result<Vec<Rule>, DbError> {
    let rows = db.query(
        &format!("{RULE_SELECT} ORDER BY r.priority, r.created_at, r.id"),
        &[],
    )?;
    rows.iter().map(rule_from_row).collect()
}

/// One rule.
pub fn get_rule(db: &dyn Db, id: &str) -> Result<Option<Rule>, DbError> {
    let rows = db.query(&format!("{RULE_SELECT} WHERE r.id = ?1"), &[id.into()])?;
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
    )?;
    match rule.fallback_to_default {
        Some(on) => db.execute(
            "INSERT INTO llm_routing_rule_options (rule_id, fallback_to_default) VALUES (?1, ?2)
             ON CONFLICT (rule_id) DO UPDATE SET fallback_to_default = excluded.fallback_to_default",
            &[rule.id.clone().into(), on.into()],
        ),
        None => db.execute(
            "DELETE FROM llm_routing_rule_options WHERE rule_id = ?1",
            &[rule.id.clone().into()],
        ),
    }
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
    /// What must fit the context window, when the caller knows.
    pub context: Option<ContextNeed>,
    /// The deployment's `fallback_to_default` setting (a rule may override it).
    pub fallback_to_default: bool,
}

/// How much of a context window a request needs.
#[derive(Debug, Clone, Copy)]
pub struct ContextNeed {
    /// Tokens of what cannot be left out (estimated).
    pub required_tokens: i64,
    /// The reply budget asked for; each model caps it at its own `max_tokens`.
    pub reply_tokens: Option<i64>,
}

impl ContextNeed {
    /// The reply budget on `model`.
    pub fn reply_on(&self, model: &Model) -> i64 {
        self.reply_tokens
            .unwrap_or(model.max_tokens)
            .min(model.max_tokens)
    }

    /// Whether the request fits `model`'s window with its reply budget.
    pub fn fits(&self, model: &Model) -> bool {
        self.required_tokens + self.reply_on(model) <= model.context_window
    }
}

/// How the context need was met.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContextFit {
    /// Estimated tokens of what must be sent (system prompt, kept memories, the newest message).
    pub required_tokens: i64,
    /// The chosen model's reply budget.
    pub reply_tokens: i64,
    /// The chosen model's window.
    pub context_window: i64,
    /// The model routing chose first, when it was passed over because its window was too small.
    pub moved_from: Option<String>,
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
    /// Whether the default models were allowed in the fallback chain.
    pub fallback_to_default: bool,
    /// Every rule considered, in order.
    pub rules: Vec<RuleVerdict>,
    /// The estimated prompt size used for token conditions.
    pub prompt_tokens: i64,
    /// How the context window need was met, when the request stated one.
    pub context: Option<ContextFit>,
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
    let with_defaults = rule
        .and_then(|r| r.fallback_to_default)
        .unwrap_or(req.fallback_to_default);
    let rule_fallbacks = rule
        .map(|r| r.fallback_model_ids.clone())
        .unwrap_or_default();
    let defaults = [user_default, system_default]
        .into_iter()
        .flatten()
        .filter(|_| with_defaults);
    let mut chain: Vec<Model> = vec![model];
    for m in rule_fallbacks
        .iter()
        .filter_map(|id| find(id))
        .chain(defaults)
    {
        if !chain.iter().any(|f| f.id == m.id) {
            chain.push(m);
        }
    }
    let context = match req.context {
        None => None,
        Some(need) => {
            let first = chain[0].model_name.clone();
            chain.retain(|m| need.fits(m));
            let Some(chosen) = chain.first() else {
                return Err(ApiError::new(
                    422,
                    "context_too_long",
                    format!(
                        "The prompt needs about {} tokens plus its reply budget, more than the context window of {first} or of any model it may fall back to.",
                        need.required_tokens
                    ),
                ));
            };
            Some(ContextFit {
                required_tokens: need.required_tokens,
                reply_tokens: need.reply_on(chosen),
                context_window: chosen.context_window,
                moved_from: (chosen.model_name != first).then_some(first),
            })
        }
    };
    let model = chain.remove(0);
    Ok(Decision {
        model,
        source,
        rule_id: rule.map(|r| r.id.clone()),
        rule_name: rule.map(|r| r.name.clone()),
        fallbacks: chain,
        fallback_to_default: with_defaults,
        rules: verdicts,
        prompt_tokens: req.prompt_tokens,
        context,
    })
}
