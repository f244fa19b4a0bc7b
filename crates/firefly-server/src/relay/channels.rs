//! Administrators' upstream channels. Provider keys are sealed with the master key
//! before they reach the store, and no response ever carries them: only hints.

use crate::accounts::{rfc3339, AdminUser};
use crate::http::{ApiResult, Json, Path};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{Channel, ChannelSpec, ChannelStatus, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

const TAG: &str = "channels";
/// Associated data for sealed channel keys: they open only as the keys of a channel with
/// this provider and base URL, so a database writer cannot point them somewhere else.
fn keys_purpose(provider: &str, base_url: &str) -> Vec<u8> {
    format!("firefly/channel-keys/v1\n{provider}\n{base_url}").into_bytes()
}
/// Adapters this build has. The relay issue adds Anthropic, Gemini and DashScope's native APIs.
pub const PROVIDERS: &[&str] = &["openai", "azure", "anthropic", "gemini", "dashscope"];
const MAX_KEYS: usize = 64;
const MAX_MODELS: usize = 512;

#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    id: i64,
    name: String,
    #[schema(example = "openai")]
    provider: String,
    base_url: String,
    api_version: Option<String>,
    /// What can be shown of the keys: `sk-…abcd`. The keys themselves are never returned.
    key_hints: Vec<String>,
    models: Vec<String>,
    model_map: BTreeMap<String, String>,
    priority: i64,
    weight: i64,
    rpm_limit: Option<i64>,
    #[schema(example = "enabled")]
    status: &'static str,
    status_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        let s = c.spec;
        ChannelView {
            id: c.id,
            name: s.name,
            provider: s.provider,
            base_url: s.base_url,
            api_version: s.api_version,
            key_hints: s.key_hints,
            models: s.models,
            model_map: s.model_map,
            priority: s.priority,
            weight: s.weight,
            rpm_limit: s.rpm_limit,
            status: s.status.as_str(),
            status_reason: s.status_reason,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChannelList {
    items: Vec<ChannelView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    name: String,
    /// `openai` (any OpenAI-compatible API: OpenAI, DeepSeek, DashScope compatible mode,
    /// Ollama, vLLM, ...) or `azure`.
    provider: String,
    #[schema(example = "https://api.openai.com/v1")]
    base_url: String,
    /// Azure's `api-version`.
    api_version: Option<String>,
    /// Provider API keys (none for keyless local servers).
    #[serde(default)]
    keys: Vec<String>,
    models: Vec<String>,
    /// Client model name → upstream model (or Azure deployment) name.
    #[serde(default)]
    model_map: BTreeMap<String, String>,
    #[serde(default)]
    priority: i64,
    #[serde(default = "default_weight")]
    weight: i64,
    rpm_limit: Option<i64>,
    #[serde(default = "default_enabled")]
    enabled: bool,
}

fn default_weight() -> i64 {
    1
}
fn default_enabled() -> bool {
    true
}

/// Absent fields stay; `keys` replaces every key when given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    name: Option<String>,
    provider: Option<String>,
    base_url: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<String>)]
    api_version: Option<Option<String>>,
    keys: Option<Vec<String>>,
    models: Option<Vec<String>>,
    model_map: Option<BTreeMap<String, String>>,
    priority: Option<i64>,
    weight: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    rpm_limit: Option<Option<i64>>,
    /// `true` enables (also an auto-disabled channel), `false` disables.
    enabled: Option<bool>,
}

/// `…abcd`: enough to tell keys apart, too little to matter (hints are stored in the
/// clear). Short keys show nothing.
pub fn hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 20 {
        return "…".into();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("…{tail}")
}

fn check_spec(errors: &mut Vec<FieldError>, s: &ChannelSpec, keys: Option<&[String]>) {
    if s.name.trim().is_empty() || s.name.chars().count() > 128 || s.name.chars().any(char::is_control) {
        errors.push(FieldError::new("name", "must be 1 to 128 characters"));
    }
    if !PROVIDERS.contains(&s.provider.as_str()) {
        errors.push(FieldError::new("provider", format!("must be one of {}", PROVIDERS.join(", "))));
    }
    match url::Url::parse(&s.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && s.base_url.len() <= 2048 => {
            // Credentials belong in `keys`, which are sealed; a URL is shown to every admin.
            if !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some() {
                errors.push(FieldError::new("base_url", "must not carry credentials, a query or a fragment"));
            }
        }
        _ => errors.push(FieldError::new("base_url", "must be an http(s) URL such as https://api.openai.com/v1")),
    }
    if s.provider == "azure" && s.api_version.is_none() {
        errors.push(FieldError::new("api_version", "is required for azure (such as 2024-10-21)"));
    }
    if s.api_version.as_ref().is_some_and(|v| v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_graphic()))
    {
        errors.push(FieldError::new("api_version", "must be 1 to 64 visible characters"));
    }
    if let Some(keys) = keys {
        if keys.len() > MAX_KEYS {
            errors.push(FieldError::new("keys", format!("must have at most {MAX_KEYS} entries")));
        }
        for (i, k) in keys.iter().enumerate() {
            if k.is_empty() || k.len() > 1024 || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.push(FieldError::new(format!("keys[{i}]"), "must be 1 to 1024 characters without spaces"));
            }
        }
    }
    if s.models.is_empty() || s.models.len() > MAX_MODELS {
        errors.push(FieldError::new("models", format!("must have 1 to {MAX_MODELS} entries")));
    }
    for (i, m) in s.models.iter().enumerate() {
        if m.is_empty() || m.len() > 128 || m.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(FieldError::new(format!("models[{i}]"), "must be a model name of 1 to 128 characters"));
        }
    }
    for (from, to) in &s.model_map {
        if !s.models.contains(from) {
            errors.push(FieldError::new(format!("model_map.{from}"), "maps a model the channel does not serve"));
        }
        if to.is_empty() || to.len() > 128 || to.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(FieldError::new(format!("model_map.{from}"), "must map to a name of 1 to 128 characters"));
        }
    }
    if !(-1000..=1000).contains(&s.priority) {
        errors.push(FieldError::new("priority", "must be -1000 to 1000"));
    }
    if !(0..=10_000).contains(&s.weight) {
        errors.push(FieldError::new("weight", "must be 0 to 10000"));
    }
    if s.rpm_limit.is_some_and(|r| r < 1) {
        errors.push(FieldError::new("rpm_limit", "must be at least 1"));
    }
}

fn seal_keys(state: &AppState, spec: &mut ChannelSpec, keys: &[String]) -> ApiResult<()> {
    let json = serde_json::to_vec(keys).map_err(crate::http::error::internal)?;
    spec.keys_ciphertext = state
        .master_key
        .seal(&json, &keys_purpose(&spec.provider, &spec.base_url))
        .map_err(crate::http::error::internal)?;
    spec.key_hints = keys.iter().map(|k| hint(k)).collect();
    Ok(())
}

/// The channel's provider keys in the clear, for the relay.
pub fn open_keys(
    master_key: &firefly_core::crypto::MasterKey,
    spec: &ChannelSpec,
) -> Result<Vec<String>, firefly_core::crypto::CryptoError> {
    let json = master_key.open(&spec.keys_ciphertext, &keys_purpose(&spec.provider, &spec.base_url))?;
    serde_json::from_slice(&json).map_err(|_| firefly_core::crypto::CryptoError::Malformed)
}

/// The change reaches this instance's routing at once (others within seconds).
async fn reload(state: &AppState) {
    if let Err(e) = state.relay.routes.reload().await {
        tracing::warn!(error = %e, "reloading the routing table failed; the periodic refresh will retry");
    }
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned))
}

/// List upstream channels.
#[utoipa::path(get, path = "/api/admin/channels", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = ChannelList), (status = 403, body = ErrorResponse)))]
pub async fn list_channels(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<ChannelList>> {
    Ok(Json(ChannelList { items: state.store.list_channels().await?.into_iter().map(Into::into).collect() }))
}

/// Create an upstream channel.
#[utoipa::path(post, path = "/api/admin/channels", tag = TAG, request_body = NewChannel, security(("bearer" = [])),
    responses((status = 201, body = ChannelView), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn create_channel(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Json(req): Json<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let mut spec = ChannelSpec {
        name: req.name.trim().to_owned(),
        provider: req.provider,
        base_url: req.base_url.trim_end_matches('/').to_owned(),
        api_version: req.api_version,
        keys_ciphertext: String::new(),
        key_hints: Vec::new(),
        models: req.models,
        model_map: req.model_map,
        priority: req.priority,
        weight: req.weight,
        rpm_limit: req.rpm_limit,
        status: if req.enabled { ChannelStatus::Enabled } else { ChannelStatus::Disabled },
        status_reason: None,
    };
    let mut errors = Vec::new();
    check_spec(&mut errors, &spec, Some(&req.keys));
    crate::accounts::validate::finish(errors)?;
    seal_keys(&state, &mut spec, &req.keys)?;
    let channel = state.store.create_channel(spec, now_ms()).await?;
    reload(&state).await;
    tracing::info!(admin_id = admin.user_id, channel_id = channel.id, "channel created");
    Ok((StatusCode::CREATED, Json(channel.into())))
}

/// One upstream channel.
#[utoipa::path(get, path = "/api/admin/channels/{id}", tag = TAG, params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorResponse)))]
pub async fn get_channel(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(state.store.channel(id).await?.ok_or(ErrorCode::NotFound)?.into()))
}

/// Change an upstream channel.
#[utoipa::path(patch, path = "/api/admin/channels/{id}", tag = TAG, params(("id" = i64, Path)), request_body = ChannelUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorResponse),
              (status = 409, body = ErrorResponse, description = "changed by someone else meanwhile; read it again"),
              (status = 422, body = ErrorResponse)))]
pub async fn update_channel(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    Json(req): Json<ChannelUpdate>,
) -> ApiResult<Json<ChannelView>> {
    let current = state.store.channel(id).await?.ok_or(ErrorCode::NotFound)?;
    let mut s = current.spec.clone();
    if let Some(name) = req.name {
        s.name = name.trim().to_owned();
    }
    if let Some(provider) = req.provider {
        s.provider = provider;
    }
    if let Some(url) = req.base_url {
        s.base_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(v) = req.api_version {
        s.api_version = v;
    }
    if let Some(models) = req.models {
        s.models = models;
    }
    if let Some(map) = req.model_map {
        s.model_map = map;
    }
    if let Some(p) = req.priority {
        s.priority = p;
    }
    if let Some(w) = req.weight {
        s.weight = w;
    }
    if let Some(r) = req.rpm_limit {
        s.rpm_limit = r;
    }
    if let Some(enabled) = req.enabled {
        s.status = if enabled { ChannelStatus::Enabled } else { ChannelStatus::Disabled };
        s.status_reason = None;
    }
    let mut errors = Vec::new();
    check_spec(&mut errors, &s, req.keys.as_deref());
    let moved = s.provider != current.spec.provider || host_of(&s.base_url) != host_of(&current.spec.base_url);
    if moved && req.keys.is_none() && !current.spec.key_hints.is_empty() {
        // Existing keys are never sent to a new destination: give them again.
        errors.push(FieldError::new("keys", "must be given again when the provider or the base URL's host changes"));
    }
    crate::accounts::validate::finish(errors)?;
    let keys = match req.keys {
        Some(keys) => keys,
        None => open_keys(&state.master_key, &current.spec).map_err(crate::http::error::internal)?,
    };
    seal_keys(&state, &mut s, &keys)?;
    let channel = match state.store.replace_channel(id, s, current.updated_at, now_ms()).await {
        Err(StoreError::Conflict(_)) => {
            return Err(
                Error::with_message(ErrorCode::Conflict, "The channel changed meanwhile; read it and retry.").into()
            )
        }
        other => other?.ok_or(ErrorCode::NotFound)?,
    };
    reload(&state).await;
    tracing::info!(admin_id = admin.user_id, channel_id = id, "channel updated");
    Ok(Json(channel.into()))
}

/// Delete an upstream channel.
#[utoipa::path(delete, path = "/api/admin/channels/{id}", tag = TAG, params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorResponse)))]
pub async fn delete_channel(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_channel(id).await? {
        return Err(ErrorCode::NotFound.into());
    }
    reload(&state).await;
    tracing::info!(admin_id = admin.user_id, channel_id = id, "channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn hints_show_little() {
        assert_eq!(hint("sk-proj-abcdefghijklmnop1234"), "…1234");
        assert_eq!(hint("short-key-0123456"), "…");
        assert_eq!(hint("密钥密钥密钥密钥密钥密钥密钥密钥ABCD"), "…ABCD");
    }
}
