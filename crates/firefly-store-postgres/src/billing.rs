//! Credits on PostgreSQL. Every ledger write of a user runs while holding that user's
//! `balances` row lock (`SELECT ... FOR UPDATE`), so balance checks and updates of one
//! user never interleave: a waiting writer resumes on the committed row, and under READ
//! COMMITTED its next statements see the ledger rows the previous writer committed.
//! The balance row is created, committed, before the transaction that locks it; only a
//! user's sign-up grant creates it inside the transaction that creates the user.

use crate::PostgresStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{col, conflict_or, db_err, next_balance, BatchRow, LedgerRow};
use firefly_store::*;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};

/// Codes per `INSERT` of a new batch: three binds each, well under PostgreSQL's 65535.
const CODES_PER_INSERT: usize = 500;

/// What [`append_in`] did inside the caller's transaction.
#[derive(Debug)]
pub(crate) enum Appended {
    Outcome(LedgerOutcome),
    /// The ledger insert collided with a row another transaction committed under the
    /// same idempotency key. The transaction is aborted: roll it back, then read that row.
    KeyTaken,
}

/// Creates the user's balance row if it is missing, in its own autocommitted statement:
/// the transaction that follows then always finds a committed row to lock.
pub(crate) async fn ensure_balance_row(pool: &PgPool, user_id: i64, now: Millis) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO balances (user_id, balance, updated_at) VALUES ($1, 0, $2) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn ledger_by_key<'e>(ex: impl PgExecutor<'e>, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let row: Option<LedgerRow> =
        sqlx::query_as(concat!("SELECT ", ledger_columns!(), " FROM ledger WHERE idempotency_key = $1"))
            .bind(key)
            .fetch_optional(ex)
            .await
            .map_err(db_err)?;
    row.map(TryInto::try_into).transpose()
}

/// The ledger append, inside the caller's transaction; the user's balance row must exist
/// ([`ensure_balance_row`]).
pub(crate) async fn append_in(
    conn: &mut PgConnection,
    e: &NewLedgerEntry,
    allow_negative: bool,
) -> StoreResult<Appended> {
    // The row lock serializes every ledger write of this user until the transaction ends.
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM balances WHERE user_id = $1 FOR UPDATE")
        .bind(e.user_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if let Some(existing) = ledger_by_key(&mut *conn, &e.idempotency_key).await? {
        return Ok(Appended::Outcome(LedgerOutcome::for_existing(existing, e)));
    }
    let after = match next_balance(balance, e.amount, allow_negative) {
        Ok(after) => after,
        Err(Some(balance)) => return Ok(Appended::Outcome(LedgerOutcome::Insufficient { balance })),
        Err(None) => return Err(StoreError::Corrupt(format!("balance overflow for user {}", e.user_id))),
    };
    sqlx::query("UPDATE balances SET balance = $1, updated_at = $2 WHERE user_id = $3")
        .bind(after)
        .bind(e.now)
        .bind(e.user_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    // Keys are unique across users, and the lock above is per user: the same key used
    // for another user at the same moment is only caught here.
    let inserted = sqlx::query_scalar(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, reference, note, actor_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
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
    .fetch_one(&mut *conn)
    .await;
    let id: i64 = match inserted {
        Ok(id) => id,
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(Appended::KeyTaken),
        Err(err) => return Err(db_err(err)),
    };
    Ok(Appended::Outcome(LedgerOutcome::Applied(LedgerEntry {
        id,
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

/// The sign-up grant of a user created in the caller's still-open transaction. No one else
/// can see that user yet, so its balance row is inserted in this same transaction, where
/// [`append_in`] then finds and locks it.
pub(crate) async fn signup_grant_in(
    conn: &mut PgConnection,
    user_id: i64,
    amount: i64,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO balances (user_id, balance, updated_at) VALUES ($1, 0, $2)")
        .bind(user_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let grant = NewLedgerEntry::signup_grant(user_id, amount, now);
    match append_in(conn, &grant, false).await? {
        Appended::Outcome(LedgerOutcome::Applied(_)) => Ok(()),
        // A negative grant, or a key another user's row already holds: either way the
        // caller's transaction must not commit.
        other => Err(StoreError::Corrupt(format!("sign-up grant for user {user_id}: {other:?}"))),
    }
}

#[async_trait]
impl BillingStore for PostgresStore {
    async fn append_ledger(&self, entry: NewLedgerEntry, allow_negative: bool) -> StoreResult<LedgerOutcome> {
        ensure_balance_row(&self.write, entry.user_id, entry.now).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        match append_in(&mut tx, &entry, allow_negative).await? {
            Appended::Outcome(outcome @ LedgerOutcome::Applied(_)) => {
                tx.commit().await.map_err(db_err)?;
                Ok(outcome)
            }
            Appended::Outcome(outcome) => {
                tx.rollback().await.map_err(db_err)?;
                Ok(outcome)
            }
            Appended::KeyTaken => {
                tx.rollback().await.map_err(db_err)?;
                let existing = ledger_by_key(&self.write, &entry.idempotency_key).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("ledger key {:?} collided but is absent", entry.idempotency_key))
                })?;
                Ok(LedgerOutcome::for_existing(existing, &entry))
            }
        }
    }

    async fn balance(&self, user_id: i64) -> StoreResult<i64> {
        let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM balances WHERE user_id = $1")
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
            " FROM ledger WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(user_id)
        .bind(before)
        .bind(limit)
        .fetch_all(self.reader())
        .await
        .map_err(db_err)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn ledger_sum(&self, user_id: i64) -> StoreResult<i64> {
        // SUM(bigint) is NUMERIC in PostgreSQL.
        sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0)::bigint FROM ledger WHERE user_id = $1")
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO redemption_batches (name, amount, count, expires_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&batch.name)
        .bind(batch.amount)
        .bind(codes.len() as i64)
        .bind(batch.expires_at)
        .bind(batch.created_by)
        .bind(batch.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        for chunk in codes.chunks(CODES_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Postgres>::new("INSERT INTO redemption_codes (batch_id, code_hash, prefix) ");
            insert.push_values(chunk, |mut row, code| {
                row.push_bind(id).push_bind(&code.code_hash).push_bind(&code.prefix);
            });
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
            " FROM redemption_batches b ORDER BY b.created_at DESC, b.id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.reader())
        .await
        .map_err(db_err)?;
        Ok(Page { items: rows.into_iter().map(Into::into).collect(), total })
    }

    async fn redeem_code(&self, code_hash: &str, user_id: i64, now: Millis) -> StoreResult<RedeemOutcome> {
        ensure_balance_row(&self.write, user_id, now).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // Claim the code with one conditional write: a concurrent claim waits on the row
        // lock, re-checks `redeemed_by IS NULL` against the winner's committed row and
        // updates nothing.
        let claimed = sqlx::query(
            "UPDATE redemption_codes SET redeemed_by = $1, redeemed_at = $2
             WHERE code_hash = $3 AND redeemed_by IS NULL
               AND batch_id IN (SELECT id FROM redemption_batches WHERE expires_at IS NULL OR expires_at > $2)",
        )
        .bind(user_id)
        .bind(now)
        .bind(code_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        let row = sqlx::query(
            "SELECT c.id, c.redeemed_by, b.amount FROM redemption_codes c
             JOIN redemption_batches b ON b.id = c.batch_id WHERE c.code_hash = $1",
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
            Appended::Outcome(LedgerOutcome::Applied(e)) => {
                tx.commit().await.map_err(db_err)?;
                Ok(RedeemOutcome::Redeemed(e))
            }
            other => Err(StoreError::Corrupt(format!("redeeming code {code_id}: {other:?}"))),
        }
    }
}
