//! Credit holds on SQLite. As in `billing.rs`, every transaction starts with a write, so
//! it holds SQLite's single write lock from its first statement: a hold's check and its
//! write can never interleave with another hold, release, expiry or usage write.

use crate::SqliteStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, ReleasedHolds};
use firefly_store::*;
use sqlx::SqliteConnection;
use std::collections::BTreeMap;

/// Takes released holds of `user_id` off the held totals they raised.
async fn lower_held(conn: &mut SqliteConnection, user_id: i64, released: &ReleasedHolds) -> StoreResult<()> {
    if released.amount != 0 {
        sqlx::query("UPDATE balances SET held = held - ? WHERE user_id = ?")
            .bind(released.amount)
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    for (&key_id, &amount) in released.keys.iter().filter(|(_, &amount)| amount != 0) {
        sqlx::query("UPDATE api_keys SET credits_held = credits_held - ? WHERE id = ? AND user_id = ?")
            .bind(amount)
            .bind(key_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Releases hold `id` inside the caller's transaction — only if it is `user_id`'s, when
/// given; false when there is no such hold.
pub(crate) async fn release_in(conn: &mut SqliteConnection, id: &str, user_id: Option<i64>) -> StoreResult<bool> {
    let row: Option<(i64, Option<i64>, i64)> = sqlx::query_as(
        "DELETE FROM credit_holds WHERE id = ? AND (? IS NULL OR user_id = ?) RETURNING user_id, api_key_id, amount",
    )
    .bind(id)
    .bind(user_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some((user_id, key_id, amount)) = row else { return Ok(false) };
    let mut released = ReleasedHolds::default();
    released.add(key_id, amount)?;
    lower_held(conn, user_id, &released).await?;
    Ok(true)
}

async fn hold_exists(conn: &mut SqliteConnection, id: &str) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM credit_holds WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(found.is_some())
}

#[async_trait]
impl CreditStore for SqliteStore {
    async fn hold_credits(&self, hold: &NewHold) -> StoreResult<HoldOutcome> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // First statement writes: the transaction takes the write lock here. A user with
        // no balances row gets one (balance 0), as a ledger append would; a user who does
        // not exist fails here, on the foreign key.
        sqlx::query(
            "INSERT INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(hold.user_id)
        .bind(hold.now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let (balance, held): (i64, i64) = sqlx::query_as("SELECT balance, held FROM balances WHERE user_id = ?")
            .bind(hold.user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let key = if hold.checks_key() {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT credits_used, credits_held FROM api_keys WHERE id = ? AND user_id = ?")
                    .bind(hold.api_key_id)
                    .bind(hold.user_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            row.map(|(credits_used, credits_held)| KeyCredits { credits_used, credits_held })
        } else {
            None
        };
        let outcome = hold.check(balance, held, key);
        if outcome != HoldOutcome::Held {
            // A live hold with this id was counted already: asking again is not asking for more.
            return Ok(if hold_exists(&mut tx, &hold.id).await? { HoldOutcome::Held } else { outcome });
        }
        let inserted = sqlx::query(
            "INSERT INTO credit_holds (id, user_id, api_key_id, amount, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&hold.id)
        .bind(hold.user_id)
        .bind(hold.api_key_id)
        .bind(hold.amount)
        .bind(hold.expires_at)
        .bind(hold.now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Ok(HoldOutcome::Held);
        }
        if hold.amount != 0 {
            sqlx::query("UPDATE balances SET held = held + ? WHERE user_id = ?")
                .bind(hold.amount)
                .bind(hold.user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(key_id) = hold.api_key_id {
                sqlx::query("UPDATE api_keys SET credits_held = credits_held + ? WHERE id = ? AND user_id = ?")
                    .bind(hold.amount)
                    .bind(key_id)
                    .bind(hold.user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(HoldOutcome::Held)
    }

    async fn release_hold(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let released = release_in(&mut tx, id, None).await?;
        if released {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(released)
    }

    async fn expire_holds(&self, now: Millis) -> StoreResult<u64> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let rows: Vec<(i64, Option<i64>, i64)> = sqlx::query_as(
            "DELETE FROM credit_holds WHERE id IN
                 (SELECT id FROM credit_holds WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)
             RETURNING user_id, api_key_id, amount",
        )
        .bind(now)
        .bind(EXPIRE_BATCH)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut users: BTreeMap<i64, ReleasedHolds> = BTreeMap::new();
        for (user_id, key_id, amount) in &rows {
            users.entry(*user_id).or_default().add(*key_id, *amount)?;
        }
        for (user_id, released) in &users {
            lower_held(&mut tx, *user_id, released).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(rows.len() as u64)
    }

    async fn held_credits(&self, user_id: i64) -> StoreResult<i64> {
        let held: Option<i64> = sqlx::query_scalar("SELECT held FROM balances WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        Ok(held.unwrap_or(0))
    }
}
