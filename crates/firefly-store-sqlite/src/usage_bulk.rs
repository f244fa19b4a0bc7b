//! The usage batch in set-wise statements: a batch of any size costs a few dozen
//! statements (each a hop to SQLite's worker thread) instead of about eight per record,
//! which is what lets the relay's group commit keep up with thousands of requests a second.
//!
//! Same semantics as writing the records one by one in batch order (the conformance
//! suite checks both paths alike): a call-log row with the record's request id means the
//! record was written before; a new record's charge is clamped to the balance left after
//! the charges before it in the batch; the key's `credits_used`, the log's credits and
//! the daily rollups follow.
//!
//! Two things keep the per-record cost low. Statements come in a few fixed sizes
//! ([`SIZES`]), so each is prepared once per connection and then served from the
//! statement cache instead of being parsed again for every batch. And the inserts return
//! no rows: which records are new is read first (under the write lock, taken by
//! `BEGIN IMMEDIATE`, so nothing can change in between), and the ledger rows' ids follow
//! from the last inserted row id, since a multi-row insert numbers its rows one after the
//! other. Every row a statement returns would be a hand-over between SQLite's worker
//! thread and the writer task.

use firefly_store::sql::{db_err, usage_already_written, usage_charge_key, LedgerRow};
use firefly_store::*;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Rows per statement, largest first: a chunk is cut at the largest size that fits. With
/// 17 values a row the largest stays far below SQLite's 32 766 binds, and the few prepared
/// statements a connection keeps stay small.
const SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// `items` in consecutive chunks of the sizes in [`SIZES`].
fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = SIZES.into_iter().find(|&s| s <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// A multi-row insert's text: `head`, then `rows` tuples of `width` placeholders, each
/// tuple's `fixed` values (constants) appended after them. Made once per statement and
/// size, then kept: building thousands of placeholders per batch cost more than binding.
struct InsertSql {
    head: &'static str,
    width: usize,
    fixed: &'static str,
    made: [OnceLock<String>; SIZES.len()],
}

impl InsertSql {
    const fn new(head: &'static str, width: usize, fixed: &'static str) -> InsertSql {
        InsertSql { head, width, fixed, made: [const { OnceLock::new() }; SIZES.len()] }
    }

    fn text(&'static self, rows: usize) -> &'static str {
        let at = SIZES.iter().position(|&s| s == rows).expect("a chunk has one of the sizes");
        self.made[at].get_or_init(|| {
            let row = format!("({}{})", vec!["?"; self.width].join(", "), self.fixed);
            format!("{} VALUES {}", self.head, vec![row; rows].join(", "))
        })
    }
}

macro_rules! ledger_head {
    () => {
        " (user_id, amount, balance_after, idempotency_key, reference, created_at, kind, note, actor_id)"
    };
}
static LEDGER: [InsertSql; 2] = [
    InsertSql::new(concat!("INSERT OR IGNORE INTO ledger", ledger_head!()), 6, ", 'charge', NULL, NULL"),
    InsertSql::new(concat!("INSERT INTO ledger", ledger_head!()), 6, ", 'charge', NULL, NULL"),
];
macro_rules! log_head {
    () => {
        " (request_id, user_id, api_key_id, channel_id, endpoint, model, stream, input_tokens, output_tokens, \
         cached_tokens, credits, latency_ms, first_token_ms, status, error_code, error_message, created_at)"
    };
}
static LOGS: [InsertSql; 2] = [
    InsertSql::new(concat!("INSERT OR IGNORE INTO usage_logs", log_head!()), 17, ""),
    InsertSql::new(concat!("INSERT INTO usage_logs", log_head!()), 17, ""),
];

/// `head` (a query ending in `IN (`) completed with `values` as binds.
fn select_in<'a, V>(head: &'static str, values: impl IntoIterator<Item = V>) -> QueryBuilder<'a, Sqlite>
where
    V: 'a + sqlx::Encode<'a, Sqlite> + sqlx::Type<Sqlite>,
{
    let mut q = QueryBuilder::new(head);
    let mut list = q.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    q.push(")");
    q
}

/// How a batch is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every record is taken to be new (the usual case: a request is recorded once) and
    /// nothing is read first: the inserts skip rows whose request id or charge key exists
    /// (`OR IGNORE`), and if any was skipped, or the batch repeats a request id, the
    /// batch gives up (`None`) and the caller rolls back and writes it [`Mode::Checked`].
    /// The unique indexes do the checking the reads would have done.
    AssumeNew = 0,
    /// Which records were written before is read first; each is reported, not written.
    Checked = 1,
}

/// Writes `batch` on a connection inside a transaction begun with `BEGIN IMMEDIATE`.
/// `None` only in [`Mode::AssumeNew`], when the batch is not all new: the transaction
/// must then be rolled back.
pub(crate) async fn record_batch(
    conn: &mut SqliteConnection,
    batch: &[UsageRecord],
    mode: Mode,
) -> StoreResult<Option<Vec<RecordedUsage>>> {
    let mut out: Vec<Option<RecordedUsage>> = vec![None; batch.len()];
    let assume_new = mode == Mode::AssumeNew;

    // 1. Records written before: their call-log rows exist.
    let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        first_of.entry(r.request_id.as_str()).or_insert(i);
    }
    if assume_new && first_of.len() < batch.len() {
        return Ok(None);
    }
    let keys: Vec<String> = batch.iter().map(|r| usage_charge_key(&r.request_id)).collect();
    let mut logged: HashSet<String> = HashSet::new();
    let mut existing: HashMap<String, LedgerEntry> = HashMap::new();
    if mode == Mode::Checked {
        // Each request id once: the positions of first occurrences.
        let firsts: Vec<usize> = (0..batch.len()).filter(|&i| first_of[batch[i].request_id.as_str()] == i).collect();
        let unique: Vec<&str> = firsts.iter().map(|&i| batch[i].request_id.as_str()).collect();
        for chunk in chunks(&unique) {
            let mut q = select_in("SELECT request_id FROM usage_logs WHERE request_id IN (", chunk.iter().copied());
            let rows: Vec<(String,)> = q.build_query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
            logged.extend(rows.into_iter().map(|(id,)| id));
        }

        // 2. Charge rows that exist already: those of records written before, and (after
        //    the log row was pruned) of "new" records that were in fact charged long ago.
        let unique_keys: Vec<&String> = firsts.iter().map(|&i| &keys[i]).collect();
        for chunk in chunks(&unique_keys) {
            let head = concat!("SELECT ", ledger_columns!(), " FROM ledger WHERE idempotency_key IN (");
            let mut q = select_in(head, chunk.iter().map(|k| k.as_str()));
            let rows: Vec<LedgerRow> = q.build_query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
            for row in rows {
                let entry = LedgerEntry::try_from(row)?;
                existing.insert(entry.idempotency_key.clone(), entry);
            }
        }
    }
    // Records repeating a request id earlier in the batch: they report what the first did.
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, r) in batch.iter().enumerate() {
        let first = first_of[r.request_id.as_str()];
        if first != i {
            repeats.push((i, first));
            out[i] = Some(RecordedUsage { charged: 0, ledger: None, applied: false });
        } else if logged.contains(&r.request_id) || existing.contains_key(&keys[i]) {
            out[i] = Some(usage_already_written(r, existing.get(&keys[i]).cloned()));
        }
    }
    // The new records, in batch order.
    let new: Vec<usize> = (0..batch.len()).filter(|&i| out[i].is_none()).collect();

    // 3. Balances of the users charging, then each new charge clamped in batch order.
    let mut balances: BTreeMap<i64, i64> =
        new.iter().filter(|&&i| batch[i].credits > 0).map(|&i| (batch[i].user_id, 0)).collect();
    if !balances.is_empty() {
        let users: Vec<i64> = balances.keys().copied().collect();
        for chunk in chunks(&users) {
            let mut q = select_in("SELECT user_id, balance FROM balances WHERE user_id IN (", chunk.iter().copied());
            let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut *conn).await.map_err(db_err)?;
            for (user, balance) in rows {
                balances.insert(user, balance);
            }
        }
    }
    let start = balances.clone();
    // (batch index, amount, balance after)
    let mut charges: Vec<(usize, i64, i64)> = Vec::with_capacity(new.len());
    for &i in &new {
        let r = &batch[i];
        if r.credits <= 0 {
            continue;
        }
        let balance = balances.get_mut(&r.user_id).expect("every charging user has an entry");
        let amount = r.credits.min((*balance).max(0));
        if amount > 0 {
            *balance -= amount;
            charges.push((i, amount, *balance));
        }
    }

    // 4. Ledger rows, numbered from the last row id each insert reports, and balances.
    let mut entries: HashMap<usize, LedgerEntry> = HashMap::with_capacity(charges.len());
    for chunk in chunks(&charges) {
        let mut q = sqlx::query(LEDGER[mode as usize].text(chunk.len()));
        for &(i, amount, after) in chunk {
            let r = &batch[i];
            q = q.bind(r.user_id).bind(-amount).bind(after).bind(keys[i].as_str()).bind(r.request_id.as_str());
            q = q.bind(r.created_at);
        }
        let done = q.execute(&mut *conn).await.map_err(db_err)?;
        if done.rows_affected() != chunk.len() as u64 {
            if assume_new {
                return Ok(None);
            }
            return Err(StoreError::Corrupt("a ledger insert wrote fewer rows than it was given".into()));
        }
        let first_id = done.last_insert_rowid() - chunk.len() as i64 + 1;
        for (n, &(i, amount, after)) in chunk.iter().enumerate() {
            let r = &batch[i];
            entries.insert(
                i,
                LedgerEntry {
                    id: first_id + n as i64,
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

    // 5. The new records' outcomes and call-log rows (with what was really charged); keys;
    //    rollups.
    let mut key_spend: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut days: BTreeMap<(i64, i64, &str), [i64; 5]> = BTreeMap::new();
    let mut charged_of: Vec<(usize, i64)> = Vec::with_capacity(new.len());
    for &i in &new {
        let r = &batch[i];
        let ledger = entries.remove(&i);
        let charged = ledger.as_ref().map_or(0, |e| -e.amount);
        if let (Some(key), true) = (r.api_key_id, charged > 0) {
            *key_spend.entry((key, r.user_id)).or_default() += charged;
        }
        let day = days.entry((r.user_id, r.created_at.div_euclid(DAY_MS), r.model.as_str())).or_default();
        day[0] += 1;
        day[1] += i64::from(r.status >= 400);
        day[2] += r.input_tokens;
        day[3] += r.output_tokens;
        day[4] += charged;
        charged_of.push((i, charged));
        out[i] = Some(RecordedUsage { charged, ledger, applied: true });
    }
    for chunk in chunks(&charged_of) {
        let mut q = sqlx::query(LOGS[mode as usize].text(chunk.len()));
        for &(i, charged) in chunk {
            let r = &batch[i];
            q = q.bind(r.request_id.as_str()).bind(r.user_id).bind(r.api_key_id).bind(r.channel_id);
            q = q.bind(r.endpoint.as_str()).bind(r.model.as_str()).bind(r.stream).bind(r.input_tokens);
            q = q.bind(r.output_tokens).bind(r.cached_tokens).bind(charged).bind(r.latency_ms);
            q = q.bind(r.first_token_ms).bind(r.status).bind(r.error_code.as_deref());
            q = q.bind(r.error_message.as_deref()).bind(r.created_at);
        }
        let done = q.execute(&mut *conn).await.map_err(db_err)?;
        if assume_new && done.rows_affected() != chunk.len() as u64 {
            return Ok(None);
        }
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
    for chunk in chunks(&days) {
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
        q.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    for (i, first) in repeats {
        let written = out[first].clone().expect("the first occurrence has its outcome");
        out[i] = Some(usage_already_written(&batch[i], written.ledger));
    }
    Ok(Some(out.into_iter().map(|o| o.expect("every record has an outcome")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_texts_have_a_tuple_per_row_and_the_charge_kind() {
        for sql in [&LEDGER[0], &LEDGER[1], &LOGS[0], &LOGS[1]] {
            let columns = sql.head.split('(').nth(1).unwrap().split(',').count();
            for rows in SIZES {
                let text = sql.text(rows);
                assert_eq!(text.matches('?').count(), rows * sql.width, "{text}");
                assert_eq!(text.matches("), (").count() + 1, rows);
                let first = text.split(" VALUES ").nth(1).unwrap().split(')').next().unwrap();
                assert_eq!(first.split(',').count(), columns, "a value per column: {first}");
            }
        }
        let fixed = format!(", '{}', NULL, NULL", LedgerKind::Charge.as_str());
        assert_eq!(LEDGER[0].fixed, fixed);
        assert_eq!(LEDGER[1].fixed, fixed);
    }

    #[test]
    fn chunks_take_the_largest_size_that_fits() {
        let items: Vec<usize> = (0..151).collect();
        let sizes: Vec<usize> = chunks(&items).map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![64, 64, 16, 4, 1, 1, 1]);
        let joined: Vec<usize> = chunks(&items).flatten().copied().collect();
        assert_eq!(joined, items, "every item once, in order");
        assert_eq!(chunks::<u8>(&[]).count(), 0);
    }
}
