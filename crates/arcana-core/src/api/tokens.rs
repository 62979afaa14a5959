//! `/api/auth/tokens`: personal access tokens, created, listed and revoked by their
//! owner with a session token; admins list and revoke anyone's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::access_tokens::{self, AccessToken, NewToken, Scope};
use crate::auth::{Permission, require};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::pagination::{Page, PageRequest};
use crate::validate::{Validator, uuid_param};

/// Longest lifetime a token may be given, in days.
pub const MAX_LIFETIME_DAYS: i64 = 3650;

/// Body of `POST /api/auth/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// 1–100 characters, e.g. "laptop openai client".
    pub name: String,
    /// At least one of `read`, `chat`, `llm`, `admin`.
    pub scopes: Vec<Scope>,
    /// RFC 3339, in the future and within ten years; absent: never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Keep `/v1/chat/completions` calls made with this token as conversations.
    #[serde(default)]
    pub keep_history: bool,
}

/// A new token: the stored fields and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub stored: AccessToken,
    /// The secret, `arc_…`: send it as `Authorization: Bearer`. It is not shown again.
    pub token: String,
}

/// Creates a personal access token for the caller (needs a session token, not another
/// personal token; an `admin` scope only for admins).
#[utoipa::path(post, path = "/api/auth/tokens", tag = "auth", security(("bearer" = [])), request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 403, body = crate::error::Problem),
              (status = 409, description = "too many tokens", body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub fn create(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let body: TokenInput = req.json()?;
    let now = crate::time::now();
    let mut v = Validator::new();
    let name = body.name.trim();
    v.check(
        (1..=100).contains(&name.chars().count()),
        "name",
        "1 to 100 characters",
    );
    v.check(!body.scopes.is_empty(), "scopes", "name at least one scope");
    let expires_at = body.expires_at.as_deref().map(crate::time::parse);
    if let Some(parsed) = expires_at {
        v.check(
            parsed.is_some_and(|t| t > now && t <= now + time::Duration::days(MAX_LIFETIME_DAYS)),
            "expires_at",
            "an RFC 3339 time in the future, within ten years",
        );
    }
    v.finish()?;
    if body.scopes.contains(&Scope::Admin) {
        require(&caller, Permission::UsersAdmin)?;
    }
    let secret = access_tokens::new_secret()?;
    let expires_at = expires_at.flatten().map(crate::time::format);
    let stored = access_tokens::insert(
        ctx.db,
        &NewToken {
            user_id: caller.id(),
            name,
            scopes: &body.scopes,
            keep_history: body.keep_history,
            expires_at: expires_at.as_deref(),
        },
        &secret,
        &crate::time::format(now),
    )?;
    tracing::info!(user_id = %caller.id(), token_id = %stored.id, "access token created");
    Ok(ApiResponse::json(
        201,
        &CreatedToken {
            stored,
            token: secret,
        },
    ))
}

/// The caller's tokens, newest first (never their secrets). Admins may add `?all=true`
/// for every user's.
#[utoipa::path(get, path = "/api/auth/tokens", tag = "auth", security(("bearer" = [])),
    params(("all" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AccessToken>), (status = 403, body = crate::error::Problem)))]
pub fn list(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let page = PageRequest::from_request(req)?;
    let all = match req.query_param("all").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_all",
                "all must be true or false",
            ));
        }
    };
    if all {
        require(&caller, Permission::UsersAdmin)?;
    }
    let owner = (!all).then(|| caller.id());
    Ok(ApiResponse::json(
        200,
        &access_tokens::list(ctx.db, owner, &page)?,
    ))
}

/// Revokes a token at once: the caller's own, or anyone's for an admin. Someone
/// else's token is a 404 for everyone else.
#[utoipa::path(delete, path = "/api/auth/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub fn revoke(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let id = uuid_param(params.get("id")?, "token")?;
    let owner = (!caller.has(Permission::UsersAdmin)).then(|| caller.id());
    if !access_tokens::revoke(ctx.db, &id, owner)? {
        return Err(ApiError::not_found("token"));
    }
    tracing::info!(user_id = %caller.id(), token_id = %id, "access token revoked");
    Ok(ApiResponse::no_content())
}
