//! Model prices and user groups on PostgreSQL. Memberships and group deletion meet on the
//! group's row lock: `set_user_group` takes it with `FOR KEY SHARE`, `delete_group` with
//! `FOR UPDATE`, so a user is never put into a group that is being deleted.

use crate::PostgresStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{conflict_or, db_err, GroupRow, PriceRow};
use firefly_store::*;

#[async_trait]
impl PricingStore for PostgresStore {
    async fn put_model_price(&self, p: ModelPrice) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok, per_image,
                 per_mchar, per_second, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices WHERE model = $1"))
                .bind(model)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn list_model_prices(&self) -> StoreResult<Vec<ModelPrice>> {
        // Byte order whatever the database's locale, as on the other backends.
        let rows: Vec<PriceRow> =
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices ORDER BY model COLLATE \"C\""))
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn delete_model_price(&self, model: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM model_prices WHERE model = $1")
            .bind(model)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_group(&self, name: &str, multiplier_bp: i64, now: Millis) -> StoreResult<UserGroup> {
        let row: GroupRow = sqlx::query_as(concat!(
            "INSERT INTO user_groups AS g (name, multiplier_bp, created_at, updated_at) VALUES ($1, $2, $3, $3)
             RETURNING ",
            group_columns!()
        ))
        .bind(name)
        .bind(multiplier_bp)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "group"))?;
        Ok(row.into())
    }

    async fn update_group(&self, id: i64, patch: GroupPatch, now: Millis) -> StoreResult<Option<UserGroup>> {
        // One statement: the group it returns is the one it wrote.
        let row: Option<GroupRow> = sqlx::query_as(concat!(
            "UPDATE user_groups AS g SET name = COALESCE($1::text, g.name),
                 multiplier_bp = COALESCE($2::bigint, g.multiplier_bp), updated_at = $3
             WHERE g.id = $4 RETURNING ",
            group_columns!()
        ))
        .bind(patch.name)
        .bind(patch.multiplier_bp)
        .bind(now)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(|e| conflict_or(e, "group"))?;
        Ok(row.map(Into::into))
    }

    async fn delete_group(&self, id: i64) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // The lock waits out any membership write still holding the group's key-share lock;
        // the DELETE below, a new statement, then sees its row. Later ones wait on us and
        // find the group gone.
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM user_groups WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if found.is_none() {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM user_group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("DELETE FROM user_groups WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_groups(&self) -> StoreResult<Vec<UserGroup>> {
        let rows: Vec<GroupRow> =
            sqlx::query_as(concat!("SELECT ", group_columns!(), " FROM user_groups g ORDER BY g.name COLLATE \"C\""))
                .fetch_all(self.reader())
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn set_user_group(&self, user_id: i64, group_id: Option<i64>) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let user_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !user_exists {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        match group_id {
            None => {
                sqlx::query("DELETE FROM user_group_members WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            Some(group_id) => {
                // An upsert, so concurrent moves of one user never collide on its key. The
                // key-share lock waits for a concurrent `delete_group`, then finds no row.
                let written = sqlx::query(
                    "INSERT INTO user_group_members (user_id, group_id)
                     SELECT $1, id FROM user_groups WHERE id = $2 FOR KEY SHARE
                     ON CONFLICT (user_id) DO UPDATE SET group_id = excluded.group_id",
                )
                .bind(user_id)
                .bind(group_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if written.rows_affected() == 0 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn user_group(&self, user_id: i64) -> StoreResult<Option<UserGroup>> {
        let row: Option<GroupRow> = sqlx::query_as(concat!(
            "SELECT ",
            group_columns!(),
            " FROM user_groups g JOIN user_group_members m ON m.group_id = g.id WHERE m.user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        Ok(row.map(Into::into))
    }
}
