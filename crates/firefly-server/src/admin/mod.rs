//! Administration of accounts: list and search users, enable or disable, change role.
//! Every handler takes `AdminUser`, so a non-admin is refused before anything runs.

use crate::accounts::{AdminUser, UserView};
use crate::http::{ApiResult, Json, Path, Query};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{Role, UserQuery, UserStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "admin";
const PER_PAGE_MAX: i64 = 100;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Case-insensitive substring of the email or display name.
    search: Option<String>,
    /// 1-based page number.
    page: Option<i64>,
    /// 1 to 100, default 20.
    per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    items: Vec<UserView>,
    total: i64,
    page: i64,
    per_page: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusUpdate {
    #[schema(value_type = String, example = "disabled")]
    status: UserStatus,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleUpdate {
    #[schema(value_type = String, example = "admin")]
    role: Role,
}

fn is_active_admin(user: &firefly_store::User) -> bool {
    user.role == Role::Admin && user.status == UserStatus::Active
}

/// List and search users.
#[utoipa::path(get, path = "/api/admin/users", tag = TAG, params(UserListQuery), security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<UserListQuery>,
) -> ApiResult<Json<UserPage>> {
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(20);
    let mut errors = Vec::new();
    if page < 1 {
        errors.push(FieldError::new("page", "must be at least 1"));
    }
    if !(1..=PER_PAGE_MAX).contains(&per_page) {
        errors.push(FieldError::new("per_page", format!("must be 1 to {PER_PAGE_MAX}")));
    }
    if q.search.as_ref().is_some_and(|s| s.chars().count() > 254 || s.chars().any(char::is_control)) {
        errors.push(FieldError::new("search", "must be at most 254 characters, without control characters"));
    }
    crate::accounts::validate::finish(errors)?;
    let search = q.search.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let query = UserQuery { search, limit: per_page, offset: (page - 1).saturating_mul(per_page) };
    let result = state.store.list_users(&query).await?;
    Ok(Json(UserPage {
        items: result.items.into_iter().map(Into::into).collect(),
        total: result.total,
        page,
        per_page,
    }))
}

/// Enable or disable a user.
#[utoipa::path(put, path = "/api/admin/users/{id}/status", tag = TAG, params(("id" = i64, Path)), request_body = StatusUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse, description = "administrators cannot disable themselves or the last active administrator")))]
pub async fn set_status(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    Json(req): Json<StatusUpdate>,
) -> ApiResult<Json<UserView>> {
    if id == admin.user_id && req.status == UserStatus::Disabled {
        return Err(
            Error::with_message(ErrorCode::Conflict, "An administrator cannot disable their own account.").into()
        );
    }
    let target = state.store.user_by_id(id).await?.ok_or(ErrorCode::NotFound)?;
    if req.status == UserStatus::Disabled && is_active_admin(&target) && state.store.count_active_admins().await? <= 1 {
        return Err(
            Error::with_message(ErrorCode::Conflict, "The last active administrator cannot be disabled.").into()
        );
    }
    let user = state.store.set_user_status(id, req.status, now_ms()).await?.ok_or(ErrorCode::NotFound)?;
    state.key_cache.forget_user(id);
    state.forget_sessions(id);
    tracing::info!(admin_id = admin.user_id, user_id = id, status = req.status.as_str(), "user status changed");
    Ok(Json(user.into()))
}

/// Change a user's role.
#[utoipa::path(put, path = "/api/admin/users/{id}/role", tag = TAG, params(("id" = i64, Path)), request_body = RoleUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse, description = "the last administrator cannot be demoted")))]
pub async fn set_role(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    Json(req): Json<RoleUpdate>,
) -> ApiResult<Json<UserView>> {
    let target = state.store.user_by_id(id).await?.ok_or(ErrorCode::NotFound)?;
    if req.role != Role::Admin && is_active_admin(&target) && state.store.count_active_admins().await? <= 1 {
        return Err(Error::with_message(ErrorCode::Conflict, "The last administrator cannot be demoted.").into());
    }
    let user = state.store.set_user_role(id, req.role, now_ms()).await?.ok_or(ErrorCode::NotFound)?;
    state.forget_sessions(id);
    tracing::info!(admin_id = admin.user_id, user_id = id, role = req.role.as_str(), "user role changed");
    Ok(Json(user.into()))
}
