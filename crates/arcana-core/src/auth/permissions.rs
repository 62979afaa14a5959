//! Roles and named permissions. `admin` holds every permission; a `user` holds the
//! ones listed on their account. Every component checks through [`require`].

use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::users::User;

/// A named capability that an admin grants to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Permission {
    /// Open shells through terminal-host.
    #[serde(rename = "terminal")]
    Terminal,
    /// Manage LLM providers, models and routing.
    #[serde(rename = "llm:admin")]
    LlmAdmin,
    /// Manage users.
    #[serde(rename = "users:admin")]
    UsersAdmin,
}

impl Permission {
    /// Every permission, for validation and documentation.
    pub const ALL: [Permission; 3] = [
        Permission::Terminal,
        Permission::LlmAdmin,
        Permission::UsersAdmin,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Terminal => "terminal",
            Permission::LlmAdmin => "llm:admin",
            Permission::UsersAdmin => "users:admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = UserRole)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// Whether a user holds a permission.
pub fn user_has(user: &User, permission: Permission) -> bool {
    user.role == Role::Admin || user.permissions.contains(&permission)
}

/// 403 unless the caller holds `permission`.
pub fn require(caller: &AuthUser, permission: Permission) -> Result<(), ApiError> {
    if caller.has(permission) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "permission_denied",
            format!("This needs the {:?} permission.", permission.as_str()),
        ))
    }
}
