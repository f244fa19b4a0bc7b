//! Route handlers for `/api/auth/*` and `/api/users/me/*`.

use super::tokens::{random_token, sha256_hex};
use super::{create_user, validate, AuthUser, UserView};
use crate::http::error::internal;
use crate::http::{ApiError, ApiResult, ClientIp, Json};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode};
use firefly_store::{ProfilePatch, Role, RotateOutcome, UserStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const TAG: &str = "accounts";
/// Largest preferences document, serialized.
pub const PREFERENCES_MAX_BYTES: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    #[schema(max_length = 64)]
    display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutQuery {
    /// Revoke every session of the account, not only this one.
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[schema(max_length = 64)]
    display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT for `Authorization: Bearer`, valid for `expires_in` seconds.
    access_token: String,
    /// Opaque; exchange it once at `/api/auth/refresh`.
    refresh_token: String,
    #[schema(example = "Bearer")]
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    user: UserView,
    #[serde(flatten)]
    tokens: TokenPair,
}

/// Starts a session for `user_id` and issues its first token pair.
async fn start_session(state: &AppState, user_id: i64) -> ApiResult<TokenPair> {
    let now = now_ms();
    let refresh = random_token("rt_", 32);
    let sid = state
        .store
        .create_session(user_id, &sha256_hex(&refresh), now.saturating_add(state.tokens.refresh_ttl_ms), now)
        .await?;
    token_pair(state, user_id, sid, refresh)
}

fn token_pair(state: &AppState, user_id: i64, sid: i64, refresh: String) -> ApiResult<TokenPair> {
    let access = state.tokens.issue_access(user_id, sid, now_ms()).map_err(internal)?;
    Ok(TokenPair {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl_secs,
    })
}

/// Create an account and start a session.
#[utoipa::path(post, path = "/api/auth/register", tag = TAG, request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 409, body = ErrorResponse, description = "auth.email_taken"),
              (status = 422, body = ErrorResponse, description = "validation.failed"),
              (status = 429, body = ErrorResponse, description = "rate_limit.exceeded, with Retry-After")))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<AuthResponse>)> {
    if !state.config.auth.allow_registration {
        return Err(Error::with_message(ErrorCode::Forbidden, "Registration is closed.").into());
    }
    // Registration hashes a password too: it spends the address's login budget so a flood
    // of sign-ups cannot starve logins of the hashing permits.
    state.login_limiter.check_ip(ip).map_err(|secs| ApiError(Error::rate_limited(secs)))?;
    let user = create_user(&state, &req.email, &req.password, req.display_name.as_deref(), Role::User).await?;
    let tokens = start_session(&state, user.id).await?;
    Ok((StatusCode::CREATED, Json(AuthResponse { user: user.into(), tokens })))
}

/// Log in with email and password.
#[utoipa::path(post, path = "/api/auth/login", tag = TAG, request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorResponse, description = "auth.invalid_credentials"),
              (status = 403, body = ErrorResponse, description = "auth.account_disabled"),
              (status = 429, body = ErrorResponse, description = "rate_limit.exceeded, with Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<AuthResponse>> {
    let email = validate::normalize_email(&req.email);
    // An address that could never have registered is looked up nowhere and keyed nowhere
    // (it may be huge, or hold bytes such as NUL that some databases refuse in text).
    let mut invalid = Vec::new();
    validate::check_email(&mut invalid, "email", &email);
    let account = if invalid.is_empty() { email.as_str() } else { "" };
    state.login_limiter.check(ip, account).map_err(|secs| ApiError(Error::rate_limited(secs)))?;
    let user = if invalid.is_empty() { state.store.user_by_email(&email).await? } else { None };
    // Verify even when the account does not exist, so timing does not reveal which emails exist.
    let ok = state.passwords.verify(user.as_ref().map(|u| u.password_hash.as_str()), &req.password).await?;
    let user = match user {
        Some(user) if ok => user,
        _ => return Err(ErrorCode::InvalidCredentials.into()),
    };
    if user.status != UserStatus::Active {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let tokens = start_session(&state, user.id).await?;
    Ok(Json(AuthResponse { user: user.into(), tokens }))
}

/// Exchange a refresh token for a new token pair (the old one stops working).
#[utoipa::path(post, path = "/api/auth/refresh", tag = TAG, request_body = RefreshRequest,
    responses((status = 200, body = TokenPair),
              (status = 401, body = ErrorResponse, description = "auth.refresh_token_invalid or auth.refresh_token_reused")))]
pub async fn refresh(State(state): State<AppState>, Json(req): Json<RefreshRequest>) -> ApiResult<Json<TokenPair>> {
    let now = now_ms();
    let next = random_token("rt_", 32);
    let outcome = state
        .store
        .rotate_refresh_token(
            &sha256_hex(&req.refresh_token),
            &sha256_hex(&next),
            now.saturating_add(state.tokens.refresh_ttl_ms),
            now,
        )
        .await?;
    match outcome {
        RotateOutcome::Rotated { user_id, session_id } => {
            let user = state.store.user_by_id(user_id).await?.ok_or(ErrorCode::RefreshTokenInvalid)?;
            if user.status != UserStatus::Active {
                return Err(ErrorCode::AccountDisabled.into());
            }
            Ok(Json(token_pair(&state, user_id, session_id, next)?))
        }
        RotateOutcome::Reused { user_id } => {
            tracing::warn!(user_id, "refresh token reuse: session revoked");
            state.forget_sessions(user_id);
            Err(ErrorCode::RefreshTokenReused.into())
        }
        RotateOutcome::Invalid => Err(ErrorCode::RefreshTokenInvalid.into()),
    }
}

/// End this session, or every session with `all=true`.
#[utoipa::path(post, path = "/api/auth/logout", tag = TAG, params(("all" = Option<bool>, Query, description = "revoke every session")),
    security(("bearer" = [])),
    responses((status = 204, description = "the session (or every session) is revoked"), (status = 401, body = ErrorResponse)))]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    crate::http::Query(q): crate::http::Query<LogoutQuery>,
) -> ApiResult<StatusCode> {
    let now = now_ms();
    if q.all {
        state.store.revoke_all_sessions(user.user_id, now).await?;
        state.forget_sessions(user.user_id);
    } else {
        state.store.revoke_session(user.user_id, user.session_id, now).await?;
    }
    state.auth_cache.invalidate(&(user.user_id, user.session_id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Your profile.
#[utoipa::path(get, path = "/api/auth/profile", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorResponse)))]
pub async fn get_profile(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<UserView>> {
    let user = state.store.user_by_id(user.user_id).await?.ok_or(ErrorCode::TokenInvalid)?;
    Ok(Json(user.into()))
}

/// Change your display name.
#[utoipa::path(put, path = "/api/auth/profile", tag = TAG, request_body = ProfileUpdate, security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn put_profile(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<ProfileUpdate>,
) -> ApiResult<Json<UserView>> {
    let mut errors = Vec::new();
    let display_name = req.display_name.map(|n| validate::check_name(&mut errors, "display_name", &n));
    validate::finish(errors)?;
    let user = state
        .store
        .update_profile(user.user_id, ProfilePatch { display_name }, now_ms())
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    Ok(Json(user.into()))
}

/// Change your password; every session is revoked and a new one starts.
#[utoipa::path(post, path = "/api/auth/password", tag = TAG, request_body = PasswordChange, security(("bearer" = [])),
    responses((status = 200, body = TokenPair, description = "every other session is revoked; these tokens start a new one"),
              (status = 403, body = ErrorResponse, description = "auth.wrong_password"), (status = 422, body = ErrorResponse)))]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<PasswordChange>,
) -> ApiResult<Json<TokenPair>> {
    let mut errors = Vec::new();
    validate::check_password(&mut errors, "new_password", &req.new_password);
    validate::finish(errors)?;
    let current = state.store.user_by_id(user.user_id).await?.ok_or(ErrorCode::TokenInvalid)?;
    if !state.passwords.verify(Some(&current.password_hash), &req.current_password).await? {
        return Err(ErrorCode::WrongPassword.into());
    }
    let hash = state.passwords.hash(&req.new_password).await?;
    // The new hash and the revocation of every session commit together or not at all.
    if !state.store.change_password(user.user_id, &hash, now_ms()).await? {
        return Err(ErrorCode::TokenInvalid.into());
    }
    state.forget_sessions(user.user_id);
    Ok(Json(start_session(&state, user.user_id).await?))
}

/// Your preferences (a JSON object).
#[utoipa::path(get, path = "/api/users/me/preferences", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Object, description = "the stored preferences, `{}` when none"), (status = 401, body = ErrorResponse)))]
pub async fn get_preferences(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<serde_json::Value>> {
    let prefs = state.store.get_preferences(user.user_id).await?;
    Ok(Json(prefs.unwrap_or_else(|| serde_json::json!({}))))
}

/// Replace your preferences.
#[utoipa::path(put, path = "/api/users/me/preferences", tag = TAG, request_body(content = Object, description = "a JSON object, replaced whole (at most 16 KiB)"),
    security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn put_preferences(
    State(state): State<AppState>,
    user: AuthUser,
    Json(prefs): Json<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    if !prefs.is_object() {
        return Err(Error::field("body", "must be a JSON object").into());
    }
    if prefs.to_string().len() > PREFERENCES_MAX_BYTES {
        return Err(Error::field("body", "must be at most 16 KiB").into());
    }
    state.store.put_preferences(user.user_id, &prefs, now_ms()).await?;
    Ok(Json(prefs))
}
