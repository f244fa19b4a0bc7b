//! Model prices and user groups on MySQL/MariaDB. The SQL and the outcomes mirror the
//! SQLite backend. Membership changes take their row locks in one order: the user's
//! `users` row, then the group's `user_groups` row, then the `user_group_members` rows.
//! `delete_group` starts at the group row and touches no user row. That order does not
//! cover InnoDB's gap locks (two users joining at once both lock the gap at the end of
//! the members index, then both wait to insert into it), so the rare deadlock left is
//! resolved by running the victim again (`retry_deadlocks`).

use crate::{inserted_id, MysqlStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{conflict_or, db_err, GroupRow, PriceRow};
use firefly_store::*;

impl MysqlStore {
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
impl PricingStore for MysqlStore {
    async fn put_model_price(&self, p: ModelPrice) -> StoreResult<()> {
        // The new values are bound twice rather than read back with `VALUES()`: see
        // `put_preferences`.
        sqlx::query(
            "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, cached_input_per_mtok, per_image,
                 per_mchar, per_second, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE input_per_mtok = ?, output_per_mtok = ?, cached_input_per_mtok = ?,
                 per_image = ?, per_mchar = ?, per_second = ?, updated_at = ?",
        )
        .bind(&p.model)
        .bind(p.price.input_per_mtok)
        .bind(p.price.output_per_mtok)
        .bind(p.price.cached_input_per_mtok)
        .bind(p.price.per_image)
        .bind(p.price.per_mchar)
        .bind(p.price.per_second)
        .bind(p.updated_at)
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
        // `model` is utf8mb4_bin, so the comparison is byte for byte.
        let row: Option<PriceRow> =
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices p WHERE p.model = ?"))
                .bind(model)
                .fetch_optional(&self.write)
                .await
                .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn list_model_prices(&self) -> StoreResult<Vec<ModelPrice>> {
        // By the column (utf8mb4_bin: byte order, as on SQLite), not the converted alias.
        let rows: Vec<PriceRow> =
            sqlx::query_as(concat!("SELECT ", price_columns!(), " FROM model_prices p ORDER BY p.model"))
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
        let done =
            sqlx::query("INSERT INTO user_groups (name, multiplier_bp, created_at, updated_at) VALUES (?, ?, ?, ?)")
                .bind(name)
                .bind(multiplier_bp)
                .bind(now)
                .bind(now)
                .execute(&self.write)
                .await
                .map_err(|e| conflict_or(e, "group"))?;
        let id = inserted_id(done)?;
        self.group(id).await?.ok_or_else(|| StoreError::Corrupt("inserted group vanished".into()))
    }

    async fn update_group(&self, id: i64, patch: GroupPatch, now: Millis) -> StoreResult<Option<UserGroup>> {
        // The driver sets CLIENT_FOUND_ROWS, so rows_affected counts matched rows even
        // when no value changed: "0" means "no such group", as on SQLite.
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
        crate::retry_deadlocks(|| async move {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            // The group row first (see the module comment): a concurrent `set_user_group`
            // into this group waits here, or has already committed its membership, which the
            // delete below then removes.
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM user_groups WHERE id = ? FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if found.is_none() {
                tx.rollback().await.map_err(db_err)?;
                return Ok(false);
            }
            sqlx::query("DELETE FROM user_group_members WHERE group_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done =
                sqlx::query("DELETE FROM user_groups WHERE id = ?").bind(id).execute(&mut *tx).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn list_groups(&self) -> StoreResult<Vec<UserGroup>> {
        // By the column (utf8mb4_bin: byte order, as on SQLite), not the converted alias.
        let rows: Vec<GroupRow> =
            sqlx::query_as(concat!("SELECT ", group_columns!(), " FROM user_groups g ORDER BY g.name"))
                .fetch_all(&self.write)
                .await
                .map_err(db_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn set_user_group(&self, user_id: i64, group_id: Option<i64>) -> StoreResult<bool> {
        crate::retry_deadlocks(|| async move {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            // Serializes this user's membership changes, so the writes below never race for
            // the same membership row or the gap where it would go.
            let user: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ? FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if user.is_none() {
                tx.rollback().await.map_err(db_err)?;
                return Ok(false);
            }
            match group_id {
                Some(group_id) => {
                    // A shared lock keeps the group from being deleted before this commits.
                    // `LOCK IN SHARE MODE`: MariaDB does not parse MySQL 8's `FOR SHARE`.
                    let group: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM user_groups WHERE id = ? LOCK IN SHARE MODE")
                            .bind(group_id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_err)?;
                    if group.is_none() {
                        tx.rollback().await.map_err(db_err)?;
                        return Ok(false);
                    }
                    sqlx::query(
                        "INSERT INTO user_group_members (user_id, group_id) VALUES (?, ?)
                     ON DUPLICATE KEY UPDATE group_id = ?",
                    )
                    .bind(user_id)
                    .bind(group_id)
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                None => {
                    sqlx::query("DELETE FROM user_group_members WHERE user_id = ?")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
        .await
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
