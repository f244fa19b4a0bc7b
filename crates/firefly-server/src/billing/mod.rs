//! Credits: balance, ledger, redemption — and the administrators' grants, adjustments
//! and code batches. Every balance change is one ledger row with an idempotency key.

pub mod admin;
pub mod codes;
pub mod pricing;

use crate::accounts::{rfc3339, AuthUser};
use crate::http::{ApiError, ApiResult, ClientIp, Json, Query};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode, FieldError};
use firefly_store::{LedgerEntry, RedeemOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "billing";

#[derive(Serialize, ToSchema)]
pub struct Balance {
    /// Credits available.
    balance: i64,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerView {
    id: i64,
    #[schema(example = "grant")]
    kind: &'static str,
    /// Signed: positive adds credits, negative spends them.
    amount: i64,
    balance_after: i64,
    reference: Option<String>,
    note: Option<String>,
    created_at: String,
}

impl From<LedgerEntry> for LedgerView {
    fn from(e: LedgerEntry) -> Self {
        LedgerView {
            id: e.id,
            kind: e.kind.as_str(),
            amount: e.amount,
            balance_after: e.balance_after,
            reference: e.reference,
            note: e.note,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LedgerPage {
    items: Vec<LedgerView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Only rows older than this id.
    before: Option<i64>,
    /// 1 to 200, default 50.
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    #[schema(example = "FF-7K2QD-9XW4M-TB3NH-8R6PC")]
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct Redeemed {
    credited: i64,
    balance: i64,
    entry: LedgerView,
}

/// Your credit balance.
#[utoipa::path(get, path = "/api/billing/balance", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Balance), (status = 401, body = ErrorResponse)))]
pub async fn balance(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Balance>> {
    Ok(Json(Balance { balance: state.store.balance(user.user_id).await? }))
}

/// Your ledger, newest first.
#[utoipa::path(get, path = "/api/billing/ledger", tag = TAG, params(LedgerQuery), security(("bearer" = [])),
    responses((status = 200, body = LedgerPage), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn ledger(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Json<LedgerPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::field("limit", "must be 1 to 200").into());
    }
    let rows = state.store.list_ledger(user.user_id, q.before, limit).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|e| e.id)).flatten();
    Ok(Json(LedgerPage { items: rows.into_iter().map(Into::into).collect(), next_before }))
}

/// Redeem a code for credits.
#[utoipa::path(post, path = "/api/billing/redeem", tag = TAG, request_body = RedeemRequest, security(("bearer" = [])),
    responses((status = 200, body = Redeemed),
              (status = 404, body = ErrorResponse, description = "billing.code_invalid: no such code"),
              (status = 409, body = ErrorResponse, description = "billing.code_redeemed or billing.code_expired"),
              (status = 429, body = ErrorResponse, description = "too many attempts, with Retry-After")))]
pub async fn redeem(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Json(req): Json<RedeemRequest>,
) -> ApiResult<Json<Redeemed>> {
    // Every attempt, good or bad, spends the guessing budget of the account and the address.
    state.redeem_limiter.check(ip, &user.user_id.to_string()).map_err(|secs| ApiError(Error::rate_limited(secs)))?;
    let Some(code) = codes::normalize(&req.code) else {
        return Err(Error::fields(vec![FieldError::new("code", "must look like FF-XXXXX-XXXXX-XXXXX-XXXXX")]).into());
    };
    match state.store.redeem_code(&codes::hash(&code), user.user_id, now_ms()).await? {
        RedeemOutcome::Redeemed(entry) => {
            state.relay.credits.observe(&entry);
            Ok(Json(Redeemed { credited: entry.amount, balance: entry.balance_after, entry: entry.into() }))
        }
        RedeemOutcome::NotFound => Err(ErrorCode::CodeInvalid.into()),
        RedeemOutcome::AlreadyRedeemed => Err(ErrorCode::CodeRedeemed.into()),
        RedeemOutcome::Expired => Err(ErrorCode::CodeExpired.into()),
    }
}
