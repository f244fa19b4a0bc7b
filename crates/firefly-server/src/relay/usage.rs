//! The API call log and usage statistics (seeds 003 and 004): `GET /api/usage/logs`
//! (your requests), `GET /api/admin/usage/logs` (everyone's) and `GET /api/usage/stats`
//! (per-day and per-model totals), answered from the daily rollups the usage writer keeps,
//! so the answer does not slow down as the log grows. Old raw rows are pruned after
//! `relay.usage_retention_days`; the rollups stay.

use crate::accounts::{rfc3339, AdminUser, AuthUser};
use crate::http::{ApiResult, Json, Query};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use chrono::NaiveDate;
use firefly_core::time::{now_ms, Millis};
use firefly_core::{Error, FieldError};
use firefly_store::{UsageDay, UsageLog, UsageQuery, DAY_MS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "usage";
const MAX_STATS_DAYS: i64 = 366;

#[derive(Serialize, ToSchema)]
pub struct UsageLogView {
    id: i64,
    request_id: String,
    /// Present in the administrators' view.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<i64>,
    api_key_id: Option<i64>,
    /// Present in the administrators' view.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<i64>,
    #[schema(example = "chat.completions")]
    endpoint: String,
    model: String,
    stream: bool,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    credits: i64,
    latency_ms: i64,
    first_token_ms: Option<i64>,
    /// The HTTP status the client got; 499: the client left first.
    status: i64,
    error_code: Option<String>,
    error_message: Option<String>,
    created_at: String,
}

impl UsageLogView {
    fn new(l: UsageLog, admin: bool) -> Self {
        UsageLogView {
            id: l.id,
            request_id: l.request_id,
            user_id: admin.then_some(l.user_id),
            api_key_id: l.api_key_id,
            channel_id: if admin { l.channel_id } else { None },
            endpoint: l.endpoint,
            model: l.model,
            stream: l.stream,
            input_tokens: l.input_tokens,
            output_tokens: l.output_tokens,
            cached_tokens: l.cached_tokens,
            credits: l.credits,
            latency_ms: l.latency_ms,
            first_token_ms: l.first_token_ms,
            status: l.status,
            error_code: l.error_code,
            error_message: l.error_message,
            created_at: rfc3339(l.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsageLogPage {
    items: Vec<UsageLogView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this model.
    model: Option<String>,
    /// Only requests made with this key.
    api_key_id: Option<i64>,
    /// `ok` (status below 400) or `error`.
    status: Option<String>,
    /// Only requests at or after this time (RFC 3339).
    from: Option<String>,
    /// Only requests before this time (RFC 3339).
    to: Option<String>,
    /// Only rows older than this id (paging).
    before: Option<i64>,
    /// 1 to 200, default 50.
    limit: Option<i64>,
    /// Administrators only: one user's rows.
    user_id: Option<i64>,
}

fn time(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Millis> {
    let v = value?;
    match chrono::DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(t.timestamp_millis()),
        Err(_) => {
            errors.push(FieldError::new(field, "must be an RFC 3339 time such as 2026-01-31T00:00:00Z"));
            None
        }
    }
}

fn query(q: LogQuery, user_id: Option<i64>) -> ApiResult<UsageQuery> {
    let mut errors = Vec::new();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        errors.push(FieldError::new("limit", "must be 1 to 200"));
    }
    let failed = match q.status.as_deref() {
        None => None,
        Some("ok") => Some(false),
        Some("error") => Some(true),
        Some(_) => {
            errors.push(FieldError::new("status", "must be ok or error"));
            None
        }
    };
    let from = time("from", q.from.as_deref(), &mut errors);
    let to = time("to", q.to.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(Error::fields(errors).into());
    }
    Ok(UsageQuery { user_id, api_key_id: q.api_key_id, model: q.model, failed, from, to, before: q.before, limit })
}

async fn page(state: &AppState, query: UsageQuery, admin: bool) -> ApiResult<Json<UsageLogPage>> {
    let limit = query.limit;
    let rows = state.store.list_usage_logs(&query).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id)).flatten();
    Ok(Json(UsageLogPage { items: rows.into_iter().map(|l| UsageLogView::new(l, admin)).collect(), next_before }))
}

/// Your API call log, newest first.
#[utoipa::path(get, path = "/api/usage/logs", tag = TAG, params(LogQuery), security(("bearer" = [])),
    responses((status = 200, body = UsageLogPage), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn my_logs(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<UsageLogPage>> {
    if q.user_id.is_some() {
        return Err(Error::field("user_id", "only administrators may filter by user").into());
    }
    page(&state, query(q, Some(user.user_id))?, false).await
}

/// Everyone's API call log, newest first.
#[utoipa::path(get, path = "/api/admin/usage/logs", tag = TAG, params(LogQuery), security(("bearer" = [])),
    responses((status = 200, body = UsageLogPage), (status = 403, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn all_logs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<UsageLogPage>> {
    let user = q.user_id;
    page(&state, query(q, user)?, true).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// First day (UTC, `YYYY-MM-DD`); default 29 days before `to`.
    from: Option<String>,
    /// Last day, included (UTC, `YYYY-MM-DD`); default today.
    to: Option<String>,
}

#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Totals {
    requests: i64,
    failures: i64,
    input_tokens: i64,
    output_tokens: i64,
    credits: i64,
}

impl Totals {
    fn add(&mut self, d: &UsageDay) {
        self.requests += d.requests;
        self.failures += d.failures;
        self.input_tokens += d.input_tokens;
        self.output_tokens += d.output_tokens;
        self.credits += d.credits;
    }
}

#[derive(Serialize, ToSchema)]
pub struct DayTotals {
    #[schema(example = "2026-11-21")]
    date: String,
    #[serde(flatten)]
    totals: Totals,
}

#[derive(Serialize, ToSchema)]
pub struct ModelTotals {
    model: String,
    #[serde(flatten)]
    totals: Totals,
}

#[derive(Serialize, ToSchema)]
pub struct UsageStats {
    from: String,
    to: String,
    /// Every day of the range, oldest first (days without requests are zeros).
    days: Vec<DayTotals>,
    /// Per model over the range, most credits first.
    models: Vec<ModelTotals>,
    total: Totals,
}

fn day_of(field: &str, v: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => Some(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis().div_euclid(DAY_MS)),
        Err(_) => {
            errors.push(FieldError::new(field, "must be a date such as 2026-01-31"));
            None
        }
    }
}

fn date(day: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Your usage per day and per model.
#[utoipa::path(get, path = "/api/usage/stats", tag = TAG, params(StatsQuery), security(("bearer" = [])),
    responses((status = 200, body = UsageStats), (status = 401, body = ErrorResponse), (status = 422, body = ErrorResponse)))]
pub async fn stats(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<UsageStats>> {
    let mut errors = Vec::new();
    let today = now_ms().div_euclid(DAY_MS);
    let to = q.to.as_deref().map_or(Some(today), |v| day_of("to", v, &mut errors));
    let from = match (q.from.as_deref(), to) {
        (Some(v), _) => day_of("from", v, &mut errors),
        (None, Some(to)) => Some(to - 29),
        (None, None) => None,
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            errors.push(FieldError::new("from", "must not be after to"));
        } else if t - f >= MAX_STATS_DAYS {
            errors.push(FieldError::new("from", "the range may span at most 366 days"));
        }
    }
    if !errors.is_empty() {
        return Err(Error::fields(errors).into());
    }
    let (from, to) = (from.unwrap_or(today), to.unwrap_or(today));
    let rows = state.store.usage_days(Some(user.user_id), from, to).await?;
    let mut by_day: BTreeMap<i64, Totals> = (from..=to).map(|d| (d, Totals::default())).collect();
    let mut by_model: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for row in &rows {
        by_day.entry(row.day).or_default().add(row);
        by_model.entry(row.model.clone()).or_default().add(row);
        total.add(row);
    }
    let mut models: Vec<ModelTotals> =
        by_model.into_iter().map(|(model, totals)| ModelTotals { model, totals }).collect();
    models.sort_by(|a, b| b.totals.credits.cmp(&a.totals.credits).then_with(|| a.model.cmp(&b.model)));
    Ok(Json(UsageStats {
        from: date(from),
        to: date(to),
        days: by_day.into_iter().map(|(d, totals)| DayTotals { date: date(d), totals }).collect(),
        models,
        total,
    }))
}

/// Deletes raw call-log rows past the retention, in chunks so no transaction grows large.
pub async fn prune(state: &AppState) {
    let days = state.config.relay.usage_retention_days;
    if days == 0 {
        return;
    }
    let before = now_ms() - i64::from(days) * DAY_MS;
    let mut total = 0;
    loop {
        match state.store.prune_usage_logs(before, 5_000).await {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %e, "pruning the usage log failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(deleted = total, "pruned usage-log rows past relay.usage_retention_days");
    }
}
