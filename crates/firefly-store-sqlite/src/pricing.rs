//! Model prices and user groups on SQLite.

use crate::SqliteStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{conflict_or, db_err, GroupRow, PriceRow};
use firefly_store::*;

impl SqliteStore {
    async fn group(&self, id: i64) -> StoreResult<Option<UserGroup>> {
        let row: Option<GroupRow> =
            sqlx::query_as(concat!("SELECT ", group_columns!(), " FROM user_groups g WHERE g.id = ?"))
                .bind(id)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }
}

#[async_trait]
impl PricingStore for SqliteStore {
    async fn put_model_price(&self, p: ModelPrice) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok, per_image,
                 per_mchar, per_second, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (model) DO UPDATE SET input_per_mtok = excluded.input_per_mtok,
                 output_per_mtok = excluded.output_per_mtok, cached_input_per_mtok = excluded.cached_input_per_mtok,
                 per_image = excluded.per_image, per_mchar = excluded.per_mchar, per_second = excluded.per_second,
                 updated_at = excluded.updated_at",
        )
        .bind(&p.model)
        .bind(p.price.input_per_mtok)
        .bind(p.price.output_per_mtok)
        .bind(p.price.cached_input_per_mtok)
        .bind(p.price.per_image)
        .bind(p.price.per_mchar)
        .bind(p.price.per_second)
        .bind(p.updated_at)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn model_price(&self, model: &str) -> StoreResult<Option<ModelPrice>> {
        let row: Option<PriceRow> =
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices WHERE model = ?"))
                .bind(model)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn list_model_prices(&self) -> StoreResult<Vec<ModelPrice>> {
        let rows: Vec<PriceRow> =
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices ORDER BY model"))
                .fetch_all(&self.write)
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn delete_model_price(&self, model: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM model_prices WHERE model = ?")
            .bind(model)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_group(&self, name: &str, multiplier_bp: i64, now: Millis) -> StoreResult<UserGroup> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO user_groups (name, multiplier_bp, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(multiplier_bp)
        .bind(now)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "group"))?;
        self.group(id).await?.ok_or_else(|| StoreError::Corrupt("inserted group vanished".into()))
    }

    async fn update_group(&self, id: i64, patch: GroupPatch, now: Millis) -> StoreResult<Option<UserGroup>> {
        let done = sqlx::query(
            "UPDATE user_groups SET name = COALESCE(?, name), multiplier_bp = COALESCE(?, multiplier_bp), updated_at = ?
             WHERE id = ?",
        )
        .bind(patch.name)
        .bind(patch.multiplier_bp)
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(|e| conflict_or(e, "group"))?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.group(id).await
    }

    async fn delete_group(&self, id: i64) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM user_group_members WHERE group_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM user_groups WHERE id = ?").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_groups(&self) -> StoreResult<Vec<UserGroup>> {
        let rows: Vec<GroupRow> =
            sqlx::query_as(concat!("SELECT ", group_columns!(), " FROM user_groups g ORDER BY g.name"))
                .fetch_all(&self.write)
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn set_user_group(&self, user_id: i64, group_id: Option<i64>) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // Starts with a write: the transaction holds the write lock from here.
        sqlx::query("DELETE FROM user_group_members WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let user_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !user_exists {
            return Ok(false);
        }
        if let Some(group_id) = group_id {
            let inserted = sqlx::query(
                "INSERT INTO user_group_members (user_id, group_id) SELECT ?, id FROM user_groups WHERE id = ?",
            )
            .bind(user_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if inserted.rows_affected() == 0 {
                return Ok(false);
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn user_group(&self, user_id: i64) -> StoreResult<Option<UserGroup>> {
        let row: Option<GroupRow> = sqlx::query_as(concat!(
            "SELECT ",
            group_columns!(),
            " FROM user_groups g JOIN user_group_members m ON m.group_id = g.id WHERE m.user_id = ?"
        ))
        .bind(user_id)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        Ok(row.map(Into::into))
    }
}
