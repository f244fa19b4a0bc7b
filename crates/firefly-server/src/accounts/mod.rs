//! Accounts: registration, login, token refresh and logout, profile, password and
//! preferences. Seeds 002/003/004's user and auth services.

pub mod extract;
pub mod handlers;
pub mod password;
pub mod tokens;
pub mod validate;

pub use extract::{AdminUser, AuthUser};

use crate::http::ApiError;
use crate::state::AppState;
use firefly_core::time::{now_ms, Millis};
use firefly_core::ErrorCode;
use firefly_store::{NewUser, Role, StoreError, User, UserStatus};
use serde::Serialize;
use utoipa::ToSchema;

/// RFC 3339 UTC text for a millisecond timestamp.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    #[schema(value_type = String, example = "active")]
    pub status: UserStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            status: u.status,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// Creates an account; the building block of registration, `firefly admin create` and
/// the bootstrap administrator.
pub async fn create_user(
    state: &AppState,
    email: &str,
    password: &str,
    display_name: Option<&str>,
    role: Role,
) -> Result<User, ApiError> {
    let email = validate::normalize_email(email);
    let mut errors = Vec::new();
    validate::check_email(&mut errors, "email", &email);
    validate::check_password(&mut errors, "password", password);
    let default_name = email.split('@').next().unwrap_or_default().chars().take(validate::NAME_MAX).collect::<String>();
    let display_name = validate::check_name(&mut errors, "display_name", display_name.unwrap_or(&default_name));
    validate::finish(errors)?;
    let password_hash = state.passwords.hash(password).await?;
    let initial_credits = state.config.billing.signup_grant;
    let new = NewUser { email, display_name, password_hash, role, initial_credits, now: now_ms() };
    match state.store.create_user(new).await {
        Err(StoreError::Conflict(_)) => Err(ErrorCode::EmailTaken.into()),
        other => Ok(other?),
    }
}

/// Creates the first administrator from `bootstrap.*` when there is none yet; later
/// starts ignore the setting, so it is read once.
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&state.config.bootstrap.admin_email, &state.config.bootstrap.admin_password)
    else {
        return Ok(());
    };
    if state.store.count_active_admins().await? > 0 {
        return Ok(());
    }
    match create_user(state, email, password.expose(), None, Role::Admin).await {
        Ok(user) => {
            tracing::info!(user_id = user.id, "created the bootstrap administrator");
            Ok(())
        }
        // Another instance starting at the same moment created it, or the address already
        // belongs to an account: starting matters more than the bootstrap.
        Err(e) if e.code() == ErrorCode::EmailTaken => {
            tracing::warn!("bootstrap administrator not created: the email is already registered");
            Ok(())
        }
        Err(e) => anyhow::bail!("bootstrap administrator: {}", e.0),
    }
}
