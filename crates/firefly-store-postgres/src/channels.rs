//! Upstream channels on PostgreSQL. A replacement is optimistic: one conditional UPDATE
//! that re-checks `updated_at` against the latest committed row, so of two editors who
//! read the same version exactly one wins and the other sees zero rows.

use crate::PostgresStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, ChannelRow};
use firefly_store::*;

#[async_trait]
impl ChannelStore for PostgresStore {
    async fn create_channel(&self, s: ChannelSpec, now: Millis) -> StoreResult<Channel> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO channels (name, provider, base_url, api_version, keys_ciphertext, key_hints, models, model_map,
                                   priority, weight, rpm_limit, status, status_reason, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.provider)
        .bind(&s.base_url)
        .bind(&s.api_version)
        .bind(&s.keys_ciphertext)
        .bind(encode_list(&s.key_hints))
        .bind(encode_list(&s.models))
        .bind(encode_map(&s.model_map))
        .bind(s.priority)
        .bind(s.weight)
        .bind(s.rpm_limit)
        .bind(s.status.as_str())
        .bind(&s.status_reason)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(db_err)?;
        Ok(Channel { id, spec: s, created_at: now, updated_at: now })
    }

    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>> {
        let row: Option<ChannelRow> =
            sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM channels WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        let rows: Vec<ChannelRow> =
            sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM channels ORDER BY priority DESC, id"))
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn replace_channel(
        &self,
        id: i64,
        s: ChannelSpec,
        expected_updated_at: Millis,
        now: Millis,
    ) -> StoreResult<Option<Channel>> {
        // One statement: the channel it returns is the one it wrote.
        let row: Option<ChannelRow> = sqlx::query_as(concat!(
            "UPDATE channels SET name = $1, provider = $2, base_url = $3, api_version = $4, keys_ciphertext = $5,
                 key_hints = $6, models = $7, model_map = $8, priority = $9, weight = $10, rpm_limit = $11,
                 status = $12, status_reason = $13, updated_at = $14
             WHERE id = $15 AND updated_at = $16 RETURNING ",
            channel_columns!()
        ))
        .bind(&s.name)
        .bind(&s.provider)
        .bind(&s.base_url)
        .bind(&s.api_version)
        .bind(&s.keys_ciphertext)
        .bind(encode_list(&s.key_hints))
        .bind(encode_list(&s.models))
        .bind(encode_map(&s.model_map))
        .bind(s.priority)
        .bind(s.weight)
        .bind(s.rpm_limit)
        .bind(s.status.as_str())
        .bind(&s.status_reason)
        .bind(now)
        .bind(id)
        .bind(expected_updated_at)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        if let Some(row) = row {
            return row.try_into().map(Some);
        }
        // Nothing matched: either there is no such channel or it changed since it was read.
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM channels WHERE id = $1)")
            .bind(id)
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        if exists {
            Err(StoreError::Conflict("channel"))
        } else {
            Ok(None)
        }
    }

    async fn delete_channel(&self, id: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM channels WHERE id = $1").bind(id).execute(&self.write).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_channel_status(
        &self,
        id: i64,
        status: ChannelStatus,
        reason: Option<&str>,
        now: Millis,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE channels SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
