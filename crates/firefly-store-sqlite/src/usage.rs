//! Usage on SQLite: the call log, its daily rollups and the requests' charges, written
//! in one transaction per batch, set-wise (`usage_bulk.rs`). The transaction begins with
//! `BEGIN IMMEDIATE`: it holds the write lock from the start, so what the batch reads
//! (which records are new, the balances) cannot change before it writes.

use crate::usage_bulk::Mode;
use crate::{holds, SqliteStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, UsageDayRow, UsageLogRow};
use firefly_store::*;
use sqlx::{QueryBuilder, Sqlite};

#[async_trait]
impl UsageStore for SqliteStore {
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<Vec<RecordedUsage>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Almost every batch is all new and is written without reading first; one that is
        // not is rolled back and written again, checked (see `usage_bulk::Mode`).
        for mode in [Mode::AssumeNew, Mode::Checked] {
            let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
            // The requests' holds go first (also of records written before: a hold may have
            // been taken again since), so each charge can spend what its request held.
            for r in batch {
                if let Some(hold_id) = &r.hold_id {
                    holds::release_in(&mut tx, hold_id, Some(r.user_id)).await?;
                }
            }
            if let Some(out) = crate::usage_bulk::record_batch(&mut tx, batch, mode).await? {
                tx.commit().await.map_err(db_err)?;
                return Ok(out);
            }
            tx.rollback().await.map_err(db_err)?;
        }
        Err(StoreError::Corrupt("a checked usage batch gave no outcome".into()))
    }

    async fn list_usage_logs(&self, q: &UsageQuery) -> StoreResult<Vec<UsageLog>> {
        if q.limit <= 0 {
            return Ok(Vec::new());
        }
        let mut sql =
            QueryBuilder::<Sqlite>::new(concat!("SELECT ", usage_log_columns!(), " FROM usage_logs WHERE 1 = 1"));
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
        let rows: Vec<UsageDayRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(
                    "SELECT day, model, requests, failures, input_tokens, output_tokens, credits FROM usage_daily
                     WHERE user_id = ? AND day BETWEEN ? AND ? ORDER BY day, model",
                )
                .bind(user_id)
                .bind(from_day)
                .bind(to_day)
                .fetch_all(self.reader())
                .await
            }
            None => {
                sqlx::query_as(
                    "SELECT day, model, SUM(requests) AS requests, SUM(failures) AS failures,
                            SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
                            SUM(credits) AS credits
                     FROM usage_daily WHERE day BETWEEN ? AND ? GROUP BY day, model ORDER BY day, model",
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
                 (SELECT id FROM usage_logs WHERE created_at < ? ORDER BY id LIMIT ?)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
