//! Personal access tokens: long-lived bearer secrets a person creates for scripts and
//! OpenAI-compatible clients, limited by scopes, optionally expiring, revoked at once.
//!
//! A secret is `arc_` followed by 32 random bytes (base64url). Only its SHA-256 is
//! stored: the secrets are random, so a fast hash cannot be reversed by guessing, and
//! checking one costs a lookup by hash instead of an argon2 run per request.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, Row};
use crate::error::ApiError;
use crate::users::User;

/// What every personal access token starts with, so that it is told from a session JWT
/// (and found by secret scanners).
pub const SECRET_PREFIX: &str = "arc_";

/// Most tokens one user may hold.
pub const MAX_PER_USER: i64 = 50;

/// What a token may be used for. Session tokens (from login) may do everything the
/// user may; a personal token only what its scopes name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every `GET`: profile, conversations, memory, models, usage, status.
    Read,
    /// Conversations and memory: `/api/chat...`, `/api/arcana/context-memory...`.
    Chat,
    /// Model calls and LLM settings: `/api/arcana/llm/...` and the gateway `/v1/...`.
    Llm,
    /// Admin endpoints (`/api/admin/...`, `/metrics`), for admins' tokens.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Chat, Scope::Llm, Scope::Admin];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Chat => "chat",
            Scope::Llm => "llm",
            Scope::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a request needs from a personal token, by method and route template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any one of these scopes.
    AnyOf(&'static [Scope]),
    /// A session (login) token: personal tokens cannot manage tokens or open shells.
    Session,
}

/// The scopes a route accepts. Reads of a capability are allowed with its own scope
/// too (a `chat` token may read its conversations).
pub fn need_for(method: &str, route: &str) -> Need {
    let read = matches!(method, "GET" | "HEAD");
    if route.starts_with("/api/auth/tokens") || route.starts_with("/api/arcana/terminal") {
        Need::Session
    } else if route.starts_with("/v1/") {
        Need::AnyOf(&[Scope::Llm])
    } else if route.starts_with("/api/admin/") || route == "/metrics" {
        Need::AnyOf(&[Scope::Admin])
    } else if route.starts_with("/api/chat") || route.starts_with("/api/arcana/context-memory") {
        Need::AnyOf(if read {
            &[Scope::Read, Scope::Chat]
        } else {
            &[Scope::Chat]
        })
    } else if route.starts_with("/api/arcana/llm") {
        Need::AnyOf(if read {
            &[Scope::Read, Scope::Llm]
        } else {
            &[Scope::Llm]
        })
    } else if read {
        Need::AnyOf(&[Scope::Read])
    } else {
        Need::Session
    }
}

/// A personal token as its owner (or an admin) sees it: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccessToken {
    /// UUID.
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The secret's first characters, to tell tokens apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// Whether `/v1/chat/completions` calls made with it are kept as conversations.
    pub keep_history: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC; absent: never expires.
    pub expires_at: Option<String>,
    /// RFC 3339 UTC, to the minute; absent: never used.
    pub last_used_at: Option<String>,
}

/// The token behind a request made with a personal token.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub token_id: String,
    pub scopes: Vec<Scope>,
    pub keep_history: bool,
}

const COLUMNS: &str = "t.id, t.user_id, t.name, t.prefix, t.scopes, t.keep_history, t.created_at, t.expires_at, t.last_used_at";

fn from_row(r: Row<'_>) -> Result<AccessToken, DbError> {
    let names: Vec<String> =
        serde_json::from_str(&r.text(4)?).map_err(|e| DbError::Decode(format!("scopes: {e}")))?;
    Ok(AccessToken {
        id: r.text(0)?,
        user_id: r.text(1)?,
        name: r.text(2)?,
        prefix: r.text(3)?,
        scopes: names.iter().filter_map(|s| Scope::parse(s)).collect(),
        keep_history: r.bool(5)?,
        created_at: r.text(6)?,
        expires_at: r.opt_text(7)?,
        last_used_at: r.opt_text(8)?,
    })
}

/// The stored hash of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("random: {e}")))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Fields of a new token.
pub struct NewToken<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub scopes: &'a [Scope],
    pub keep_history: bool,
    pub expires_at: Option<&'a str>,
}

/// Stores a token for `secret`; refuses beyond [`MAX_PER_USER`] (409).
pub fn insert(
    db: &dyn Db,
    new: &NewToken<'_>,
    secret: &str,
    now: &str,
) -> Result<AccessToken, ApiError> {
    let mut names: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let id = uuid::Uuid::new_v4().to_string();
    // One statement: the count check and the insert cannot interleave with another.
    let rows = db.query(
        &format!(
            "INSERT INTO auth_access_tokens (id, user_id, name, secret_hash, prefix, scopes, keep_history, created_at, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
             WHERE (SELECT count(*) FROM auth_access_tokens WHERE user_id = ?2) < ?10
             RETURNING {}",
            COLUMNS.replace("t.", "")
        ),
        &[
            id.into(),
            new.user_id.into(),
            new.name.into(),
            hash_secret(secret).into(),
            secret.chars().take(SECRET_PREFIX.len() + 6).collect::<String>().into(),
            serde_json::to_string(&names).expect("strings serialize").into(),
            new.keep_history.into(),
            now.into(),
            new.expires_at.into(),
            MAX_PER_USER.into(),
        ],
    )?;
    match rows.first() {
        Some(r) => Ok(from_row(r)?),
        None => Err(ApiError::new(
            409,
            "too_many_tokens",
            format!("A user may hold at most {MAX_PER_USER} tokens; revoke one first."),
        )),
    }
}

/// A user's tokens (or everyone's, for `None`), newest first, one page at a time.
pub fn list(
    db: &dyn Db,
    user_id: Option<&str>,
    page: &crate::pagination::PageRequest,
) -> Result<crate::pagination::Page<AccessToken>, DbError> {
    let (key, id) = page
        .after
        .as_ref()
        .map(|c| (c.key.clone(), c.id.clone()))
        .unwrap_or_default();
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM auth_access_tokens t
             WHERE (?1 IS NULL OR t.user_id = ?1) AND (?2 = '' OR (t.created_at, t.id) < (?2, ?3))
             ORDER BY t.created_at DESC, t.id DESC LIMIT ?4"
        ),
        &[
            user_id.into(),
            key.into(),
            id.into(),
            (page.limit + 1).into(),
        ],
    )?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(crate::pagination::Page::from_rows(items, page.limit, |t| {
        crate::pagination::Cursor {
            key: t.created_at.clone(),
            id: t.id.clone(),
        }
    }))
}

/// Deletes a token of `user_id` (any user's for `None`); whether one was deleted.
pub fn revoke(db: &dyn Db, id: &str, user_id: Option<&str>) -> Result<bool, DbError> {
    let rows = db.query(
        "DELETE FROM auth_access_tokens WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) RETURNING id",
        &[id.into(), user_id.into()],
    )?;
    Ok(rows.first().is_some())
}

/// How stale `last_used_at` may get before a request refreshes it: a write per
/// request would double the cost of every read.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// The user and grant behind a secret: 401 when unknown, expired, or its user is
/// disabled. Refreshes `last_used_at` at most once a minute.
pub fn authenticate(db: &dyn Db, secret: &str) -> Result<(User, Grant), ApiError> {
    let invalid = || {
        ApiError::unauthorized(
            "invalid_token",
            "The access token is not valid or was revoked.",
        )
    };
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS}, {} FROM auth_access_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.secret_hash = ?1",
            crate::users::prefixed_columns("u")
        ),
        &[hash_secret(secret).into()],
    )?;
    let row = rows.first().ok_or_else(invalid)?;
    let token = from_row(row)?;
    let user = crate::users::from_row_at(row, 9)?;
    let now = crate::time::now();
    if let Some(exp) = &token.expires_at
        && crate::time::parse(exp).is_none_or(|e| e <= now)
    {
        return Err(ApiError::unauthorized(
            "token_expired",
            "The access token has expired; create a new one.",
        ));
    }
    if user.disabled {
        return Err(invalid());
    }
    let stale = token
        .last_used_at
        .as_deref()
        .and_then(crate::time::parse)
        .is_none_or(|t| (now - t).whole_seconds() >= LAST_USED_RESOLUTION_SECS);
    if stale
        && let Err(e) = db.execute(
            "UPDATE auth_access_tokens SET last_used_at = ?1 WHERE id = ?2",
            &[crate::time::now_string().into(), token.id.clone().into()],
        )
    {
        // Being unable to note the time must not refuse a valid token.
        tracing::warn!(error = %e, "cannot record a token's last use");
    }
    Ok((
        user,
        Grant {
            token_id: token.id,
            scopes: token.scopes,
            keep_history: token.keep_history,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hash_stably() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn routes_need_the_matching_scope() {
        use Need::*;
        assert_eq!(
            need_for("POST", "/v1/chat/completions"),
            AnyOf(&[Scope::Llm])
        );
        assert_eq!(need_for("GET", "/v1/models"), AnyOf(&[Scope::Llm]));
        assert_eq!(need_for("GET", "/api/auth/me"), AnyOf(&[Scope::Read]));
        assert_eq!(need_for("POST", "/api/chat"), AnyOf(&[Scope::Chat]));
        assert_eq!(
            need_for("GET", "/api/chat/history/{conversation_id}"),
            AnyOf(&[Scope::Read, Scope::Chat])
        );
        assert_eq!(
            need_for("PUT", "/api/arcana/llm/preferences"),
            AnyOf(&[Scope::Llm])
        );
        assert_eq!(need_for("GET", "/api/admin/users"), AnyOf(&[Scope::Admin]));
        assert_eq!(need_for("POST", "/api/auth/tokens"), Session);
        assert_eq!(need_for("GET", "/api/auth/tokens"), Session);
        assert_eq!(need_for("POST", "/api/arcana/terminal/tickets"), Session);
    }
}
