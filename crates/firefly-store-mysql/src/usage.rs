//! Usage on MySQL/MariaDB. The SQL and the outcomes mirror the SQLite backend; what
//! differs is how concurrent batches are kept apart. As in `billing.rs`, the users'
//! balances rows are created by autocommitted `INSERT IGNORE`s before the transaction,
//! and each user's records are written while holding that user's balances row lock
//! (`FOR UPDATE`), taken before anything else of the user: the ledger, its key rows and
//! its rollup rows are then written by one batch at a time, and since records are written
//! in user order (`usage_write_order`), two batches lock users in the same order and
//! cannot deadlock on them.
//!
//! A charge whose idempotency key was taken by a concurrent writer outside these usage
//! writes fails the batch with `Conflict("charge")`, rolled back: written again, the
//! batch finds that row.

use crate::{billing, holds, inserted_id, MysqlStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{
    db_err, usage_already_written, usage_charge, usage_charge_key, usage_write_order, LedgerRow, UsageDayRow,
    UsageLogRow,
};
use firefly_store::*;
use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder};

/// Inserts the record's call-log row; `None` when its request id was written before. A
/// plain insert whose duplicate-key error is caught, not `INSERT IGNORE`, which would
/// also turn a missing user or an over-long value into a silent skip.
async fn insert_log(conn: &mut MySqlConnection, r: &UsageRecord) -> StoreResult<Option<i64>> {
    let inserted = sqlx::query(
        "INSERT INTO usage_logs (request_id, user_id, api_key_id, channel_id, endpoint, model, stream, input_tokens,
                                 output_tokens, cached_tokens, credits, latency_ms, first_token_ms, status,
                                 error_code, error_message, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.request_id)
    .bind(r.user_id)
    .bind(r.api_key_id)
    .bind(r.channel_id)
    .bind(&r.endpoint)
    .bind(&r.model)
    .bind(r.stream)
    .bind(r.input_tokens)
    .bind(r.output_tokens)
    .bind(r.cached_tokens)
    .bind(r.credits)
    .bind(r.latency_ms)
    .bind(r.first_token_ms)
    .bind(r.status)
    .bind(&r.error_code)
    .bind(&r.error_message)
    .bind(r.created_at)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(done) => Ok(Some(inserted_id(done)?)),
        // The request id is the table's only unique column besides the id.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}

/// The charge row of a record written before. A locking read, so it sees the latest
/// committed row rather than this transaction's snapshot, which may predate it.
async fn earlier_charge(conn: &mut MySqlConnection, request_id: &str) -> StoreResult<Option<LedgerEntry>> {
    let row: Option<LedgerRow> = sqlx::query_as(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM ledger WHERE idempotency_key = ? LOCK IN SHARE MODE"
    ))
    .bind(usage_charge_key(request_id))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    row.map(TryInto::try_into).transpose()
}

/// Charges the record's credits, clamped to the balance: what was charged and its ledger
/// row, or (`Err`) the outcome of a record whose charge was written before.
async fn charge(
    conn: &mut MySqlConnection,
    r: &UsageRecord,
) -> StoreResult<Result<(i64, Option<LedgerEntry>), RecordedUsage>> {
    let mut amount = r.credits;
    while amount > 0 {
        let Some(outcome) = billing::append_in(conn, &usage_charge(r, amount), false).await? else {
            return Err(StoreError::Conflict("charge"));
        };
        match outcome {
            LedgerOutcome::Applied(e) => return Ok(Ok((amount, Some(e)))),
            // Each retry asks for less, so this ends.
            LedgerOutcome::Insufficient { balance } if balance < amount => amount = balance,
            LedgerOutcome::Insufficient { .. } => break,
            LedgerOutcome::Duplicate(e) => return Ok(Err(usage_already_written(r, Some(e)))),
            LedgerOutcome::KeyConflict => return Ok(Err(usage_already_written(r, None))),
        }
    }
    Ok(Ok((0, None)))
}

/// Writes one record inside the batch's transaction, its user's balances row locked.
async fn record(conn: &mut MySqlConnection, r: &UsageRecord) -> StoreResult<RecordedUsage> {
    // The request's hold is released in the transaction that charges it, so settling and
    // releasing are one step; also when the record was written before (its hold may have
    // been taken again since). The user's balances row is locked already, as releasing needs.
    if let Some(hold_id) = &r.hold_id {
        holds::release_in(conn, hold_id, r.user_id).await?;
    }
    let Some(log_id) = insert_log(conn, r).await? else {
        let earlier = earlier_charge(conn, &r.request_id).await?;
        return Ok(usage_already_written(r, earlier));
    };
    let (charged, ledger) = match charge(conn, r).await? {
        Ok(charged) => charged,
        Err(written) => {
            // The charge key was taken outside these usage writes: the record counts as
            // written, so its log row goes too.
            sqlx::query("DELETE FROM usage_logs WHERE id = ?")
                .bind(log_id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            return Ok(written);
        }
    };
    if charged != r.credits {
        sqlx::query("UPDATE usage_logs SET credits = ? WHERE id = ?")
            .bind(charged)
            .bind(log_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if let (Some(key_id), true) = (r.api_key_id, charged > 0) {
        sqlx::query("UPDATE api_keys SET credits_used = credits_used + ? WHERE id = ? AND user_id = ?")
            .bind(charged)
            .bind(key_id)
            .bind(r.user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    // The increments are bound twice rather than read back with `VALUES()`, as in
    // `put_model_price`.
    let failures = i64::from(r.status >= 400);
    sqlx::query(
        "INSERT INTO usage_daily (user_id, day, model, requests, failures, input_tokens, output_tokens, credits)
         VALUES (?, ?, ?, 1, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE requests = requests + 1, failures = failures + ?, input_tokens = input_tokens + ?,
             output_tokens = output_tokens + ?, credits = credits + ?",
    )
    .bind(r.user_id)
    .bind(r.created_at.div_euclid(DAY_MS))
    .bind(&r.model)
    .bind(failures)
    .bind(r.input_tokens)
    .bind(r.output_tokens)
    .bind(charged)
    .bind(failures)
    .bind(r.input_tokens)
    .bind(r.output_tokens)
    .bind(charged)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(RecordedUsage { charged, ledger, applied: true })
}

#[async_trait]
impl UsageStore for MysqlStore {
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<Vec<RecordedUsage>> {
        crate::retry_deadlocks(|| async move {
            if batch.is_empty() {
                return Ok(Vec::new());
            }
            let order = usage_write_order(batch);
            let first_of_user = |n: usize| n == 0 || batch[order[n - 1]].user_id != batch[order[n]].user_id;
            let mut conn = self.write.acquire().await.map_err(db_err)?;
            for n in (0..order.len()).filter(|&n| first_of_user(n)) {
                let r = &batch[order[n]];
                billing::ensure_balance_row(&mut conn, r.user_id, r.created_at).await?;
            }
            let mut out = vec![None; batch.len()];
            let mut tx = conn.begin().await.map_err(db_err)?;
            for (n, &i) in order.iter().enumerate() {
                let r = &batch[i];
                if first_of_user(n) {
                    sqlx::query("SELECT balance FROM balances WHERE user_id = ? FOR UPDATE")
                        .bind(r.user_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                out[i] = Some(record(&mut tx, r).await?);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(out.into_iter().flatten().collect())
        })
        .await
    }

    async fn list_usage_logs(&self, q: &UsageQuery) -> StoreResult<Vec<UsageLog>> {
        if q.limit <= 0 {
            return Ok(Vec::new());
        }
        // Filters name the table's columns (`l.`), never the converted aliases.
        let mut sql =
            QueryBuilder::<MySql>::new(concat!("SELECT ", usage_log_columns!(), " FROM usage_logs l WHERE 1 = 1"));
        if let Some(user_id) = q.user_id {
            sql.push(" AND l.user_id = ").push_bind(user_id);
        }
        if let Some(key_id) = q.api_key_id {
            sql.push(" AND l.api_key_id = ").push_bind(key_id);
        }
        if let Some(model) = &q.model {
            // `model` is utf8mb4_bin, so the comparison is byte for byte.
            sql.push(" AND l.model = ").push_bind(model);
        }
        match q.failed {
            Some(true) => sql.push(" AND l.status >= 400"),
            Some(false) => sql.push(" AND l.status < 400"),
            None => &mut sql,
        };
        if let Some(from) = q.from {
            sql.push(" AND l.created_at >= ").push_bind(from);
        }
        if let Some(to) = q.to {
            sql.push(" AND l.created_at < ").push_bind(to);
        }
        if let Some(before) = q.before {
            sql.push(" AND l.id < ").push_bind(before);
        }
        sql.push(" ORDER BY l.id DESC LIMIT ").push_bind(q.limit);
        let rows: Vec<UsageLogRow> = sql.build_query_as().fetch_all(self.reader()).await.map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn usage_days(&self, user_id: Option<i64>, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>> {
        // `model` is utf8mb4_bin: converted for reading, sorted by the column (bytes).
        // SUM of a BIGINT is a DECIMAL in MySQL: cast back to an integer.
        let rows: Vec<UsageDayRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(
                    "SELECT d.day, CONVERT(d.model USING utf8mb4) AS model, d.requests, d.failures, d.input_tokens,
                            d.output_tokens, d.credits
                     FROM usage_daily d WHERE d.user_id = ? AND d.day BETWEEN ? AND ? ORDER BY d.day, d.model",
                )
                .bind(user_id)
                .bind(from_day)
                .bind(to_day)
                .fetch_all(self.reader())
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT d.day, CONVERT(d.model USING utf8mb4) AS model,
                            CAST(SUM(d.requests) AS SIGNED) AS requests, CAST(SUM(d.failures) AS SIGNED) AS failures,
                            CAST(SUM(d.input_tokens) AS SIGNED) AS input_tokens,
                            CAST(SUM(d.output_tokens) AS SIGNED) AS output_tokens,
                            CAST(SUM(d.credits) AS SIGNED) AS credits
                     FROM usage_daily d WHERE d.day BETWEEN ? AND ? GROUP BY d.day, d.model ORDER BY d.day, d.model",
                )
                .bind(from_day)
                .bind(to_day)
                .fetch_all(self.reader())
                .await
            }
        }
        .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn prune_usage_logs(&self, before: Millis, limit: i64) -> StoreResult<u64> {
        if limit <= 0 {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM usage_logs WHERE created_at < ? ORDER BY id LIMIT ?")
            .bind(before)
            .bind(limit)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
