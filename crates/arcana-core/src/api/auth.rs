//! The `auth` component: registration, login, the caller's profile, and admin user
//! management (`/api/auth/...`, `/api/admin/users...`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Route, admin, route};
use crate::auth::permissions::{Permission, Role};
use crate::auth::{password, throttle, token};
use crate::db::transaction;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiRequest, ApiResponse, PathParams, parse_json};
use crate::users::{self, NewUser, User};
use crate::validate::Validator;

/// The component's routes.
pub const ROUTES: &[Route] = &[
    route("POST", "/api/auth/register", register),
    route("POST", "/api/auth/login", login),
    route("GET", "/api/auth/me", me),
    route("POST", "/api/auth/tokens", super::tokens::create),
    route("GET", "/api/auth/tokens", super::tokens::list),
    route("DELETE", "/api/auth/tokens/{id}", super::tokens::revoke),
    route("GET", "/api/admin/users", admin::list_users),
    route("POST", "/api/admin/users", admin::create_user),
    route("GET", "/api/admin/users/{id}", admin::get_user),
    route("PUT", "/api/admin/users/{id}", admin::update_user),
    route("DELETE", "/api/admin/users/{id}", admin::delete_user),
];

/// Body of `POST /api/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// Body of `POST /api/auth/login` (JSON, or form-encoded as in OAuth2's password flow).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A freshly issued access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// Creates an account. The first account becomes admin; after that, sign-up is open
/// only when the `allow_signup` variable is true.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = User), (status = 403, description = "sign-up closed", body = crate::error::Problem),
              (status = 409, description = "user name taken", body = crate::error::Problem),
              (status = 422, description = "invalid fields", body = crate::error::Problem)))]
pub fn register(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let body: RegisterRequest = req.json()?;
    let mut v = Validator::new();
    users::check_username(&mut v, &body.username);
    users::check_password(&mut v, &body.password, "password");
    users::check_email(&mut v, body.email.as_deref());
    v.finish()?;
    // Hash outside the transaction: it is the slow part and needs no lock.
    let hash = password::hash(&body.password)?;
    let now = crate::time::now_string();
    let user = transaction(ctx.db, || {
        let first = users::count(ctx.db)? == 0;
        if !first && !ctx.settings.allow_signup {
            return Err(ApiError::forbidden(
                "signup_closed",
                "Sign-up is closed; ask an administrator for an account.",
            ));
        }
        users::insert(
            ctx.db,
            &NewUser {
                username: &body.username,
                email: body.email.as_deref(),
                password_hash: &hash,
                role: if first { Role::Admin } else { Role::User },
                permissions: &[],
                disabled: false,
            },
            &now,
        )
    })?;
    tracing::info!(user_id = %user.id, role = user.role.as_str(), "user registered");
    Ok(ApiResponse::json(201, &user))
}

/// Exchanges a user name and password for an access token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "wrong user name or password", body = crate::error::Problem),
              (status = 429, description = "too many failed attempts; see Retry-After", body = crate::error::Problem)))]
pub fn login(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let body: LoginRequest = match req.content_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let mut username = None;
            let mut password = None;
            for (k, v) in form_urlencoded::parse(&req.body) {
                match &*k {
                    "username" => username = Some(v.into_owned()),
                    "password" => password = Some(v.into_owned()),
                    _ => {}
                }
            }
            match (username, password) {
                (Some(username), Some(password)) => LoginRequest { username, password },
                _ => {
                    return Err(ApiError::bad_request(
                        "missing_fields",
                        "Send username and password.",
                    ));
                }
            }
        }
        Some("application/json") => parse_json(&req.body)?,
        _ => req.json()?,
    };
    let name = users::normalize(&body.username);
    let now = crate::time::now();
    throttle::check(ctx.db, &name, now)?;

    let found = users::find_for_login(ctx.db, &body.username)?;
    // Verify against a dummy hash for unknown names so timing does not reveal them.
    let stored = found
        .as_ref()
        .map(|(_, h)| h.as_str())
        .unwrap_or(password::DUMMY_HASH);
    let password_ok = password::verify(&body.password, stored);
    let user = match found {
        Some((user, _)) if password_ok && !user.disabled => user,
        _ => {
            throttle::record_failure(ctx.db, &name, now)?;
            tracing::info!(request_id = %ctx.request_id, "failed login");
            return Err(ApiError::unauthorized(
                "invalid_credentials",
                "Wrong user name or password.",
            ));
        }
    };
    throttle::record_success(ctx.db, &name)?;

    let iat = now.unix_timestamp();
    let claims = token::Claims {
        sub: user.id.clone(),
        role: user.role.as_str().to_string(),
        ver: user.token_version,
        iat,
        exp: iat + ctx.settings.token_ttl_secs,
        nbf: None,
        iss: token::ISSUER.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = token::issue(&ctx.settings.jwt_secret, &claims)?;
    Ok(ApiResponse::json(
        200,
        &TokenResponse {
            access_token,
            token_type: "bearer".into(),
            expires_in: ctx.settings.token_ttl_secs,
        },
    )
    .with_header("cache-control", "no-store"))
}

/// The caller's own account, with the permissions they effectively hold.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::Problem)))]
pub fn me(ctx: &Ctx<'_>, req: &ApiRequest, _: &PathParams) -> ApiResult<ApiResponse> {
    let caller = ctx.authenticate(req)?;
    let effective = Permission::ALL
        .into_iter()
        .filter(|p| caller.has(*p))
        .collect();
    Ok(ApiResponse::json(
        200,
        &MeResponse {
            user: caller.user,
            effective_permissions: effective,
        },
    ))
}

/// Body of `GET /api/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    #[serde(flatten)]
    pub user: User,
    /// Every permission the caller holds, including those implied by the admin role.
    pub effective_permissions: Vec<Permission>,
}
