//! What every sqlx backend shares: error mapping, fallible column access, and the row
//! types with their conversion into store models. The SQL text itself stays in each
//! backend's crate, side by side with the other backends' (CONVENTIONS.md, "Data").

use crate::{
    decode_list, ApiKey, ApiKeyAuth, Channel, ChannelSpec, ChannelStatus, LedgerEntry, LedgerKind, ModelPrice,
    NewLedgerEntry, RedemptionBatch, Role, StoreError, StoreResult, UsageDay, UsageLog, UsageRecord, User, UserGroup,
    UserStatus,
};
use sqlx::{ColumnIndex, Database, Decode, FromRow, Row, Type};
use std::collections::BTreeMap;

pub fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// A unique-constraint violation as `Conflict(what)`; any other error as it is.
pub fn conflict_or(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => db_err(e),
    }
}

/// Column `i` of a row, with a decoding error as a store error rather than a panic.
pub fn col<'r, R: Row, T>(row: &'r R, i: impl ColumnIndex<R>) -> StoreResult<T>
where
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(i).map_err(db_err)
}

pub fn role(s: String) -> StoreResult<Role> {
    Role::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("role {s:?}")))
}

pub fn status(s: String) -> StoreResult<UserStatus> {
    UserStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("status {s:?}")))
}

/// `users` as selected by each backend's `user_columns!()`.
#[derive(FromRow)]
pub struct UserRow {
    id: i64,
    email: String,
    display_name: String,
    password_hash: String,
    role: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            id: r.id,
            email: r.email,
            display_name: r.display_name,
            password_hash: r.password_hash,
            role: role(r.role)?,
            status: status(r.status)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// `api_keys k` as selected by each backend's `key_columns!()`.
#[derive(FromRow)]
pub struct ApiKeyRow {
    id: i64,
    user_id: i64,
    name: String,
    prefix: String,
    enabled: bool,
    expires_at: Option<i64>,
    models: String,
    ip_allow: String,
    credit_limit: Option<i64>,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    concurrency_limit: Option<i64>,
    credits_used: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            prefix: r.prefix,
            enabled: r.enabled,
            expires_at: r.expires_at,
            models: decode_list(&r.models)?,
            ip_allow: decode_list(&r.ip_allow)?,
            credit_limit: r.credit_limit,
            rpm_limit: r.rpm_limit,
            tpm_limit: r.tpm_limit,
            concurrency_limit: r.concurrency_limit,
            credits_used: r.credits_used,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A key row followed by its owner's `user_status` and `user_role` columns.
pub fn key_auth<R: Row>(row: &R) -> StoreResult<ApiKeyAuth>
where
    for<'r> ApiKeyRow: FromRow<'r, R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    &'static str: ColumnIndex<R>,
    R::Database: Database,
{
    let key = ApiKeyRow::from_row(row).map_err(db_err)?.try_into()?;
    Ok(ApiKeyAuth { key, user_status: status(col(row, "user_status")?)?, user_role: role(col(row, "user_role")?)? })
}

/// `ledger` as selected by each backend's `ledger_columns!()`.
#[derive(FromRow)]
pub struct LedgerRow {
    id: i64,
    user_id: i64,
    kind: String,
    amount: i64,
    balance_after: i64,
    idempotency_key: String,
    reference: Option<String>,
    note: Option<String>,
    actor_id: Option<i64>,
    created_at: i64,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = StoreError;
    fn try_from(r: LedgerRow) -> StoreResult<LedgerEntry> {
        Ok(LedgerEntry {
            id: r.id,
            user_id: r.user_id,
            kind: LedgerKind::parse(&r.kind).ok_or_else(|| StoreError::Corrupt(format!("ledger kind {:?}", r.kind)))?,
            amount: r.amount,
            balance_after: r.balance_after,
            idempotency_key: r.idempotency_key,
            reference: r.reference,
            note: r.note,
            actor_id: r.actor_id,
            created_at: r.created_at,
        })
    }
}

/// `redemption_batches b` with a `redeemed` count, as selected by `batch_columns!()`.
#[derive(FromRow)]
pub struct BatchRow {
    id: i64,
    name: String,
    amount: i64,
    count: i64,
    redeemed: i64,
    expires_at: Option<i64>,
    created_by: i64,
    created_at: i64,
}

impl From<BatchRow> for RedemptionBatch {
    fn from(r: BatchRow) -> RedemptionBatch {
        RedemptionBatch {
            id: r.id,
            name: r.name,
            amount: r.amount,
            count: r.count,
            redeemed: r.redeemed,
            expires_at: r.expires_at,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

/// The balance after applying `amount` to `balance`, or why not: `Err(None)` on overflow,
/// `Err(Some(balance))` when a debit would go below zero and that is not allowed.
pub fn next_balance(balance: i64, amount: i64, allow_negative: bool) -> Result<i64, Option<i64>> {
    let after = balance.checked_add(amount).ok_or(None)?;
    if amount < 0 && after < 0 && !allow_negative {
        return Err(Some(balance));
    }
    Ok(after)
}

/// `model_prices` as selected by each backend's `price_columns!()`.
#[derive(FromRow)]
pub struct PriceRow {
    model: String,
    input_per_mtok: i64,
    output_per_mtok: i64,
    cached_input_per_mtok: Option<i64>,
    per_image: Option<i64>,
    per_mchar: Option<i64>,
    per_second: Option<i64>,
    updated_at: i64,
}

impl From<PriceRow> for ModelPrice {
    fn from(r: PriceRow) -> ModelPrice {
        ModelPrice {
            model: r.model,
            price: firefly_core::money::TokenPrice {
                input_per_mtok: r.input_per_mtok,
                output_per_mtok: r.output_per_mtok,
                cached_input_per_mtok: r.cached_input_per_mtok,
                per_image: r.per_image,
                per_mchar: r.per_mchar,
                per_second: r.per_second,
            },
            updated_at: r.updated_at,
        }
    }
}

/// `user_groups g` with a `members` count, as selected by `group_columns!()`.
#[derive(FromRow)]
pub struct GroupRow {
    id: i64,
    name: String,
    multiplier_bp: i64,
    members: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<GroupRow> for UserGroup {
    fn from(r: GroupRow) -> UserGroup {
        UserGroup {
            id: r.id,
            name: r.name,
            multiplier_bp: r.multiplier_bp,
            members: r.members,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `channels` as selected by each backend's `channel_columns!()`.
#[derive(FromRow)]
pub struct ChannelRow {
    id: i64,
    name: String,
    provider: String,
    base_url: String,
    api_version: Option<String>,
    keys_ciphertext: String,
    key_hints: String,
    models: String,
    model_map: String,
    priority: i64,
    weight: i64,
    rpm_limit: Option<i64>,
    status: String,
    status_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ChannelRow> for Channel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> StoreResult<Channel> {
        Ok(Channel {
            id: r.id,
            spec: ChannelSpec {
                name: r.name,
                provider: r.provider,
                base_url: r.base_url,
                api_version: r.api_version,
                keys_ciphertext: r.keys_ciphertext,
                key_hints: decode_list(&r.key_hints)?,
                models: decode_list(&r.models)?,
                model_map: crate::decode_map(&r.model_map)?,
                priority: r.priority,
                weight: r.weight,
                rpm_limit: r.rpm_limit,
                status: ChannelStatus::parse(&r.status)
                    .ok_or_else(|| StoreError::Corrupt(format!("channel status {:?}", r.status)))?,
                status_reason: r.status_reason,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// `usage_logs` as selected by each backend's `usage_log_columns!()`.
#[derive(FromRow)]
pub struct UsageLogRow {
    id: i64,
    request_id: String,
    user_id: i64,
    api_key_id: Option<i64>,
    channel_id: Option<i64>,
    endpoint: String,
    model: String,
    stream: bool,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    credits: i64,
    latency_ms: i64,
    first_token_ms: Option<i64>,
    status: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: i64,
}

impl From<UsageLogRow> for UsageLog {
    fn from(r: UsageLogRow) -> UsageLog {
        UsageLog {
            id: r.id,
            request_id: r.request_id,
            user_id: r.user_id,
            api_key_id: r.api_key_id,
            channel_id: r.channel_id,
            endpoint: r.endpoint,
            model: r.model,
            stream: r.stream,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            credits: r.credits,
            latency_ms: r.latency_ms,
            first_token_ms: r.first_token_ms,
            status: r.status,
            error_code: r.error_code,
            error_message: r.error_message,
            created_at: r.created_at,
        }
    }
}

/// A `usage_daily` row (or a sum of them), as selected by each backend's `usage_days`.
#[derive(FromRow)]
pub struct UsageDayRow {
    day: i64,
    model: String,
    requests: i64,
    failures: i64,
    input_tokens: i64,
    output_tokens: i64,
    credits: i64,
}

impl From<UsageDayRow> for UsageDay {
    fn from(r: UsageDayRow) -> UsageDay {
        UsageDay {
            day: r.day,
            model: r.model,
            requests: r.requests,
            failures: r.failures,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            credits: r.credits,
        }
    }
}

/// The ledger row that charges `amount` (> 0) for a usage record: keyed by its request
/// id, so writing the record again finds the row instead of charging twice.
pub fn usage_charge(r: &UsageRecord, amount: i64) -> NewLedgerEntry {
    NewLedgerEntry {
        user_id: r.user_id,
        kind: LedgerKind::Charge,
        amount: -amount,
        idempotency_key: usage_charge_key(&r.request_id),
        reference: Some(r.request_id.clone()),
        note: None,
        actor_id: None,
        now: r.created_at,
    }
}

pub fn usage_charge_key(request_id: &str) -> String {
    format!("charge:{request_id}")
}

/// What a record that was written before reports: the charge it made, if `existing` (the
/// row under its charge key) is this user's charge; nothing is disclosed of a row that
/// is not.
pub fn usage_already_written(r: &UsageRecord, existing: Option<LedgerEntry>) -> crate::RecordedUsage {
    let ledger = existing.filter(|e| e.user_id == r.user_id && e.kind == LedgerKind::Charge);
    crate::RecordedUsage { charged: ledger.as_ref().map_or(0, |e| -e.amount), ledger, applied: false }
}

/// A batch's positions in the order a backend writes them: by user, and in batch order
/// within a user. Every writer then takes per-user row locks in ascending user order and
/// two concurrent batches cannot deadlock on them; within a user, the balance is spent in
/// the batch's order.
pub fn usage_write_order(batch: &[UsageRecord]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| batch[i].user_id);
    order
}

/// Credit holds of one user released together, summed: what comes off the user's
/// `balances.held` and off each of its keys' `credits_held` (keys in id order).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReleasedHolds {
    pub count: u64,
    pub amount: i64,
    pub keys: BTreeMap<i64, i64>,
}

impl ReleasedHolds {
    pub fn add(&mut self, api_key_id: Option<i64>, amount: i64) -> StoreResult<()> {
        let overflow = || StoreError::Corrupt("held credits overflow".into());
        self.count += 1;
        self.amount = self.amount.checked_add(amount).ok_or_else(overflow)?;
        if let Some(key) = api_key_id {
            let held = self.keys.entry(key).or_default();
            *held = held.checked_add(amount).ok_or_else(overflow)?;
        }
        Ok(())
    }
}
