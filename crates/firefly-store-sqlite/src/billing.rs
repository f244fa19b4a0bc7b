//! Credits on SQLite. Every write transaction starts with a write, so it holds SQLite's
//! single write lock from its first statement: balance checks and updates can never
//! interleave, and no transaction ever has to upgrade a read lock.

use crate::SqliteStore;
use async_trait::async_trait;
use firefly_core::time::Millis;
use firefly_store::sql::{col, conflict_or, db_err, next_balance, BatchRow, LedgerRow};
use firefly_store::*;
use sqlx::SqliteConnection;

pub(crate) async fn ledger_by_key(conn: &mut SqliteConnection, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let row: Option<LedgerRow> =
        sqlx::query_as(concat!("SELECT ", ledger_columns!(), " FROM ledger WHERE idempotency_key = ?"))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    row.map(TryInto::try_into).transpose()
}

/// The ledger append, inside the caller's transaction.
pub(crate) async fn append_in(
    conn: &mut SqliteConnection,
    e: &NewLedgerEntry,
    allow_negative: bool,
) -> StoreResult<LedgerOutcome> {
    // First statement writes: the transaction takes the write lock here.
    sqlx::query(
        "INSERT INTO balances (user_id, balance, updated_at) VALUES (?, 0, ?) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(e.user_id)
    .bind(e.now)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if let Some(existing) = ledger_by_key(conn, &e.idempotency_key).await? {
        return Ok(LedgerOutcome::for_existing(existing, e));
    }
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM balances WHERE user_id = ?")
        .bind(e.user_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let after = match next_balance(balance, e.amount, allow_negative) {
        Ok(after) => after,
        Err(Some(balance)) => return Ok(LedgerOutcome::Insufficient { balance }),
        Err(None) => return Err(StoreError::Corrupt(format!("balance overflow for user {}", e.user_id))),
    };
    sqlx::query("UPDATE balances SET balance = ?, updated_at = ? WHERE user_id = ?")
        .bind(after)
        .bind(e.now)
        .bind(e.user_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, reference, note, actor_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
    .await
    .map_err(db_err)?;
    Ok(LedgerOutcome::Applied(LedgerEntry {
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
    }))
}

#[async_trait]
impl BillingStore for SqliteStore {
    async fn append_ledger(&self, entry: NewLedgerEntry, allow_negative: bool) -> StoreResult<LedgerOutcome> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let outcome = append_in(&mut tx, &entry, allow_negative).await?;
        if matches!(outcome, LedgerOutcome::Applied(_)) {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(outcome)
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
        sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = ?")
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
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
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
        for code in &codes {
            sqlx::query("INSERT INTO redemption_codes (batch_id, code_hash, prefix) VALUES (?, ?, ?)")
                .bind(id)
                .bind(&code.code_hash)
                .bind(&code.prefix)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "redemption_code"))?;
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
        let mut tx = self.write.begin().await.map_err(db_err)?;
        // Claim the code with one conditional write: exactly one concurrent claim succeeds.
        let claimed = sqlx::query(
            "UPDATE redemption_codes SET redeemed_by = ?, redeemed_at = ?
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
        let row = sqlx::query(
            "SELECT c.id, c.redeemed_by, b.amount FROM redemption_codes c
             JOIN redemption_batches b ON b.id = c.batch_id WHERE c.code_hash = ?",
        )
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(RedeemOutcome::NotFound) };
        if claimed == 0 {
            let redeemed_by: Option<i64> = col(&row, 1)?;
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
            LedgerOutcome::Applied(e) => {
                tx.commit().await.map_err(db_err)?;
                Ok(RedeemOutcome::Redeemed(e))
            }
            other => Err(StoreError::Corrupt(format!("redeeming code {code_id}: {other:?}"))),
        }
    }
}
