//! Upstream channels on MySQL/MariaDB. The SQL and the outcomes mirror the SQLite
//! backend; the id of a new channel comes from `last_insert_id()`.

use crate::{inserted_id, MysqlStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, ChannelRow};
use firefly_store::*;

#[async_trait]
impl ChannelStore for MysqlStore {
    async fn create_channel(&self, s: ChannelSpec, now: Millis) -> StoreResult<Channel> {
        let done = sqlx::query(
            "INSERT INTO channels (name, provider, base_url, api_version, keys_ciphertext, key_hints, models, model_map,
                                   priority, weight, rpm_limit, status, status_reason, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        let id = inserted_id(done)?;
        // Read back, as the other inserts here do: the result is what was stored.
        self.channel(id).await?.ok_or_else(|| StoreError::Corrupt("inserted channel vanished".into()))
    }

    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>> {
        let row: Option<ChannelRow> =
            sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM channels WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        let rows: Vec<ChannelRow> =
            sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM channels ORDER BY priority DESC, id"))
                .fetch_all(&self.write)
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
        // The driver sets CLIENT_FOUND_ROWS, so rows_affected counts matched rows even
        // when no value changed: "1" means the channel still had `expected_updated_at`
        // and is replaced, as on SQLite.
        let done = sqlx::query(
            "UPDATE channels SET name = ?, provider = ?, base_url = ?, api_version = ?, keys_ciphertext = ?, key_hints = ?,
                                 models = ?, model_map = ?, priority = ?, weight = ?, rpm_limit = ?, status = ?,
                                 status_reason = ?, updated_at = ?
             WHERE id = ? AND updated_at = ?",
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
        .bind(id)
        .bind(expected_updated_at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 1 {
            return self.channel(id).await;
        }
        // Nothing matched: either there is no such channel or it changed since it was read.
        match self.channel(id).await? {
            Some(_) => Err(StoreError::Conflict("channel")),
            None => Ok(None),
        }
    }

    async fn delete_channel(&self, id: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM channels WHERE id = ?").bind(id).execute(&self.write).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_channel_status(
        &self,
        id: i64,
        status: ChannelStatus,
        reason: Option<&str>,
        now: Millis,
    ) -> StoreResult<bool> {
        // Matched rows (CLIENT_FOUND_ROWS): setting the status a channel already has
        // still reports it as found.
        let done = sqlx::query("UPDATE channels SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?")
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
