//! The users table: the model, its SQL, and the rules on names and passwords.

use serde::Serialize;

use crate::auth::permissions::{Permission, Role};
use crate::db::{Db, DbError, Row};
use crate::error::ApiError;
use crate::pagination::{Cursor, Page, PageRequest};
use crate::validate::Validator;

/// A user as the API shows it. The password hash is never part of this type.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// UUID.
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    /// Permissions granted explicitly (admins hold all regardless).
    pub permissions: Vec<Permission>,
    pub disabled: bool,
    #[serde(skip)]
    pub token_version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, username, email, role, permissions, disabled, token_version, created_at, updated_at";

fn from_row(row: Row<'_>) -> Result<User, DbError> {
    from_row_at(row, 0)
}

/// [`COLUMNS`] qualified by a table alias, for joins (read back with [`from_row_at`]).
pub fn prefixed_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user from a row whose user columns start at index `at`.
pub fn from_row_at(row: Row<'_>, at: usize) -> Result<User, DbError> {
    let role = row.text(at + 3)?;
    let permissions: Vec<String> = serde_json::from_str(&row.text(at + 4)?)
        .map_err(|e| DbError::Decode(format!("permissions: {e}")))?;
    Ok(User {
        id: row.text(at)?,
        username: row.text(at + 1)?,
        email: row.opt_text(at + 2)?,
        role: Role::parse(&role).ok_or_else(|| DbError::Decode(format!("role {role:?}")))?,
        // Unknown names (from a newer version) are ignored rather than failing the login.
        permissions: permissions
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
        disabled: row.bool(at + 5)?,
        token_version: row.int(at + 6)?,
        created_at: row.text(at + 7)?,
        updated_at: row.text(at + 8)?,
    })
}

/// Lower-cased user name: uniqueness and login ignore case.
pub fn normalize(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Checks a new user name: 3–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(v: &mut Validator, username: &str) {
    v.length(username, "username", 3, 64).check(
        username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')),
        "username",
        "may contain letters, digits, '.', '_', '-' and '@' only",
    );
}

/// Checks a new password: 8–256 characters (long passphrases welcome).
pub fn check_password(v: &mut Validator, password: &str, field: &str) {
    v.length(password, field, 8, 256);
}

/// Checks an optional e-mail address loosely (something@something).
pub fn check_email(v: &mut Validator, email: Option<&str>) {
    if let Some(e) = email {
        let ok = e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
        v.check(ok, "email", "must be an e-mail address");
    }
}

/// Fields of a new user.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: &'a str,
    pub role: Role,
    pub permissions: &'a [Permission],
    pub disabled: bool,
}

/// Inserts a user; 409 `username_taken` when the name exists (ignoring case).
pub fn insert(db: &dyn Db, new: &NewUser<'_>, now: &str) -> Result<User, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let perms = permissions_json(new.permissions);
    let result = db.execute(
        "INSERT INTO users (id, username, username_norm, email, password_hash, role, permissions,
                            disabled, token_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9)",
        &[
            id.clone().into(),
            new.username.trim().into(),
            normalize(new.username).into(),
            new.email.into(),
            new.password_hash.into(),
            new.role.as_str().into(),
            perms.into(),
            new.disabled.into(),
            now.into(),
        ],
    );
    match result {
        Ok(()) => find_by_id(db, &id)?.ok_or_else(|| ApiError::internal("inserted user vanished")),
        Err(DbError::Unique(_)) => Err(ApiError::conflict(
            "username_taken",
            "That user name is taken.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// JSON text of a permission list, deduplicated and in a stable order.
pub fn permissions_json(perms: &[Permission]) -> String {
    let mut names: Vec<&str> = perms.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    serde_json::to_string(&names).expect("strings serialize")
}

/// A user by id.
pub fn find_by_id(db: &dyn Db, id: &str) -> Result<Option<User>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        &[id.into()],
    )?;
    rows.first().map(from_row).transpose()
}

/// A user and their password hash, by user name (ignoring case).
pub fn find_for_login(db: &dyn Db, username: &str) -> Result<Option<(User, String)>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS}, password_hash FROM users WHERE username_norm = ?1"),
        &[normalize(username).into()],
    )?;
    match rows.first() {
        Some(row) => Ok(Some((from_row(row)?, row.text(9)?))),
        None => Ok(None),
    }
}

/// Number of users.
pub fn count(db: &dyn Db) -> Result<i64, DbError> {
    db.query("SELECT count(*) FROM users", &[])?
        .first()
        .map(|r| r.int(0))
        .unwrap_or(Ok(0))
}

/// Number of enabled admins.
pub fn count_active_admins(db: &dyn Db) -> Result<i64, DbError> {
    db.query(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0",
        &[],
    )?
    .first()
    .map(|r| r.int(0))
    .unwrap_or(Ok(0))
}

/// Users in creation order, one page at a time.
pub fn list(db: &dyn Db, page: &PageRequest) -> Result<Page<User>, DbError> {
    let (key, id) = page
        .after
        .as_ref()
        .map(|c| (c.key.clone(), c.id.clone()))
        .unwrap_or_default();
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM users
             WHERE (?1 = '' OR (created_at, id) > (?1, ?2))
             ORDER BY created_at, id LIMIT ?3"
        ),
        &[key.into(), id.into(), (page.limit + 1).into()],
    )?;
    let users = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_rows(users, page.limit, |u| Cursor {
        key: u.created_at.clone(),
        id: u.id.clone(),
    }))
}

/// Changes to apply to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub permissions: Option<Vec<Permission>>,
    pub disabled: Option<bool>,
    pub email: Option<Option<String>>,
    pub password_hash: Option<String>,
}

/// Applies changes. Disabling, changing the role or the password revokes the user's
/// tokens (their `token_version` goes up).
pub fn update(db: &dyn Db, id: &str, changes: &UserChanges, now: &str) -> Result<(), DbError> {
    let revoke =
        changes.disabled == Some(true) || changes.role.is_some() || changes.password_hash.is_some();
    db.execute(
        "UPDATE users SET
            role = COALESCE(?2, role),
            permissions = COALESCE(?3, permissions),
            disabled = COALESCE(?4, disabled),
            email = CASE WHEN ?5 THEN ?6 ELSE email END,
            password_hash = COALESCE(?7, password_hash),
            token_version = token_version + ?8,
            updated_at = ?9
         WHERE id = ?1",
        &[
            id.into(),
            changes.role.map(Role::as_str).into(),
            changes.permissions.as_deref().map(permissions_json).into(),
            changes.disabled.into(),
            changes.email.is_some().into(),
            changes.email.clone().flatten().into(),
            changes.password_hash.clone().into(),
            (revoke as i64).into(),
            now.into(),
        ],
    )
}

/// Deletes a user.
pub fn delete(db: &dyn Db, id: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM users WHERE id = ?1", &[id.into()])
}
