//! Admin user management. Needs the `users:admin` permission; only an admin may
//! create admins or change an admin's account, and the last enabled admin can be
//! neither demoted, disabled nor deleted.

use serde::Deserialize;
use utoipa::ToSchema;

use super::Ctx;
use crate::auth::permissions::{Permission, Role};
use crate::auth::{AuthUser, password, require};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams};
use crate::pagination::{Page, PageRequest};
use crate::users::{self, NewUser, User, UserChanges};
use crate::validate::{Validator, uuid_param};

/// Body of `POST /api/admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub disabled: bool,
}

/// Body of `PUT /api/admin/users/{id}`; absent fields are left unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    pub permissions: Option<Vec<Permission>>,
    pub disabled: Option<bool>,
    /// `null` clears the address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Sets a new password (revokes the user's tokens).
    pub password: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn caller(ctx: &Ctx<'_>, req: &ApiRequest) -> ApiResult<AuthUser> {
    let caller = ctx.authenticate(req)?;
    require(&caller, Permission::UsersAdmin)?;
    Ok(caller)
}

fn only_admin_may(caller: &AuthUser, ok: bool, what: &str) -> ApiResult<()> {
    if ok || caller.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "admin_required",
            format!("Only an admin may {what}."),
        ))
    }
}

/// Lists users, oldest first.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = Page<User>), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub fn list_users(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    caller(ctx, req)?;
    let page = PageRequest::from_request(req)?;
    Ok(ApiResponse::json(200, &users::list(ctx.db, &page)?))
}

/// Creates a user with a role and permissions.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub fn create_user(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = caller(ctx, req)?;
    let body: CreateUserRequest = req.json()?;
    let role = body.role.unwrap_or(Role::User);
    only_admin_may(&caller, role != Role::Admin, "create admins")?;
    let mut v = Validator::new();
    users::check_username(&mut v, &body.username);
    users::check_password(&mut v, &body.password, "password");
    users::check_email(&mut v, body.email.as_deref());
    v.finish()?;
    let hash = password::hash(&body.password)?;
    let user = users::insert(
        ctx.db,
        &NewUser {
            username: &body.username,
            email: body.email.as_deref(),
            password_hash: &hash,
            role,
            permissions: &body.permissions,
            disabled: body.disabled,
        },
        &crate::time::now_string(),
    )?;
    tracing::info!(by = %caller.id(), user_id = %user.id, "user created");
    Ok(ApiResponse::json(201, &user))
}

/// One user.
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 404, body = crate::error::Problem)))]
pub fn get_user(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    caller(ctx, req)?;
    let id = uuid_param(params.get("id")?, "user")?;
    let user = users::find_by_id(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(ApiResponse::json(200, &user))
}

/// Changes a user's role, permissions, disabled flag, e-mail or password.
#[utoipa::path(put, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 404, body = crate::error::Problem), (status = 409, description = "would leave no admin", body = crate::error::Problem)))]
pub fn update_user(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = caller(ctx, req)?;
    let id = uuid_param(params.get("id")?, "user")?;
    let body: UpdateUserRequest = req.json()?;
    let mut v = Validator::new();
    if let Some(p) = &body.password {
        users::check_password(&mut v, p, "password");
    }
    users::check_email(&mut v, body.email.clone().flatten().as_deref());
    v.finish()?;
    let password_hash = body.password.as_deref().map(password::hash).transpose()?;
    let changes = UserChanges {
        role: body.role,
        permissions: body.permissions,
        disabled: body.disabled,
        email: body.email,
        password_hash,
    };
    let user = transaction(ctx.db, || {
        let target = users::find_by_id(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
        only_admin_may(
            &caller,
            target.role != Role::Admin && changes.role != Some(Role::Admin),
            "change an admin's account or grant the admin role",
        )?;
        let loses_admin = target.role == Role::Admin
            && !target.disabled
            && (changes.role == Some(Role::User) || changes.disabled == Some(true));
        if loses_admin && users::count_active_admins(ctx.db)? <= 1 {
            return Err(ApiError::conflict(
                "last_admin",
                "This is the last enabled admin.",
            ));
        }
        users::update(ctx.db, &id, &changes, &crate::time::now_string())?;
        users::find_by_id(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("user"))
    })?;
    tracing::info!(by = %caller.id(), user_id = %user.id, "user updated");
    Ok(ApiResponse::json(200, &user))
}

/// Deletes a user.
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub fn delete_user(ctx: &Ctx<'_>, req: &ApiRequest, params: &PathParams) -> ApiResult<ApiResponse> {
    let caller = caller(ctx, req)?;
    let id = uuid_param(params.get("id")?, "user")?;
    transaction(ctx.db, || {
        let target = users::find_by_id(ctx.db, &id)?.ok_or_else(|| ApiError::not_found("user"))?;
        only_admin_may(&caller, target.role != Role::Admin, "delete an admin")?;
        if target.role == Role::Admin
            && !target.disabled
            && users::count_active_admins(ctx.db)? <= 1
        {
            return Err(ApiError::conflict(
                "last_admin",
                "This is the last enabled admin.",
            ));
        }
        users::delete(ctx.db, &id)?;
        Ok(())
    })?;
    tracing::info!(by = %caller.id(), user_id = %id, "user deleted");
    Ok(ApiResponse::no_content())
}
