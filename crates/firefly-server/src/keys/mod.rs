//! API keys for the AI API: create (the full key is shown once), list, update, delete.

pub mod auth;

use crate::accounts::{rfc3339, AuthUser};
use crate::http::{ApiResult, Json, Path};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use auth::{parse_net, KeyAuth, KEY_PREFIX};
use axum::extract::State;
use axum::http::StatusCode;
use firefly_core::time::{now_ms, Millis};
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{ApiKey, ApiKeyPatch, NewApiKey, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const TAG: &str = "api-keys";
pub const MAX_KEYS_PER_USER: usize = 100;
const MAX_LIST: usize = 256;
const PREFIX_LEN: usize = KEY_PREFIX.len() + 6;

/// A key as its owner sees it: never the key itself, only its prefix.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    id: i64,
    name: String,
    #[schema(example = "sk-ff-Ab3xYz")]
    prefix: String,
    enabled: bool,
    expires_at: Option<String>,
    models: Vec<String>,
    ip_allow: Vec<String>,
    credit_limit: Option<i64>,
    /// Credits spent through this key so far.
    credits_used: i64,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    concurrency_limit: Option<i64>,
    created_at: String,
    updated_at: String,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            enabled: k.enabled,
            expires_at: k.expires_at.map(rfc3339),
            models: k.models.clone(),
            ip_allow: k.ip_allow.clone(),
            credit_limit: k.credit_limit,
            credits_used: k.credits_used,
            rpm_limit: k.rpm_limit,
            tpm_limit: k.tpm_limit,
            concurrency_limit: k.concurrency_limit,
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The full key. It is shown only in this response; store it now.
    key: String,
    #[serde(flatten)]
    view: ApiKeyView,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    items: Vec<ApiKeyView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[schema(max_length = 64)]
    name: String,
    /// RFC 3339 time after which the key stops working.
    expires_at: Option<String>,
    /// Models the key may call; empty or absent means any.
    models: Option<Vec<String>>,
    /// Addresses or CIDR ranges the key may be used from; empty or absent means any.
    ip_allow: Option<Vec<String>>,
    #[schema(minimum = 0)]
    credit_limit: Option<i64>,
    #[schema(minimum = 1)]
    rpm_limit: Option<i64>,
    /// Tokens (input + output) per minute.
    #[schema(minimum = 1)]
    tpm_limit: Option<i64>,
    /// Requests in flight at once.
    #[schema(minimum = 1)]
    concurrency_limit: Option<i64>,
}

/// Absent fields stay as they are; `null` clears a nullable one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    name: Option<String>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<Option<String>>,
    models: Option<Vec<String>>,
    ip_allow: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    credit_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    concurrency_limit: Option<Option<i64>>,
}

fn check_name(errors: &mut Vec<FieldError>, name: &str) -> String {
    crate::accounts::validate::check_name(errors, "name", name)
}

fn check_expiry(errors: &mut Vec<FieldError>, at: &str, now: Millis) -> Option<Millis> {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) if t.timestamp_millis() > now => Some(t.timestamp_millis()),
        Ok(_) => {
            errors.push(FieldError::new("expires_at", "must be in the future"));
            None
        }
        Err(_) => {
            errors.push(FieldError::new("expires_at", "must be an RFC 3339 time such as 2027-01-01T00:00:00Z"));
            None
        }
    }
}

fn check_models(errors: &mut Vec<FieldError>, models: Vec<String>) -> Vec<String> {
    if models.len() > MAX_LIST {
        errors.push(FieldError::new("models", format!("must have at most {MAX_LIST} entries")));
    }
    for (i, m) in models.iter().enumerate() {
        if m.trim().is_empty() || m.len() > 128 || m.chars().any(char::is_control) {
            errors.push(FieldError::new(format!("models[{i}]"), "must be a model name of 1 to 128 characters"));
        }
    }
    models.into_iter().map(|m| m.trim().to_owned()).collect()
}

fn check_ips(errors: &mut Vec<FieldError>, ips: Vec<String>) -> Vec<String> {
    if ips.len() > MAX_LIST {
        errors.push(FieldError::new("ip_allow", format!("must have at most {MAX_LIST} entries")));
    }
    ips.into_iter()
        .enumerate()
        .filter_map(|(i, s)| match parse_net(s.trim()) {
            Some(net) => Some(net.trunc().to_string()),
            None => {
                errors.push(FieldError::new(format!("ip_allow[{i}]"), "must be an IP address or CIDR range"));
                None
            }
        })
        .collect()
}

fn check_limit(errors: &mut Vec<FieldError>, field: &str, value: Option<i64>, min: i64) -> Option<i64> {
    if let Some(v) = value.filter(|v| *v < min) {
        errors.push(FieldError::new(field, format!("must be at least {min} (got {v})")));
    }
    value
}

fn finish(errors: Vec<FieldError>) -> ApiResult<()> {
    crate::accounts::validate::finish(errors)
}

/// Create an API key; the key is shown only in this response.
#[utoipa::path(post, path = "/api/keys", tag = TAG, request_body = CreateKeyRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedKey), (status = 401, body = ErrorResponse), (status = 409, body = ErrorResponse, description = "too many keys"),
              (status = 422, body = ErrorResponse)))]
pub async fn create_key(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let now = now_ms();
    let mut errors = Vec::new();
    let name = check_name(&mut errors, &req.name);
    let expires_at = req.expires_at.as_deref().and_then(|at| check_expiry(&mut errors, at, now));
    let models = check_models(&mut errors, req.models.unwrap_or_default());
    let ip_allow = check_ips(&mut errors, req.ip_allow.unwrap_or_default());
    let credit_limit = check_limit(&mut errors, "credit_limit", req.credit_limit, 0);
    let rpm_limit = check_limit(&mut errors, "rpm_limit", req.rpm_limit, 1);
    let tpm_limit = check_limit(&mut errors, "tpm_limit", req.tpm_limit, 1);
    let concurrency_limit = check_limit(&mut errors, "concurrency_limit", req.concurrency_limit, 1);
    finish(errors)?;
    if state.store.list_api_keys(user.user_id).await?.len() >= MAX_KEYS_PER_USER {
        return Err(Error::with_message(
            ErrorCode::Conflict,
            format!("An account may have at most {MAX_KEYS_PER_USER} keys."),
        )
        .into());
    }
    // 32 random bytes: 256 bits of entropy.
    let key = crate::accounts::tokens::random_token(KEY_PREFIX, 32);
    let new = NewApiKey {
        user_id: user.user_id,
        name,
        key_hash: crate::accounts::tokens::sha256_hex(&key),
        prefix: key[..PREFIX_LEN].to_owned(),
        expires_at,
        models,
        ip_allow,
        credit_limit,
        rpm_limit,
        tpm_limit,
        concurrency_limit,
        now,
    };
    let stored = match state.store.create_api_key(new).await {
        Err(StoreError::Conflict(_)) => return Err(crate::http::error::internal("API key hash collision")),
        other => other?,
    };
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view: (&stored).into() })))
}

/// Your API keys (prefixes only).
#[utoipa::path(get, path = "/api/keys", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorResponse)))]
pub async fn list_keys(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<KeyList>> {
    let keys = state.store.list_api_keys(user.user_id).await?;
    Ok(Json(KeyList { items: keys.iter().map(Into::into).collect() }))
}

/// Change an API key.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = TAG, params(("id" = i64, Path)), request_body = UpdateKeyRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn update_key(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    Json(req): Json<UpdateKeyRequest>,
) -> ApiResult<Json<ApiKeyView>> {
    let now = now_ms();
    let mut errors = Vec::new();
    let patch = ApiKeyPatch {
        name: req.name.map(|n| check_name(&mut errors, &n)),
        enabled: req.enabled,
        expires_at: req.expires_at.map(|at| at.and_then(|at| check_expiry(&mut errors, &at, now))),
        models: req.models.map(|m| check_models(&mut errors, m)),
        ip_allow: req.ip_allow.map(|ips| check_ips(&mut errors, ips)),
        credit_limit: req.credit_limit.map(|v| check_limit(&mut errors, "credit_limit", v, 0)),
        rpm_limit: req.rpm_limit.map(|v| check_limit(&mut errors, "rpm_limit", v, 1)),
        tpm_limit: req.tpm_limit.map(|v| check_limit(&mut errors, "tpm_limit", v, 1)),
        concurrency_limit: req.concurrency_limit.map(|v| check_limit(&mut errors, "concurrency_limit", v, 1)),
    };
    finish(errors)?;
    let key = state.store.update_api_key(user.user_id, id, patch, now).await?.ok_or(ErrorCode::NotFound)?;
    state.key_cache.forget_key(key.id);
    Ok(Json((&key).into()))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = TAG, params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204, description = "the key is revoked"), (status = 404, body = ErrorResponse)))]
pub async fn delete_key(State(state): State<AppState>, user: AuthUser, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    if !state.store.delete_api_key(user.user_id, id, now_ms()).await? {
        return Err(ErrorCode::NotFound.into());
    }
    state.key_cache.forget_key(id);
    Ok(StatusCode::NO_CONTENT)
}

/// Describe the API key this request is made with.
#[utoipa::path(get, path = "/api/keys/current", tag = TAG, security(("api_key" = [])),
    description = "Describes the API key the request is made with; a cheap way for a client to check its key.",
    responses((status = 200, body = ApiKeyView), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse)))]
pub async fn current_key(KeyAuth(key): KeyAuth) -> Json<ApiKeyView> {
    Json((&key.auth.key).into())
}
