//! Credits on MySQL/MariaDB. The SQL and the outcomes mirror the SQLite backend; what
//! differs is how writers are kept apart. InnoDB locks rows, not the database, so every
//! ledger write of a user first locks that user's `balances` row (`SELECT ... FOR
//! UPDATE`) and then works alone: the balance it reads cannot change under it, and the
//! idempotency check, which runs after the lock wait, sees every earlier append.
//!
//! The balances row is created, if missing, by an autocommitted `INSERT IGNORE` before
//! the transaction begins. Inside a transaction that insert would keep the shared lock
//! it takes on an existing row, and two transactions both upgrading their shared lock
//! to the exclusive one of the `UPDATE` deadlock.

use crate::{inserted_id, MysqlStore};
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{col, conflict_or, db_err, next_balance, BatchRow, LedgerRow};
use firefly_store::*;
use sqlx::{Connection, MySql, MySqlConnection, QueryBuilder};

/// Codes per `INSERT` of a new batch: 3 parameters each, far below the 65,535 limit.
const CODES_PER_INSERT: usize = 500;

/// Makes sure the user has a balances row, in its own (autocommitted) statement: see the
/// module comment. A missing user is ignored here (`IGNORE` also demotes foreign-key
/// errors to warnings) and reported by [`append_in`].
pub(crate) async fn ensure_balance_row(conn: &mut MySqlConnection, user_id: i64, now: Millis) -> StoreResult<()> {
    sqlx::query("INSERT IGNORE INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?)")
        .bind(user_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn ledger_by_key(conn: &mut MySqlConnection, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let row: Option<LedgerRow> =
        sqlx::query_as(concat!("SELECT ", ledger_columns!(), " FROM ledger WHERE idempotency_key = ?"))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    row.map(TryInto::try_into).transpose()
}

/// The ledger append, inside the caller's transaction, after [`ensure_balance_row`].
/// `None` when the insert lost a race for the idempotency key to a transaction that
/// holds no lock this one takes (another user's append with the same key): the caller
/// rolls back and reads the winner's row.
pub(crate) async fn append_in(
    conn: &mut MySqlConnection,
    e: &NewLedgerEntry,
    allow_negative: bool,
) -> StoreResult<Option<LedgerOutcome>> {
    // Serializes this user's ledger writes. A locking read takes no snapshot, so the
    // transaction's snapshot starts with the idempotency check below, after the wait.
    let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM balances WHERE user_id = ? FOR UPDATE")
        .bind(e.user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let balance = match balance {
        Some(balance) => balance,
        None => {
            // `INSERT IGNORE` wrote nothing: there is no such user. This plain insert
            // reports why, as the other backends do (a foreign-key error).
            sqlx::query("INSERT INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?)")
                .bind(e.user_id)
                .bind(e.now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            0
        }
    };
    if let Some(existing) = ledger_by_key(conn, &e.idempotency_key).await? {
        return Ok(Some(LedgerOutcome::for_existing(existing, e)));
    }
    let after = match next_balance(balance, e.amount, allow_negative) {
        Ok(after) => after,
        Err(Some(balance)) => return Ok(Some(LedgerOutcome::Insufficient { balance })),
        Err(None) => return Err(StoreError::Corrupt(format!("balance overflow for user {}", e.user_id))),
    };
    sqlx::query("UPDATE balances SET balance = ?, updated_at = ? WHERE user_id = ?")
        .bind(after)
        .bind(e.now)
        .bind(e.user_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let inserted = sqlx::query(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, reference, note, actor_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.user_id)
    .bind(e.kind.as_str())
    .bind(e.amount)
    .bind(after)
    .bind(&e.idempotency_key)
    .bind(&e.reference)
    .bind(&e.note)
    .bind(e.actor_id)
    .bind(e.now)
    .execute(&mut *conn)
    .await;
    let done = match inserted {
        Ok(done) => done,
        // The idempotency key is the ledger's only unique column besides the id.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(None),
        Err(err) => return Err(db_err(err)),
    };
    Ok(Some(LedgerOutcome::Applied(LedgerEntry {
        id: inserted_id(done)?,
        user_id: e.user_id,
        kind: e.kind,
        amount: e.amount,
        balance_after: after,
        idempotency_key: e.idempotency_key.clone(),
        reference: e.reference.clone(),
        note: e.note.clone(),
        actor_id: e.actor_id,
        created_at: e.now,
    })))
}

/// The sign-up grant of a user inserted earlier in the caller's transaction. No other
/// transaction can see that user yet, so its balances row is created right here, inside
/// the transaction, with a plain insert: [`ensure_balance_row`] runs outside any
/// transaction and could not see the uncommitted user, and [`append_in`]'s own fallback
/// insert would follow a locking read of a missing row, whose gap lock two concurrent
/// sign-ups would both take and then both wait on. With the row in place, `append_in`'s
/// `FOR UPDATE` finds it, already locked by this transaction.
pub(crate) async fn grant_new_user(conn: &mut MySqlConnection, grant: &NewLedgerEntry) -> StoreResult<()> {
    sqlx::query("INSERT INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?)")
        .bind(grant.user_id)
        .bind(grant.now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    match append_in(conn, grant, false).await? {
        Some(LedgerOutcome::Applied(_)) => Ok(()),
        // As on SQLite and PostgreSQL, a grant that is not applied fails the sign-up, and
        // the caller does not commit.
        other => Err(StoreError::Corrupt(format!("sign-up grant for user {}: {other:?}", grant.user_id))),
    }
}

#[async_trait]
impl BillingStore for MysqlStore {
    async fn append_ledger(&self, entry: NewLedgerEntry, allow_negative: bool) -> StoreResult<LedgerOutcome> {
        crate::retry_deadlocks(|| {
            let entry = entry.clone();
            async move {
                let mut conn = self.write.acquire().await.map_err(db_err)?;
                ensure_balance_row(&mut conn, entry.user_id, entry.now).await?;
                let mut tx = conn.begin().await.map_err(db_err)?;
                match append_in(&mut tx, &entry, allow_negative).await? {
                    Some(outcome @ LedgerOutcome::Applied(_)) => {
                        tx.commit().await.map_err(db_err)?;
                        Ok(outcome)
                    }
                    Some(outcome) => {
                        tx.rollback().await.map_err(db_err)?;
                        Ok(outcome)
                    }
                    None => {
                        tx.rollback().await.map_err(db_err)?;
                        // Outside the transaction, so the read sees the winner's committed row.
                        match ledger_by_key(&mut conn, &entry.idempotency_key).await? {
                            Some(existing) => Ok(LedgerOutcome::for_existing(existing, &entry)),
                            None => Err(StoreError::Corrupt(format!(
                                "idempotency key {:?} conflicted but no row has it",
                                entry.idempotency_key
                            ))),
                        }
                    }
                }
            }
        })
        .await
    }

    async fn balance(&self, user_id: i64) -> StoreResult<i64> {
        let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM balances WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.write)
            .await
            .map_err(db_err)?;
        Ok(balance.unwrap_or(0))
    }

    async fn list_ledger(&self, user_id: i64, before: Option<i64>, limit: i64) -> StoreResult<Vec<LedgerEntry>> {
        let rows: Vec<LedgerRow> = sqlx::query_as(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM ledger WHERE user_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
        ))
        .bind(user_id)
        .bind(before)
        .bind(before)
        .bind(limit)
        .fetch_all(self.reader())
        .await
        .map_err(db_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn ledger_sum(&self, user_id: i64) -> StoreResult<i64> {
        // SUM of a BIGINT is a DECIMAL in MySQL: cast back to an integer.
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS SIGNED) FROM ledger WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(&self.write)
            .await
            .map_err(db_err)
    }

    async fn create_redemption_batch(
        &self,
        batch: NewRedemptionBatch,
        codes: Vec<NewRedemptionCode>,
    ) -> StoreResult<RedemptionBatch> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "INSERT INTO redemption_batches (name, amount, count, expires_at, created_by, created_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&batch.name)
        .bind(batch.amount)
        .bind(codes.len() as i64)
        .bind(batch.expires_at)
        .bind(batch.created_by)
        .bind(batch.now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let id = inserted_id(done)?;
        for chunk in codes.chunks(CODES_PER_INSERT) {
            let mut insert = QueryBuilder::<MySql>::new("INSERT INTO redemption_codes (batch_id, code_hash, prefix) ");
            insert.push_values(chunk, |mut row, code| {
                row.push_bind(id).push_bind(&code.code_hash).push_bind(&code.prefix);
            });
            // On an error the dropped transaction rolls back: no batch, no codes.
            insert.build().execute(&mut *tx).await.map_err(|e| conflict_or(e, "redemption_code"))?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(RedemptionBatch {
            id,
            name: batch.name,
            amount: batch.amount,
            count: codes.len() as i64,
            redeemed: 0,
            expires_at: batch.expires_at,
            created_by: batch.created_by,
            created_at: batch.now,
        })
    }

    async fn list_redemption_batches(&self, limit: i64, offset: i64) -> StoreResult<Page<RedemptionBatch>> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM redemption_batches")
            .fetch_one(self.reader())
            .await
            .map_err(db_err)?;
        let rows: Vec<BatchRow> = sqlx::query_as(concat!(
            "SELECT ",
            batch_columns!(),
            " FROM redemption_batches b ORDER BY b.created_at DESC, b.id DESC LIMIT ? OFFSET ?"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.reader())
        .await
        .map_err(db_err)?;
        Ok(Page { items: rows.into_iter().map(Into::into).collect(), total })
    }

    async fn redeem_code(&self, code_hash: &str, user_id: i64, now: Millis) -> StoreResult<RedeemOutcome> {
        crate::retry_deadlocks(|| async move {
            let mut conn = self.write.acquire().await.map_err(db_err)?;
            ensure_balance_row(&mut conn, user_id, now).await?;
            let mut tx = conn.begin().await.map_err(db_err)?;
            // Claim the code with one conditional write: exactly one concurrent claim succeeds.
            // The others queue on the code's row lock and, once the winner commits, re-read
            // the row as redeemed and match nothing. The hint pins the unique hash index: on a
            // small table MariaDB may prefer a range over `redeemed_by IS NULL`, and under
            // REPEATABLE READ that scan would lock every unredeemed code and the gaps between.
            let claimed = sqlx::query(
                "UPDATE redemption_codes FORCE INDEX (redemption_codes_hash) SET redeemed_by = ?, redeemed_at = ?
             WHERE code_hash = ? AND redeemed_by IS NULL
               AND batch_id IN (SELECT id FROM redemption_batches WHERE expires_at IS NULL OR expires_at > ?)",
            )
            .bind(user_id)
            .bind(now)
            .bind(code_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            // The transaction's snapshot starts here, after the lock wait, so it sees
            // whatever the winner committed.
            let row = sqlx::query(
                "SELECT c.id, c.redeemed_by, b.amount FROM redemption_codes c
             JOIN redemption_batches b ON b.id = c.batch_id WHERE c.code_hash = ?",
            )
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some(row) = row else {
                tx.rollback().await.map_err(db_err)?;
                return Ok(RedeemOutcome::NotFound);
            };
            if claimed == 0 {
                let redeemed_by: Option<i64> = col(&row, 1)?;
                tx.rollback().await.map_err(db_err)?;
                return Ok(if redeemed_by.is_some() { RedeemOutcome::AlreadyRedeemed } else { RedeemOutcome::Expired });
            }
            let (code_id, amount): (i64, i64) = (col(&row, 0)?, col(&row, 2)?);
            let entry = NewLedgerEntry {
                user_id,
                kind: LedgerKind::Redeem,
                amount,
                idempotency_key: format!("redeem:{code_id}"),
                reference: Some(format!("redemption_code:{code_id}")),
                note: None,
                actor_id: None,
                now,
            };
            match append_in(&mut tx, &entry, true).await? {
                Some(LedgerOutcome::Applied(e)) => {
                    tx.commit().await.map_err(db_err)?;
                    Ok(RedeemOutcome::Redeemed(e))
                }
                other => Err(StoreError::Corrupt(format!("redeeming code {code_id}: {other:?}"))),
            }
        })
        .await
    }
}
