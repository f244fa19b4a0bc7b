//! Usage on PostgreSQL. The SQL and the outcomes mirror the SQLite backend; what differs
//! is how concurrent batches are kept apart. As in `billing.rs`, the users' balances rows
//! are created, committed, before the transaction, and each user's records are written
//! while holding that user's balances row lock (`FOR UPDATE`), taken before anything else
//! of the user: the ledger, its key rows and its rollup rows are then written by one
//! batch at a time, and since records are written in user order (`usage_write_order`),
//! two batches lock users in the same order and cannot deadlock on them. A record
//! written by a concurrent batch is found by the call log's unique request id: the
//! insert waits for that batch and then inserts nothing.
//!
//! A charge whose idempotency key was taken by a concurrent writer outside these usage
//! writes aborts the transaction: the batch fails with `Conflict("charge")` and, written
//! again, finds that row.

use crate::billing::{self, Appended};
use crate::{holds, PostgresStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{
    db_err, usage_already_written, usage_charge, usage_charge_key, usage_write_order, UsageDayRow, UsageLogRow,
};
use firefly_store::*;
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// Inserts the record's call-log row; `None` when its request id was written before.
async fn insert_log(conn: &mut PgConnection, r: &UsageRecord) -> StoreResult<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO usage_logs (request_id, user_id, api_key_id, channel_id, endpoint, model, stream, input_tokens,
                                 output_tokens, cached_tokens, credits, latency_ms, first_token_ms, status,
                                 error_code, error_message, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (request_id) DO NOTHING RETURNING id",
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
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)
}

/// Charges the record's credits, clamped to the balance: what was charged and its ledger
/// row, or (`Err`) the outcome of a record whose charge was written before.
async fn charge(
    conn: &mut PgConnection,
    r: &UsageRecord,
) -> StoreResult<Result<(i64, Option<LedgerEntry>), RecordedUsage>> {
    let mut amount = r.credits;
    while amount > 0 {
        let outcome = match billing::append_in(conn, &usage_charge(r, amount), false).await? {
            Appended::Outcome(outcome) => outcome,
            Appended::KeyTaken => return Err(StoreError::Conflict("charge")),
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
async fn record(conn: &mut PgConnection, r: &UsageRecord) -> StoreResult<RecordedUsage> {
    // The request's hold is released in the transaction that charges it, so settling and
    // releasing are one step; also when the record was written before (its hold may have
    // been taken again since). The user's balances row is locked already, as releasing needs.
    if let Some(hold_id) = &r.hold_id {
        holds::release_in(conn, hold_id, r.user_id).await?;
    }
    let Some(log_id) = insert_log(conn, r).await? else {
        let earlier = billing::ledger_by_key(&mut *conn, &usage_charge_key(&r.request_id)).await?;
        return Ok(usage_already_written(r, earlier));
    };
    let (charged, ledger) = match charge(conn, r).await? {
        Ok(charged) => charged,
        Err(written) => {
            // The charge key was taken outside these usage writes: the record counts as
            // written, so its log row goes too.
            sqlx::query("DELETE FROM usage_logs WHERE id = $1")
                .bind(log_id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            return Ok(written);
        }
    };
    if charged != r.credits {
        sqlx::query("UPDATE usage_logs SET credits = $1 WHERE id = $2")
            .bind(charged)
            .bind(log_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if let (Some(key_id), true) = (r.api_key_id, charged > 0) {
        sqlx::query("UPDATE api_keys SET credits_used = credits_used + $1 WHERE id = $2 AND user_id = $3")
            .bind(charged)
            .bind(key_id)
            .bind(r.user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let failures = i64::from(r.status >= 400);
    sqlx::query(
        "INSERT INTO usage_daily (user_id, day, model, requests, failures, input_tokens, output_tokens, credits)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7)
         ON CONFLICT (user_id, day, model) DO UPDATE SET
             requests = usage_daily.requests + 1,
             failures = usage_daily.failures + EXCLUDED.failures,
             input_tokens = usage_daily.input_tokens + EXCLUDED.input_tokens,
             output_tokens = usage_daily.output_tokens + EXCLUDED.output_tokens,
             credits = usage_daily.credits + EXCLUDED.credits",
    )
    .bind(r.user_id)
    .bind(r.created_at.div_euclid(DAY_MS))
    .bind(&r.model)
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
impl UsageStore for PostgresStore {
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<Vec<RecordedUsage>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let order = usage_write_order(batch);
        let first_of_user = |n: usize| n == 0 || batch[order[n - 1]].user_id != batch[order[n]].user_id;
        for n in (0..order.len()).filter(|&n| first_of_user(n)) {
            let r = &batch[order[n]];
            billing::ensure_balance_row(&self.write, r.user_id, r.created_at).await?;
        }
        let mut out = vec![None; batch.len()];
        let mut tx = self.write.begin().await.map_err(db_err)?;
        for (n, &i) in order.iter().enumerate() {
            let r = &batch[i];
            if first_of_user(n) {
                sqlx::query("SELECT balance FROM balances WHERE user_id = $1 FOR UPDATE")
                    .bind(r.user_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            out[i] = Some(record(&mut tx, r).await?);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out.into_iter().flatten().collect())
    }

    async fn list_usage_logs(&self, q: &UsageQuery) -> StoreResult<Vec<UsageLog>> {
        if q.limit <= 0 {
            return Ok(Vec::new());
        }
        let mut sql =
            QueryBuilder::<Postgres>::new(concat!("SELECT ", usage_log_columns!(), " FROM usage_logs WHERE TRUE"));
        if let Some(user_id) = q.user_id {
            sql.push(" AND user_id = ").push_bind(user_id);
        }
        if let Some(key_id) = q.api_key_id {
            sql.push(" AND api_key_id = ").push_bind(key_id);
        }
        if let Some(model) = &q.model {
            sql.push(" AND model = ").push_bind(model);
        }
        match q.failed {
            Some(true) => sql.push(" AND status >= 400"),
            Some(false) => sql.push(" AND status < 400"),
            None => &mut sql,
        };
        if let Some(from) = q.from {
            sql.push(" AND created_at >= ").push_bind(from);
        }
        if let Some(to) = q.to {
            sql.push(" AND created_at < ").push_bind(to);
        }
        if let Some(before) = q.before {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ").push_bind(q.limit);
        let rows: Vec<UsageLogRow> = sql.build_query_as().fetch_all(self.reader()).await.map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn usage_days(&self, user_id: Option<i64>, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>> {
        // `model` collates as "C", so the order is by bytes, as on the other backends.
        // SUM(bigint) is NUMERIC in PostgreSQL: cast back.
        let rows: Vec<UsageDayRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(
                    "SELECT day, model, requests, failures, input_tokens, output_tokens, credits FROM usage_daily
                     WHERE user_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day, model",
                )
                .bind(user_id)
                .bind(from_day)
                .bind(to_day)
                .fetch_all(self.reader())
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT day, model, SUM(requests)::bigint AS requests, SUM(failures)::bigint AS failures,
                            SUM(input_tokens)::bigint AS input_tokens, SUM(output_tokens)::bigint AS output_tokens,
                            SUM(credits)::bigint AS credits
                     FROM usage_daily WHERE day BETWEEN $1 AND $2 GROUP BY day, model ORDER BY day, model",
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
        let done = sqlx::query(
            "DELETE FROM usage_logs WHERE id IN
                 (SELECT id FROM usage_logs WHERE created_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
