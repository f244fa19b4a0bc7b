//! Usage: one row per relayed request (the API call log), daily rollups kept as rows are
//! written, and the request's charge — all written together by the relay's batched writer.
//!
//! A batch is all or nothing: when `record_usage` fails, nothing of it was written, and
//! writing it again is safe. Besides database errors it fails with `Conflict("charge")`
//! when a request's charge key was taken by a concurrent writer other than
//! `record_usage`, and on a text longer than [`UsageRecord`] allows (every backend
//! refuses it alike).

use crate::LedgerEntry;
use firefly_core::time::Millis;

/// Milliseconds in a UTC day: rollups are keyed by `created_at / DAY_MS`.
pub const DAY_MS: i64 = 86_400_000;

/// What the relay records for one request once it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// Unique per request: the ledger charge's idempotency key is `charge:{request_id}`,
    /// and a record whose request id was already written is skipped entirely, uncharged.
    /// So it must be an id the server chose, never one a client sent (such as its
    /// `x-request-id`): a client repeating an id would not be charged again. Unique
    /// across users. At most 128 characters.
    pub request_id: String,
    pub user_id: i64,
    pub api_key_id: Option<i64>,
    /// The channel that answered (or last failed); `None` when none was tried.
    pub channel_id: Option<i64>,
    /// `chat.completions` or `embeddings`. At most 64 characters.
    pub endpoint: String,
    /// The model the client asked for. At most 191 characters: a longer name (which no
    /// channel serves) must be shortened by the caller.
    pub model: String,
    pub stream: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Input tokens served from the upstream's prompt cache (part of `input_tokens`).
    pub cached_tokens: i64,
    /// Credits to charge, ≥ 0; 0 writes no ledger row.
    pub credits: i64,
    pub latency_ms: i64,
    /// Time to the first byte of the answer (streams: the first event).
    pub first_token_ms: Option<i64>,
    /// The HTTP status the client got (499: the client went away first).
    pub status: i64,
    /// At most 128 characters.
    pub error_code: Option<String>,
    /// At most 16,000 characters: truncate an upstream's message first.
    pub error_message: Option<String>,
    /// Also the charge's ledger time; its UTC day (`created_at / DAY_MS`) keys the rollup.
    pub created_at: Millis,
    /// The request's credit hold ([`crate::CreditStore`]), released in the transaction
    /// that charges the record, before the charge; also when the record was written
    /// before, and quietly when the hold is gone already. Only a hold of `user_id` is
    /// released.
    pub hold_id: Option<String>,
}

/// What writing one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUsage {
    /// Credits really charged: `credits`, or less when the balance could not cover it
    /// (the charge is clamped to the balance; spend never exceeds it).
    pub charged: i64,
    /// The charge's ledger row; `None` when nothing was charged. For a record written
    /// before (same request id), the earlier row.
    pub ledger: Option<LedgerEntry>,
    /// False when the request id had been written before and nothing changed.
    pub applied: bool,
}

/// A row of the API call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLog {
    pub id: i64,
    pub request_id: String,
    pub user_id: i64,
    pub api_key_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub endpoint: String,
    pub model: String,
    pub stream: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    /// Credits charged (after clamping).
    pub credits: i64,
    pub latency_ms: i64,
    pub first_token_ms: Option<i64>,
    pub status: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: Millis,
}

/// Filters for the call log; every field narrows, `None` leaves it open. Newest first.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub model: Option<String>,
    /// `Some(true)`: only status ≥ 400; `Some(false)`: only status < 400.
    pub failed: Option<bool>,
    /// `created_at >= from`.
    pub from: Option<Millis>,
    /// `created_at < to`.
    pub to: Option<Millis>,
    /// Keyset paging: rows with `id < before`.
    pub before: Option<i64>,
    pub limit: i64,
}

/// One rollup row: a day's totals for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub model: String,
    pub requests: i64,
    /// Requests answered with status ≥ 400.
    pub failures: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub credits: i64,
}
