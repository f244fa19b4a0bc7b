//! Administrators' side of credits: grants and adjustments to a user's balance, and
//! batches of redemption codes.

use super::{codes, LedgerView, TAG};
use crate::accounts::{rfc3339, AdminUser};
use crate::http::{ApiResult, Json, Path, Query};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{
    LedgerKind, LedgerOutcome, NewLedgerEntry, NewRedemptionBatch, NewRedemptionCode, RedemptionBatch, StoreError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const MAX_CODES_PER_BATCH: i64 = 10_000;
/// Largest single grant or adjustment: keeps every balance far from `i64` overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditChange {
    /// `grant` (positive amounts) or `adjust` (either sign; may take the balance below zero).
    #[schema(example = "grant")]
    kind: String,
    amount: i64,
    #[schema(max_length = 500)]
    note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreditChanged {
    /// False when the `Idempotency-Key` was used before: `entry` is the original row.
    applied: bool,
    entry: LedgerView,
}

/// Grant or adjust a user's credits.
#[utoipa::path(post, path = "/api/admin/users/{id}/credits", tag = TAG, params(("id" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat a request safely: the same key applies once")),
    request_body = CreditChange, security(("bearer" = [])),
    responses((status = 201, body = CreditChanged), (status = 200, body = CreditChanged, description = "a repeated Idempotency-Key"),
              (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn change_credits(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(req): Json<CreditChange>,
) -> ApiResult<(StatusCode, Json<CreditChanged>)> {
    let mut errors = Vec::new();
    let kind = match req.kind.as_str() {
        "grant" => Some(LedgerKind::Grant),
        "adjust" => Some(LedgerKind::Adjust),
        _ => {
            errors.push(FieldError::new("kind", "must be `grant` or `adjust`"));
            None
        }
    };
    if kind == Some(LedgerKind::Grant) && req.amount <= 0 {
        errors.push(FieldError::new("amount", "a grant must be positive"));
    }
    if req.amount == 0 || req.amount.unsigned_abs() > MAX_AMOUNT as u64 {
        errors.push(FieldError::new("amount", format!("must be non-zero and at most {MAX_AMOUNT} in size")));
    }
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        errors.push(FieldError::new("note", "must be at most 500 characters"));
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.is_empty() && k.len() <= 128 => Some(k.to_owned()),
        Some(_) => {
            errors.push(FieldError::new("Idempotency-Key", "must be 1 to 128 visible ASCII characters"));
            None
        }
        None => None,
    };
    crate::accounts::validate::finish(errors)?;
    let kind = kind.unwrap_or(LedgerKind::Adjust);
    state.store.user_by_id(id).await?.ok_or(ErrorCode::NotFound)?;
    // A client's key is scoped to the administrator and the target, so keys cannot collide
    // across people; without one, every request is new.
    let idempotency_key = match key {
        Some(k) => format!("admin:{}:{id}:{k}", admin.user_id),
        None => format!("admin:{}:{}", admin.user_id, crate::accounts::tokens::random_token("", 16)),
    };
    let entry = NewLedgerEntry {
        user_id: id,
        kind,
        amount: req.amount,
        idempotency_key,
        reference: None,
        note: req.note,
        actor_id: Some(admin.user_id),
        now: now_ms(),
    };
    match state.store.append_ledger(entry, kind == LedgerKind::Adjust).await? {
        LedgerOutcome::Applied(e) => {
            state.relay.credits.observe(&e);
            tracing::info!(
                admin_id = admin.user_id,
                user_id = id,
                amount = e.amount,
                kind = e.kind.as_str(),
                "credits changed"
            );
            Ok((StatusCode::CREATED, Json(CreditChanged { applied: true, entry: e.into() })))
        }
        LedgerOutcome::Duplicate(e) => Ok((StatusCode::OK, Json(CreditChanged { applied: false, entry: e.into() }))),
        LedgerOutcome::KeyConflict => {
            Err(Error::with_message(ErrorCode::Conflict, "The Idempotency-Key was used for another request.").into())
        }
        LedgerOutcome::Insufficient { .. } => {
            Err(Error::with_message(ErrorCode::Conflict, "A grant cannot reduce a balance.").into())
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    #[schema(max_length = 64)]
    name: String,
    /// Credits each code gives.
    amount: i64,
    /// How many codes, 1 to 10000.
    count: i64,
    /// RFC 3339 time after which the codes no longer redeem.
    expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchView {
    id: i64,
    name: String,
    amount: i64,
    count: i64,
    redeemed: i64,
    expires_at: Option<String>,
    created_by: i64,
    created_at: String,
}

impl From<RedemptionBatch> for BatchView {
    fn from(b: RedemptionBatch) -> Self {
        BatchView {
            id: b.id,
            name: b.name,
            amount: b.amount,
            count: b.count,
            redeemed: b.redeemed,
            expires_at: b.expires_at.map(rfc3339),
            created_by: b.created_by,
            created_at: rfc3339(b.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedBatch {
    batch: BatchView,
    /// The codes themselves, shown only in this response.
    codes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchPage {
    items: Vec<BatchView>,
    total: i64,
    page: i64,
    per_page: i64,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    page: Option<i64>,
    per_page: Option<i64>,
}

/// Create a batch of redemption codes.
#[utoipa::path(post, path = "/api/admin/redemption-codes", tag = TAG, request_body = NewBatch, security(("bearer" = [])),
    responses((status = 201, body = CreatedBatch), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn create_batch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Json(req): Json<NewBatch>,
) -> ApiResult<(StatusCode, Json<CreatedBatch>)> {
    let now = now_ms();
    let mut errors = Vec::new();
    let name = crate::accounts::validate::check_name(&mut errors, "name", &req.name);
    if !(1..=MAX_AMOUNT).contains(&req.amount) {
        errors.push(FieldError::new("amount", format!("must be 1 to {MAX_AMOUNT}")));
    }
    if !(1..=MAX_CODES_PER_BATCH).contains(&req.count) {
        errors.push(FieldError::new("count", format!("must be 1 to {MAX_CODES_PER_BATCH}")));
    }
    let expires_at = match req.expires_at.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) if t.timestamp_millis() > now => Some(t.timestamp_millis()),
        Some(_) => {
            errors.push(FieldError::new("expires_at", "must be an RFC 3339 time in the future"));
            None
        }
    };
    crate::accounts::validate::finish(errors)?;
    let plain: Vec<String> = (0..req.count).map(|_| codes::generate()).collect();
    let hashed = plain
        .iter()
        .map(|c| NewRedemptionCode {
            code_hash: codes::hash(&codes::normalize(c).unwrap_or_default()),
            prefix: codes::prefix(c),
        })
        .collect();
    let batch = NewRedemptionBatch { name, amount: req.amount, expires_at, created_by: admin.user_id, now };
    let batch = match state.store.create_redemption_batch(batch, hashed).await {
        // 100 random bits per code: a collision is a broken random source, not bad luck.
        Err(StoreError::Conflict(_)) => return Err(crate::http::error::internal("redemption code collision")),
        other => other?,
    };
    tracing::info!(
        admin_id = admin.user_id,
        batch_id = batch.id,
        count = batch.count,
        amount = batch.amount,
        "redemption codes created"
    );
    Ok((StatusCode::CREATED, Json(CreatedBatch { batch: batch.into(), codes: plain })))
}

/// List redemption-code batches.
#[utoipa::path(get, path = "/api/admin/redemption-codes", tag = TAG, params(BatchQuery), security(("bearer" = [])),
    responses((status = 200, body = BatchPage), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn list_batches(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<BatchQuery>,
) -> ApiResult<Json<BatchPage>> {
    let (page, per_page) = (q.page.unwrap_or(1), q.per_page.unwrap_or(20));
    let mut errors = Vec::new();
    if page < 1 {
        errors.push(FieldError::new("page", "must be at least 1"));
    }
    if !(1..=100).contains(&per_page) {
        errors.push(FieldError::new("per_page", "must be 1 to 100"));
    }
    crate::accounts::validate::finish(errors)?;
    let result = state.store.list_redemption_batches(per_page, (page - 1).saturating_mul(per_page)).await?;
    Ok(Json(BatchPage {
        items: result.items.into_iter().map(Into::into).collect(),
        total: result.total,
        page,
        per_page,
    }))
}
