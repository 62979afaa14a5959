//! Authentication and authorization: who is calling and what they may do.
//!
//! - [`password`]: argon2id hashing.
//! - [`token`]: signed, expiring access tokens (JWT, HS256).
//! - [`permissions`]: roles and named permissions, checked by one helper.
//! - [`throttle`]: slowing down password guessing per account name.
//! - [`access_tokens`]: personal access tokens with scopes, for scripts and clients.
//!
//! A token alone is not trusted: [`authenticate`] also loads the user, so disabling
//! a user or bumping their `token_version` stops every token already issued.

pub mod access_tokens;
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
    /// Set when the request came with a personal access token, which may do only what
    /// its scopes allow; `None` for a session (login) token.
    pub grant: Option<access_tokens::Grant>,
}

impl AuthUser {
    /// The caller's user id, for scoping every query.
    pub fn id(&self) -> &str {
        &self.user.id
    }

    /// 403 unless the credentials allow what the route needs: a session token allows
    /// everything its user may do, a personal token only its scopes.
    pub fn check_need(&self, need: access_tokens::Need) -> ApiResult<()> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        match need {
            access_tokens::Need::Session => Err(ApiError::forbidden(
                "session_required",
                "A personal access token cannot do this; sign in with a password.",
            )),
            access_tokens::Need::AnyOf(scopes)
                if scopes.iter().any(|s| grant.scopes.contains(s)) =>
            {
                Ok(())
            }
            access_tokens::Need::AnyOf(scopes) => Err(ApiError::forbidden(
                "insufficient_scope",
                format!(
                    "This token lacks the scope this needs: one of {}.",
                    scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
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
    user.check_need(access_tokens::Need::AnyOf(&[access_tokens::Scope::Admin]))?;
    if user.user.role != permissions::Role::Admin {
        return Err(ApiError::forbidden(
            "admin_required",
            "Only an admin (or the metrics token) may read metrics.",
        ));
    }
    Ok(Some(user))
}

/// Like [`authenticate`], for a token that came another way (a WebSocket query parameter).
/// Accepts session JWTs and personal access tokens (`arc_…`); callers check scopes with
/// [`AuthUser::check_need`].
pub fn authenticate_token(db: &dyn Db, settings: &Settings, token: &str) -> ApiResult<AuthUser> {
    if token.starts_with(access_tokens::SECRET_PREFIX) {
        let (user, grant) = access_tokens::authenticate(db, token)?;
        return Ok(AuthUser {
            user,
            grant: Some(grant),
        });
    }
    let claims = token::verify(&settings.jwt_secret, token)?;
    let revoked =
        || ApiError::unauthorized("invalid_token", "The access token is no longer valid.");
    let user = users::find_by_id(db, &claims.sub)?.ok_or_else(revoked)?;
    if user.disabled || user.token_version != claims.ver {
        return Err(revoked());
    }
    Ok(AuthUser { user, grant: None })
}
