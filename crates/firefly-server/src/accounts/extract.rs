//! `AuthUser` and `AdminUser`: a bearer access token whose user is active, whose session
//! is not revoked, checked through a one-second cache. The role comes from the database
//! state, not the token, so a role change applies within that second too.

use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use firefly_core::ErrorCode;
use firefly_store::{Role, UserStatus};

#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub user_id: i64,
    pub session_id: i64,
    pub role: Role,
}

/// An authenticated administrator.
#[derive(Clone, Copy, Debug)]
pub struct AdminUser(pub AuthUser);

/// The token after `Bearer ` in `Authorization`, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ErrorCode::Unauthenticated)?;
        let (user_id, session_id) = state.tokens.verify_access(token).ok_or(ErrorCode::TokenInvalid)?;
        let store = state.store.clone();
        let auth = state
            .auth_cache
            .try_get_with((user_id, session_id), async move { store.auth_state(user_id, session_id).await })
            .await
            .map_err(crate::http::error::internal)?;
        let auth = auth.ok_or(ErrorCode::TokenInvalid)?;
        if !auth.session_active {
            return Err(ErrorCode::TokenInvalid.into());
        }
        if auth.status != UserStatus::Active {
            return Err(ErrorCode::AccountDisabled.into());
        }
        Ok(AuthUser { user_id, session_id, role: auth.role })
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ErrorCode::Forbidden.into());
        }
        Ok(AdminUser(user))
    }
}
