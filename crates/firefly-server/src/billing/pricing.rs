//! Administrators' prices per model (credits per million tokens; per image, per million
//! characters of speech, per second of transcribed audio) and user groups with price
//! multipliers (basis points: 10 000 = 1×). A model without a price is never served (the
//! relay refuses it), and an endpoint whose unit a model has no price for is refused too:
//! a model priced only for images (token prices 0 and an image price) serves no chat.

use super::TAG;
use crate::accounts::{rfc3339, AdminUser};
use crate::http::{ApiResult, Json, Path};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use firefly_core::money::TokenPrice;
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{GroupPatch, ModelPrice, StoreError, UserGroup};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_PRICE: i64 = 1_000_000_000_000;
const MAX_MULTIPLIER_BP: i64 = 1_000_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    /// Credits per million input tokens.
    input_per_mtok: i64,
    /// Credits per million output tokens.
    output_per_mtok: i64,
    /// Credits per million cached input tokens; absent: billed as input.
    cached_input_per_mtok: Option<i64>,
    /// Credits per generated image; absent: not served for images.
    per_image: Option<i64>,
    /// Credits per million characters of speech input; absent: not served for speech.
    per_mchar: Option<i64>,
    /// Credits per second of transcribed audio (billed by the millisecond); absent: not
    /// served for transcription.
    per_second: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PriceView {
    model: String,
    input_per_mtok: i64,
    output_per_mtok: i64,
    cached_input_per_mtok: Option<i64>,
    per_image: Option<i64>,
    per_mchar: Option<i64>,
    per_second: Option<i64>,
    updated_at: String,
}

impl From<ModelPrice> for PriceView {
    fn from(p: ModelPrice) -> Self {
        PriceView {
            model: p.model,
            input_per_mtok: p.price.input_per_mtok,
            output_per_mtok: p.price.output_per_mtok,
            cached_input_per_mtok: p.price.cached_input_per_mtok,
            per_image: p.price.per_image,
            per_mchar: p.price.per_mchar,
            per_second: p.price.per_second,
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PriceList {
    items: Vec<PriceView>,
}

fn check_model(errors: &mut Vec<FieldError>, model: &str) {
    if model.is_empty() || model.len() > 128 || model.chars().any(|c| c.is_control() || c.is_whitespace()) {
        errors.push(FieldError::new("model", "must be 1 to 128 characters without spaces or control characters"));
    }
}

fn check_amount(errors: &mut Vec<FieldError>, field: &str, value: i64, max: i64) {
    if !(0..=max).contains(&value) {
        errors.push(FieldError::new(field, format!("must be 0 to {max}")));
    }
}

/// List model prices.
#[utoipa::path(get, path = "/api/admin/models", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = PriceList), (status = 403, body = ErrorResponse)))]
pub async fn list_prices(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<PriceList>> {
    let items = state.store.list_model_prices().await?.into_iter().map(Into::into).collect();
    Ok(Json(PriceList { items }))
}

/// Set a model's price.
#[utoipa::path(put, path = "/api/admin/models/{model}", tag = TAG,
    params(("model" = String, Path, description = "the model name clients ask for; percent-encode `/`")),
    request_body = PriceRequest, security(("bearer" = [])),
    responses((status = 200, body = PriceView), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn put_price(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(model): Path<String>,
    Json(req): Json<PriceRequest>,
) -> ApiResult<Json<PriceView>> {
    let mut errors = Vec::new();
    check_model(&mut errors, &model);
    check_amount(&mut errors, "input_per_mtok", req.input_per_mtok, MAX_PRICE);
    check_amount(&mut errors, "output_per_mtok", req.output_per_mtok, MAX_PRICE);
    let optional = [
        ("cached_input_per_mtok", req.cached_input_per_mtok),
        ("per_image", req.per_image),
        ("per_mchar", req.per_mchar),
        ("per_second", req.per_second),
    ];
    for (field, value) in optional {
        if let Some(value) = value {
            check_amount(&mut errors, field, value, MAX_PRICE);
        }
    }
    crate::accounts::validate::finish(errors)?;
    let price = ModelPrice {
        model,
        price: TokenPrice {
            input_per_mtok: req.input_per_mtok,
            output_per_mtok: req.output_per_mtok,
            cached_input_per_mtok: req.cached_input_per_mtok,
            per_image: req.per_image,
            per_mchar: req.per_mchar,
            per_second: req.per_second,
        },
        updated_at: now_ms(),
    };
    state.store.put_model_price(price.clone()).await?;
    state.relay.forget_prices();
    Ok(Json(price.into()))
}

/// Remove a model's price (the model is then refused).
#[utoipa::path(delete, path = "/api/admin/models/{model}", tag = TAG, params(("model" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "the model is no longer priced, so no longer served"), (status = 404, body = ErrorResponse)))]
pub async fn delete_price(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_model_price(&model).await? {
        return Err(ErrorCode::NotFound.into());
    }
    state.relay.forget_prices();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct GroupView {
    id: i64,
    name: String,
    /// Price multiplier in basis points: 10000 = 1×, 8000 = 20% off.
    multiplier_bp: i64,
    members: i64,
    created_at: String,
    updated_at: String,
}

impl From<UserGroup> for GroupView {
    fn from(g: UserGroup) -> Self {
        GroupView {
            id: g.id,
            name: g.name,
            multiplier_bp: g.multiplier_bp,
            members: g.members,
            created_at: rfc3339(g.created_at),
            updated_at: rfc3339(g.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct GroupList {
    items: Vec<GroupView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    #[schema(max_length = 64)]
    name: String,
    multiplier_bp: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupUpdate {
    name: Option<String>,
    multiplier_bp: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipUpdate {
    /// The group's id, or `null` for the default (1×).
    #[serde(deserialize_with = "crate::http::extract::present")]
    #[schema(value_type = Option<i64>)]
    group_id: Option<Option<i64>>,
}

fn group_conflict(e: StoreError) -> crate::http::ApiError {
    match e {
        StoreError::Conflict(_) => Error::with_message(ErrorCode::Conflict, "A group with this name exists.").into(),
        other => other.into(),
    }
}

/// List user groups.
#[utoipa::path(get, path = "/api/admin/groups", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = GroupList), (status = 403, body = ErrorResponse)))]
pub async fn list_groups(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<GroupList>> {
    Ok(Json(GroupList { items: state.store.list_groups().await?.into_iter().map(Into::into).collect() }))
}

/// Create a user group with a price multiplier.
#[utoipa::path(post, path = "/api/admin/groups", tag = TAG, request_body = NewGroup, security(("bearer" = [])),
    responses((status = 201, body = GroupView), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn create_group(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(req): Json<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let mut errors = Vec::new();
    let name = crate::accounts::validate::check_name(&mut errors, "name", &req.name);
    check_amount(&mut errors, "multiplier_bp", req.multiplier_bp, MAX_MULTIPLIER_BP);
    crate::accounts::validate::finish(errors)?;
    let group = state.store.create_group(&name, req.multiplier_bp, now_ms()).await.map_err(group_conflict)?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

/// Change a user group.
#[utoipa::path(patch, path = "/api/admin/groups/{id}", tag = TAG, params(("id" = i64, Path)), request_body = GroupUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse),
              (status = 422, body = ErrorResponse)))]
pub async fn update_group(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
    Json(req): Json<GroupUpdate>,
) -> ApiResult<Json<GroupView>> {
    let mut errors = Vec::new();
    let name = req.name.map(|n| crate::accounts::validate::check_name(&mut errors, "name", &n));
    if let Some(m) = req.multiplier_bp {
        check_amount(&mut errors, "multiplier_bp", m, MAX_MULTIPLIER_BP);
    }
    crate::accounts::validate::finish(errors)?;
    let patch = GroupPatch { name, multiplier_bp: req.multiplier_bp };
    let group =
        state.store.update_group(id, patch, now_ms()).await.map_err(group_conflict)?.ok_or(ErrorCode::NotFound)?;
    state.relay.forget_prices();
    Ok(Json(group.into()))
}

/// Delete a user group.
#[utoipa::path(delete, path = "/api/admin/groups/{id}", tag = TAG, params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 204, description = "deleted; its members pay the default price"), (status = 404, body = ErrorResponse)))]
pub async fn delete_group(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_group(id).await? {
        return Err(ErrorCode::NotFound.into());
    }
    state.relay.forget_prices();
    Ok(StatusCode::NO_CONTENT)
}

/// Set a user's group.
#[utoipa::path(put, path = "/api/admin/users/{id}/group", tag = TAG, params(("id" = i64, Path)), request_body = MembershipUpdate,
    security(("bearer" = [])),
    responses((status = 204, description = "the user's group is set"), (status = 404, body = ErrorResponse, description = "no such user or group")))]
pub async fn set_user_group(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
    Json(req): Json<MembershipUpdate>,
) -> ApiResult<StatusCode> {
    let Some(group_id) = req.group_id else {
        return Err(Error::field("group_id", "is required (a group id, or null for the default)").into());
    };
    if !state.store.set_user_group(id, group_id).await? {
        return Err(ErrorCode::NotFound.into());
    }
    state.relay.forget_prices();
    Ok(StatusCode::NO_CONTENT)
}
