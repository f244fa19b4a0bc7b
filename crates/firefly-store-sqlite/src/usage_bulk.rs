//! The usage batch in set-wise statements: a batch of any size costs about ten statements
//! (each a hop to SQLite's worker thread) instead of about eight per record, which is what
//! lets the relay's group commit keep up with thousands of requests a second.
//!
//! Same semantics as writing the records one by one in batch order (the conformance
//! suite checks both paths alike): the call-log row's unique request id decides whether a
//! record was written before; a new record's charge is clamped to the balance left after
//! the charges before it in the batch; the key's `credits_used`, the clamped log credits
//! and the daily rollups follow.

use firefly_store::sql::{db_err, usage_already_written, usage_charge_key, LedgerRow};
use firefly_store::*;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::collections::{BTreeMap, HashMap};

/// Rows per multi-row statement: 17 values a row stays far below SQLite's 32 766 binds.
const CHUNK: usize = 400;

// Every statement here is built for its batch's size, so none is kept in the connection's
// prepared-statement cache (`persistent(false)`): hundreds of differently sized, large
// statements per connection would otherwise stay in memory for good.

pub(crate) async fn record_batch(
    conn: &mut SqliteConnection,
    batch: &[UsageRecord],
) -> StoreResult<Vec<RecordedUsage>> {
    let mut out: Vec<Option<RecordedUsage>> = vec![None; batch.len()];

    // 1. Call-log rows; the ones that went in are the new records. Writing first also takes
    //    the write lock for the whole transaction.
    // request id → (the record that wrote its row, the row's id)
    let mut log_ids: HashMap<&str, (usize, i64)> = HashMap::with_capacity(batch.len());
    let mut offset = 0;
    for chunk in batch.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO usage_logs (request_id, user_id, api_key_id, channel_id, endpoint, model, stream, \
             input_tokens, output_tokens, cached_tokens, credits, latency_ms, first_token_ms, status, error_code, \
             error_message, created_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.request_id)
                .push_bind(r.user_id)
                .push_bind(r.api_key_id)
                .push_bind(r.channel_id)
                .push_bind(&r.endpoint)
                .push_bind(&r.model)
                .push_bind(r.stream)
                .push_bind(r.input_tokens)
                .push_bind(r.output_tokens)
                .push_bind(r.cached_tokens)
                .push_bind(r.credits)
                .push_bind(r.latency_ms)
                .push_bind(r.first_token_ms)
                .push_bind(r.status)
                .push_bind(&r.error_code)
                .push_bind(&r.error_message)
                .push_bind(r.created_at);
        });
        q.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id, id");
        let rows: Vec<(String, i64)> =
            q.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(db_err)?;
        for (request_id, id) in rows {
            // A request id twice in one batch: the first occurrence wrote the row.
            if let Some(at) = chunk.iter().position(|r| r.request_id == request_id) {
                log_ids.insert(&chunk[at].request_id, (offset + at, id));
            }
        }
        offset += chunk.len();
    }

    // 2. Charge rows that exist already: those of records written before, and (after the
    //    log row was pruned) of "new" records that were in fact charged long ago.
    let keys: Vec<String> = batch.iter().map(|r| usage_charge_key(&r.request_id)).collect();
    let mut existing: HashMap<String, LedgerEntry> = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM ledger WHERE idempotency_key IN ("
        ));
        let mut list = q.separated(", ");
        for k in chunk {
            list.push_bind(k);
        }
        q.push(")");
        let rows: Vec<LedgerRow> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(db_err)?;
        for row in rows {
            let entry = LedgerEntry::try_from(row)?;
            existing.insert(entry.idempotency_key.clone(), entry);
        }
    }
    let mut stale_logs: Vec<i64> = Vec::new();
    // Records repeating a request id earlier in the batch: they report what the first did.
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let earlier = existing.get(&keys[i]).cloned();
        match log_ids.get(r.request_id.as_str()) {
            None => out[i] = Some(usage_already_written(r, earlier)),
            Some(&(first, log_id)) if first == i && earlier.is_some() => {
                stale_logs.push(log_id);
                out[i] = Some(usage_already_written(r, earlier));
            }
            Some(&(first, _)) if first != i => {
                repeats.push((i, first));
                out[i] = Some(RecordedUsage { charged: 0, ledger: None, applied: false });
            }
            Some(_) => {}
        }
    }
    for id in &stale_logs {
        sqlx::query("DELETE FROM usage_logs WHERE id = ?").bind(id).execute(&mut *conn).await.map_err(db_err)?;
    }

    // 3. Balances of the users charging, then each new charge clamped in batch order.
    let charging: Vec<usize> = (0..batch.len()).filter(|&i| out[i].is_none() && batch[i].credits > 0).collect();
    let mut balances: BTreeMap<i64, i64> = charging.iter().map(|&i| (batch[i].user_id, 0)).collect();
    if !balances.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT user_id, balance FROM balances WHERE user_id IN (");
        let mut list = q.separated(", ");
        for user in balances.keys() {
            list.push_bind(*user);
        }
        q.push(")");
        let rows: Vec<(i64, i64)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(db_err)?;
        for (user, balance) in rows {
            balances.insert(user, balance);
        }
    }
    let start = balances.clone();
    // (batch index, amount, balance after)
    let mut charges: Vec<(usize, i64, i64)> = Vec::with_capacity(charging.len());
    for &i in &charging {
        let r = &batch[i];
        let balance = balances.get_mut(&r.user_id).expect("every charging user has an entry");
        let amount = r.credits.min((*balance).max(0));
        if amount > 0 {
            *balance -= amount;
            charges.push((i, amount, *balance));
        }
    }

    // 4. Ledger rows and balances.
    let mut entries: HashMap<usize, LedgerEntry> = HashMap::with_capacity(charges.len());
    for chunk in charges.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, reference, note, actor_id, \
             created_at) ",
        );
        q.push_values(chunk, |mut b, &(i, amount, after)| {
            let r = &batch[i];
            b.push_bind(r.user_id)
                .push_bind(LedgerKind::Charge.as_str())
                .push_bind(-amount)
                .push_bind(after)
                .push_bind(&keys[i])
                .push_bind(&r.request_id)
                .push_bind(None::<String>)
                .push_bind(None::<i64>)
                .push_bind(r.created_at);
        });
        q.push(" RETURNING idempotency_key, id");
        let rows: Vec<(String, i64)> =
            q.build_query_as().persistent(false).fetch_all(&mut *conn).await.map_err(db_err)?;
        let ids: HashMap<String, i64> = rows.into_iter().collect();
        for &(i, amount, after) in chunk {
            let r = &batch[i];
            let id = *ids.get(&keys[i]).ok_or_else(|| StoreError::Corrupt("a ledger insert returned no id".into()))?;
            entries.insert(
                i,
                LedgerEntry {
                    id,
                    user_id: r.user_id,
                    kind: LedgerKind::Charge,
                    amount: -amount,
                    balance_after: after,
                    idempotency_key: keys[i].clone(),
                    reference: Some(r.request_id.clone()),
                    note: None,
                    actor_id: None,
                    created_at: r.created_at,
                },
            );
        }
    }
    let now = batch.iter().map(|r| r.created_at).max().unwrap_or_default();
    for (user, balance) in &balances {
        if start.get(user) != Some(balance) {
            sqlx::query("UPDATE balances SET balance = ?, updated_at = ? WHERE user_id = ?")
                .bind(balance)
                .bind(now)
                .bind(user)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
    }

    // 5. The new records' outcomes; clamped log credits; keys; rollups.
    let mut key_spend: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut days: BTreeMap<(i64, i64, &str), [i64; 5]> = BTreeMap::new();
    for (i, r) in batch.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let ledger = entries.remove(&i);
        let charged = ledger.as_ref().map_or(0, |e| -e.amount);
        if charged != r.credits {
            let (_, log_id) = log_ids[r.request_id.as_str()];
            sqlx::query("UPDATE usage_logs SET credits = ? WHERE id = ?")
                .bind(charged)
                .bind(log_id)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        if let (Some(key), true) = (r.api_key_id, charged > 0) {
            *key_spend.entry((key, r.user_id)).or_default() += charged;
        }
        let day = days.entry((r.user_id, r.created_at.div_euclid(DAY_MS), r.model.as_str())).or_default();
        day[0] += 1;
        day[1] += i64::from(r.status >= 400);
        day[2] += r.input_tokens;
        day[3] += r.output_tokens;
        day[4] += charged;
        out[i] = Some(RecordedUsage { charged, ledger, applied: true });
    }
    for ((key, user), amount) in key_spend {
        sqlx::query("UPDATE api_keys SET credits_used = credits_used + ? WHERE id = ? AND user_id = ?")
            .bind(amount)
            .bind(key)
            .bind(user)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let days: Vec<_> = days.into_iter().collect();
    for chunk in days.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO usage_daily (user_id, day, model, requests, failures, input_tokens, output_tokens, credits) ",
        );
        q.push_values(chunk, |mut b, ((user, day, model), t)| {
            b.push_bind(*user)
                .push_bind(*day)
                .push_bind(*model)
                .push_bind(t[0])
                .push_bind(t[1])
                .push_bind(t[2])
                .push_bind(t[3])
                .push_bind(t[4]);
        });
        q.push(
            " ON CONFLICT (user_id, day, model) DO UPDATE SET requests = requests + excluded.requests, \
             failures = failures + excluded.failures, input_tokens = input_tokens + excluded.input_tokens, \
             output_tokens = output_tokens + excluded.output_tokens, credits = credits + excluded.credits",
        );
        q.build().persistent(false).execute(&mut *conn).await.map_err(db_err)?;
    }
    for (i, first) in repeats {
        let written = out[first].clone().expect("the first occurrence has its outcome");
        out[i] = Some(usage_already_written(&batch[i], written.ledger));
    }
    Ok(out.into_iter().map(|o| o.expect("every record has an outcome")).collect())
}
