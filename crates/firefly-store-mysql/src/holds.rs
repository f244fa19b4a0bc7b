//! Credit holds on MySQL/MariaDB. The outcomes mirror the SQLite backend; as in
//! `billing.rs`, writers are kept apart by the user's `balances` row lock (`SELECT ...
//! FOR UPDATE`), taken before anything else of the user: its key rows, then its hold
//! rows. Holds, releases, expiry and usage writes all lock in that order, so they cannot
//! deadlock on each other.
//!
//! Hold rows are only ever read without a lock and deleted by primary key once seen. A
//! locking read or delete of a missing id would take a gap lock on the primary key, and
//! one that scans (`WHERE user_id = ?`, if the optimizer prefers a table scan) would lock
//! other users' rows: either could deadlock with a transaction that holds another user's
//! row lock. What a plain read sees is current enough: every transaction that writes a
//! user's holds holds that user's row lock, which this transaction waited for before its
//! snapshot began — except in a usage batch of several users, whose snapshot begins at
//! its first user; a hold is taken before its request runs, long before its record is
//! written, so the batch still sees it.

use crate::{billing, MysqlStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, ReleasedHolds};
use firefly_store::*;
use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder};
use std::collections::BTreeSet;

/// What one attempt at a hold did inside its transaction.
enum Attempt {
    /// The user has no balances row to lock: create it outside the transaction, retry.
    NoBalanceRow,
    /// Nothing written: roll back and answer this.
    Unchanged(HoldOutcome),
    /// The hold is written: commit.
    Written,
}

/// Locks the user's balances row: `(balance, held)`, `None` when there is none.
async fn lock_balance(conn: &mut MySqlConnection, user_id: i64) -> StoreResult<Option<(i64, i64)>> {
    sqlx::query_as("SELECT balance, held FROM balances WHERE user_id = ? FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)
}

async fn hold_exists(conn: &mut MySqlConnection, id: &str) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM credit_holds WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(found.is_some())
}

async fn hold_in(conn: &mut MySqlConnection, hold: &NewHold) -> StoreResult<Attempt> {
    let Some((balance, held)) = lock_balance(conn, hold.user_id).await? else {
        return Ok(Attempt::NoBalanceRow);
    };
    let key = if hold.checks_key() {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT credits_used, credits_held FROM api_keys WHERE id = ? AND user_id = ? FOR UPDATE")
                .bind(hold.api_key_id)
                .bind(hold.user_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
        row.map(|(credits_used, credits_held)| KeyCredits { credits_used, credits_held })
    } else {
        None
    };
    let outcome = hold.check(balance, held, key);
    if outcome != HoldOutcome::Held {
        // A live hold with this id was counted already: asking again is not asking for more.
        let live = hold_exists(conn, &hold.id).await?;
        return Ok(Attempt::Unchanged(if live { HoldOutcome::Held } else { outcome }));
    }
    // A plain insert whose duplicate-key error is caught, not `INSERT IGNORE`, which would
    // also turn an over-long id or a negative amount into a silent skip.
    let inserted = sqlx::query(
        "INSERT INTO credit_holds (id, user_id, api_key_id, amount, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&hold.id)
    .bind(hold.user_id)
    .bind(hold.api_key_id)
    .bind(hold.amount)
    .bind(hold.expires_at)
    .bind(hold.now)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        // The id is the table's only unique column.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(Attempt::Unchanged(HoldOutcome::Held)),
        Err(e) => return Err(db_err(e)),
    }
    if hold.amount != 0 {
        sqlx::query("UPDATE balances SET held = held + ? WHERE user_id = ?")
            .bind(hold.amount)
            .bind(hold.user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if let Some(key_id) = hold.api_key_id {
            sqlx::query("UPDATE api_keys SET credits_held = credits_held + ? WHERE id = ? AND user_id = ?")
                .bind(hold.amount)
                .bind(key_id)
                .bind(hold.user_id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
    }
    Ok(Attempt::Written)
}

/// Takes released holds of `user_id` off the held totals they raised.
async fn lower_held(conn: &mut MySqlConnection, user_id: i64, released: &ReleasedHolds) -> StoreResult<()> {
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

/// Releases `user_id`'s hold `id` inside the caller's transaction, which holds that
/// user's balances row lock; false when there is no such hold.
pub(crate) async fn release_in(conn: &mut MySqlConnection, id: &str, user_id: i64) -> StoreResult<bool> {
    let row: Option<(Option<i64>, i64)> =
        sqlx::query_as("SELECT api_key_id, amount FROM credit_holds WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let Some((key_id, amount)) = row else { return Ok(false) };
    let deleted = sqlx::query("DELETE FROM credit_holds WHERE id = ? AND user_id = ?")
        .bind(id)
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?
        .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    let mut released = ReleasedHolds::default();
    released.add(key_id, amount)?;
    lower_held(conn, user_id, &released).await?;
    Ok(true)
}

#[async_trait]
impl CreditStore for MysqlStore {
    async fn hold_credits(&self, hold: &NewHold) -> StoreResult<HoldOutcome> {
        crate::retry_deadlocks(|| async move {
            let mut conn = self.write.acquire().await.map_err(db_err)?;
            // Most users have a balances row: lock it first, and create it (outside the
            // transaction, see `billing.rs`) only when it is missing.
            for attempt in 0..2 {
                let mut tx = conn.begin().await.map_err(db_err)?;
                match hold_in(&mut tx, hold).await? {
                    Attempt::Written => {
                        tx.commit().await.map_err(db_err)?;
                        return Ok(HoldOutcome::Held);
                    }
                    Attempt::Unchanged(outcome) => {
                        tx.rollback().await.map_err(db_err)?;
                        return Ok(outcome);
                    }
                    Attempt::NoBalanceRow => tx.rollback().await.map_err(db_err)?,
                }
                if attempt == 0 {
                    billing::ensure_balance_row(&mut conn, hold.user_id, hold.now).await?;
                }
            }
            // `INSERT IGNORE` wrote nothing and there is still no row: there is no such user.
            // This plain insert reports why, as the other backends do (a foreign-key error).
            sqlx::query("INSERT INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?)")
                .bind(hold.user_id)
                .bind(hold.now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            Err(StoreError::Corrupt(format!("the balances row of user {} keeps disappearing", hold.user_id)))
        })
        .await
    }

    async fn release_hold(&self, id: &str) -> StoreResult<bool> {
        crate::retry_deadlocks(|| async move {
            let mut conn = self.write.acquire().await.map_err(db_err)?;
            // A hold's user never changes: read it first, to lock that user's row before the hold.
            let user_id: Option<i64> = sqlx::query_scalar("SELECT user_id FROM credit_holds WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            let Some(user_id) = user_id else { return Ok(false) };
            let mut tx = conn.begin().await.map_err(db_err)?;
            lock_balance(&mut tx, user_id).await?;
            let released = release_in(&mut tx, id, user_id).await?;
            if released {
                tx.commit().await.map_err(db_err)?;
            } else {
                tx.rollback().await.map_err(db_err)?;
            }
            Ok(released)
        })
        .await
    }

    async fn expire_holds(&self, now: Millis) -> StoreResult<u64> {
        crate::retry_deadlocks(|| async move {
            let mut conn = self.write.acquire().await.map_err(db_err)?;
            let candidates: Vec<i64> = sqlx::query_scalar(
                "SELECT user_id FROM credit_holds WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            )
            .bind(now)
            .bind(EXPIRE_BATCH)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
            let mut count = 0;
            // One short transaction per user, in user order: another instance expiring at the
            // same moment waits on the row lock and then finds those holds gone.
            for user_id in candidates.into_iter().collect::<BTreeSet<_>>() {
                let mut tx = conn.begin().await.map_err(db_err)?;
                lock_balance(&mut tx, user_id).await?;
                // A plain read, current after the lock wait (see the module comment). A locking
                // read or a `DELETE ... WHERE user_id = ?` could scan, and lock, other users'
                // rows, wherever the optimizer prefers a table scan.
                let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
                    "SELECT CONVERT(id USING utf8mb4) AS id, api_key_id, amount FROM credit_holds
                 WHERE user_id = ? AND expires_at <= ? LIMIT ?",
                )
                .bind(user_id)
                .bind(now)
                .bind(EXPIRE_BATCH)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                if rows.is_empty() {
                    tx.rollback().await.map_err(db_err)?;
                    continue;
                }
                let mut delete = QueryBuilder::<MySql>::new("DELETE FROM credit_holds WHERE id IN (");
                let mut ids = delete.separated(", ");
                for (id, _, _) in &rows {
                    ids.push_bind(id);
                }
                delete.push(")");
                let deleted = delete.build().execute(&mut *tx).await.map_err(db_err)?.rows_affected();
                if deleted != rows.len() as u64 {
                    return Err(StoreError::Corrupt(format!(
                        "expiring holds of user {user_id}: read {} but deleted {deleted}",
                        rows.len()
                    )));
                }
                let mut released = ReleasedHolds::default();
                for (_, key_id, amount) in rows {
                    released.add(key_id, amount)?;
                }
                lower_held(&mut tx, user_id, &released).await?;
                tx.commit().await.map_err(db_err)?;
                count += released.count;
            }
            Ok(count)
        })
        .await
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
