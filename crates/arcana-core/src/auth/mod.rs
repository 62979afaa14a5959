//! Authentication and authorization: who is calling and what they may do.
//!
//! - [`password`]: argon2id hashing.
//! - [`token`]: signed, expiring access tokens (JWT, HS256).
//! - [`permissions`]: roles and named permissions, checked by one helper.
//! - [`throttle`]: slowing down password guessing per account name.
//!
//! A token alone is not trusted: [`authenticate`] also loads the user, so disabling
//! a user or bumping their `token_version` stops every token already issued.

pub mod password;
pub mod permissions;
pub mod throttle;
pub mod token;

use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::http::ApiRequest;
use crate::settings::Settings;
use crate::users::{self, User};

pub use permissions::{Permission, require};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
}

impl AuthUser {
    /// The caller's user id, for scoping every query.
    pub fn id(&self) -> &str {
        &self.user.id
    }

    /// Whether the caller has a permission (admins have all).
    pub fn has(&self, permission: Permission) -> bool {
        permissions::user_has(&self.user, permission)
    }
}

/// The bearer token of a request, if any.
pub fn bearer_token(req: &ApiRequest) -> Option<&str> {
    let value = req.header_value("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies the request's token and loads its user: 401 for a missing, malformed,
/// forged or expired token, a deleted or disabled user, or a revoked token version.
pub fn authenticate(db: &dyn Db, settings: &Settings, req: &ApiRequest) -> ApiResult<AuthUser> {
    let token = bearer_token(req).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "Send an access token: Authorization: Bearer <token>.",
        )
    })?;
    authenticate_token(db, settings, token)
}

/// Who may read Prometheus metrics: a bearer token equal to the `metrics_token` variable
/// (compared in constant time), or an admin's access token. Returns the admin when one
/// signed in, for the request log.
pub fn authorize_scrape(
    db: &dyn Db,
    settings: &Settings,
    token: Option<&str>,
) -> ApiResult<Option<AuthUser>> {
    use subtle::ConstantTimeEq;
    let token = token.ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "Send the metrics token or an admin's access token: Authorization: Bearer <token>.",
        )
    })?;
    if let Some(expected) = &settings.metrics_token
        && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
    {
        return Ok(None);
    }
    let user = authenticate_token(db, settings, token)?;
    if user.user.role != permissions::Role::Admin {
        return Err(ApiError::forbidden(
            "admin_required",
            "Only an admin (or the metrics token) may read metrics.",
        ));
    }
    Ok(Some(user))
}

/// Like [`authenticate`], for a token that came another way (a WebSocket query parameter).
pub fn authenticate_token(db: &dyn Db, settings: &Settings, token: &str) -> ApiResult<AuthUser> {
    let claims = token::verify(&settings.jwt_secret, token)?;
    let revoked =
        || ApiError::unauthorized("invalid_token", "The access token is no longer valid.");
    let user = users::find_by_id(db, &claims.sub)?.ok_or_else(revoked)?;
    if user.disabled || user.token_version != claims.ver {
        return Err(revoked());
    }
    Ok(AuthUser { user })
}
