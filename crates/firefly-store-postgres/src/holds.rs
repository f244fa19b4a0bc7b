//! Credit holds on PostgreSQL. The outcomes mirror the SQLite backend; as in
//! `billing.rs`, writers are kept apart by the user's `balances` row lock (`SELECT ...
//! FOR UPDATE`), taken before anything else of the user: its key rows, then its hold
//! rows. Holds, releases, expiry and usage writes all lock in that order, so they cannot
//! deadlock on each other, and under READ COMMITTED each statement after the lock wait
//! sees what the previous holder of the lock committed.

use crate::{billing, PostgresStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{db_err, ReleasedHolds};
use firefly_store::*;
use sqlx::PgConnection;
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
async fn lock_balance(conn: &mut PgConnection, user_id: i64) -> StoreResult<Option<(i64, i64)>> {
    sqlx::query_as("SELECT balance, held FROM balances WHERE user_id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)
}

async fn hold_in(conn: &mut PgConnection, hold: &NewHold) -> StoreResult<Attempt> {
    let Some((balance, held)) = lock_balance(conn, hold.user_id).await? else {
        return Ok(Attempt::NoBalanceRow);
    };
    let key = if hold.checks_key() {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT credits_used, credits_held FROM api_keys WHERE id = $1 AND user_id = $2 FOR UPDATE")
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
        let live: Option<i32> = sqlx::query_scalar("SELECT 1 FROM credit_holds WHERE id = $1")
            .bind(&hold.id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        return Ok(Attempt::Unchanged(if live.is_some() { HoldOutcome::Held } else { outcome }));
    }
    // Another user's hold with this id, committed meanwhile, is found here rather than
    // by an error that would abort the transaction.
    let inserted = sqlx::query(
        "INSERT INTO credit_holds (id, user_id, api_key_id, amount, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&hold.id)
    .bind(hold.user_id)
    .bind(hold.api_key_id)
    .bind(hold.amount)
    .bind(hold.expires_at)
    .bind(hold.now)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    if inserted == 0 {
        return Ok(Attempt::Unchanged(HoldOutcome::Held));
    }
    if hold.amount != 0 {
        sqlx::query("UPDATE balances SET held = held + $1 WHERE user_id = $2")
            .bind(hold.amount)
            .bind(hold.user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if let Some(key_id) = hold.api_key_id {
            sqlx::query("UPDATE api_keys SET credits_held = credits_held + $1 WHERE id = $2 AND user_id = $3")
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
async fn lower_held(conn: &mut PgConnection, user_id: i64, released: &ReleasedHolds) -> StoreResult<()> {
    if released.amount != 0 {
        sqlx::query("UPDATE balances SET held = held - $1 WHERE user_id = $2")
            .bind(released.amount)
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    for (&key_id, &amount) in released.keys.iter().filter(|(_, &amount)| amount != 0) {
        sqlx::query("UPDATE api_keys SET credits_held = credits_held - $1 WHERE id = $2 AND user_id = $3")
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
pub(crate) async fn release_in(conn: &mut PgConnection, id: &str, user_id: i64) -> StoreResult<bool> {
    let row: Option<(Option<i64>, i64)> =
        sqlx::query_as("DELETE FROM credit_holds WHERE id = $1 AND user_id = $2 RETURNING api_key_id, amount")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let Some((key_id, amount)) = row else { return Ok(false) };
    let mut released = ReleasedHolds::default();
    released.add(key_id, amount)?;
    lower_held(conn, user_id, &released).await?;
    Ok(true)
}

#[async_trait]
impl CreditStore for PostgresStore {
    async fn hold_credits(&self, hold: &NewHold) -> StoreResult<HoldOutcome> {
        // Most users have a balances row: lock it first, and create it (committed, outside
        // the transaction, see `billing.rs`) only when it is missing. A user who does not
        // exist fails there, on the foreign key.
        for attempt in 0..2 {
            let mut tx = self.write.begin().await.map_err(db_err)?;
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
                billing::ensure_balance_row(&self.write, hold.user_id, hold.now).await?;
            }
        }
        Err(StoreError::Corrupt(format!("the balances row of user {} keeps disappearing", hold.user_id)))
    }

    async fn release_hold(&self, id: &str) -> StoreResult<bool> {
        // A hold's user never changes: read it first, to lock that user's row before the hold.
        let user_id: Option<i64> = sqlx::query_scalar("SELECT user_id FROM credit_holds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        let Some(user_id) = user_id else { return Ok(false) };
        let mut tx = self.write.begin().await.map_err(db_err)?;
        lock_balance(&mut tx, user_id).await?;
        let released = release_in(&mut tx, id, user_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(released)
    }

    async fn expire_holds(&self, now: Millis) -> StoreResult<u64> {
        let candidates: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM credit_holds WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2")
                .bind(now)
                .bind(EXPIRE_BATCH)
                .fetch_all(&self.write)
                .await
                .map_err(db_err)?;
        let mut count = 0;
        // One short transaction per user, in user order: another instance expiring at the
        // same moment waits on the row lock and then finds those holds gone.
        for user_id in candidates.into_iter().collect::<BTreeSet<_>>() {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            lock_balance(&mut tx, user_id).await?;
            let rows: Vec<(Option<i64>, i64)> = sqlx::query_as(
                "DELETE FROM credit_holds WHERE user_id = $1 AND expires_at <= $2 RETURNING api_key_id, amount",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let mut released = ReleasedHolds::default();
            for (key_id, amount) in rows {
                released.add(key_id, amount)?;
            }
            lower_held(&mut tx, user_id, &released).await?;
            tx.commit().await.map_err(db_err)?;
            count += released.count;
        }
        Ok(count)
    }

    async fn held_credits(&self, user_id: i64) -> StoreResult<i64> {
        let held: Option<i64> = sqlx::query_scalar("SELECT held FROM balances WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        Ok(held.unwrap_or(0))
    }
}
