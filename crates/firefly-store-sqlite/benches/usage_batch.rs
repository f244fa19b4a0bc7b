//! What a usage batch costs the embedded store, per record: the relay's batched writer
//! sends whole batches of finished requests to `record_usage` (a call-log row, a ledger
//! charge and the rollups each), and this is the part of a relayed request that runs in
//! SQLite. Writes `ROUNDS` batches of `--batch` records (default 1000, about what the
//! writer collects at 20k requests a second) for two users with an API key each, into a
//! fresh database file with the production settings, and prints the wall time and the
//! process's CPU time per record (the writer task, sqlx's SQLite thread and SQLite).
//!
//! ```sh
//! cargo bench -p firefly-store-sqlite --bench usage_batch [-- --batch 1000 --rounds 50]
//! ```

use firefly_store::*;
use firefly_store_sqlite::SqliteStore;
use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let batch = arg("--batch", 1000);
    let rounds = arg("--rounds", 40);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = SqliteStore::connect(&ConnectSettings::new(url)).await.expect("the store opens");
    store.migrate().await.expect("migrations run");
    let now = firefly_core::time::now_ms();
    let mut users = Vec::new();
    for n in 0..2 {
        let user = store
            .create_user(NewUser {
                email: format!("bench{n}@example.com"),
                display_name: format!("bench{n}"),
                password_hash: "$argon2id$bench".into(),
                role: Role::User,
                initial_credits: 0,
                now,
            })
            .await
            .expect("a user");
        let key = store
            .create_api_key(NewApiKey {
                user_id: user.id,
                name: "bench".into(),
                key_hash: format!("bench-hash-{n}"),
                prefix: "sk-ff-bench".into(),
                expires_at: None,
                models: vec![],
                ip_allow: vec![],
                credit_limit: None,
                rpm_limit: None,
                tpm_limit: None,
                concurrency_limit: None,
                now,
            })
            .await
            .expect("a key");
        let grant = NewLedgerEntry {
            user_id: user.id,
            kind: LedgerKind::Grant,
            amount: i64::MAX / 4,
            idempotency_key: format!("bench-grant-{n}"),
            reference: None,
            note: None,
            actor_id: None,
            now,
        };
        store.append_ledger(grant, false).await.expect("a grant");
        users.push((user.id, key.id));
    }
    let record = |i: usize| {
        let (user_id, key_id) = users[i % users.len()];
        UsageRecord {
            // Time-ordered like the server's own ids.
            request_id: format!("{:012x}{:020x}", now + i as i64 / 20, i),
            user_id,
            api_key_id: Some(key_id),
            channel_id: Some(1),
            endpoint: "chat.completions".into(),
            model: "gpt-4o-mini".into(),
            stream: false,
            input_tokens: 14,
            output_tokens: 10,
            cached_tokens: 0,
            credits: 8,
            latency_ms: 1,
            first_token_ms: Some(1),
            status: 200,
            error_code: None,
            error_message: None,
            created_at: now + i as i64 / 20,
            hold_id: None,
        }
    };
    // One warm-up batch, then the measured ones.
    let warm: Vec<UsageRecord> = (0..batch).map(record).collect();
    store.record_usage(&warm).await.expect("the warm-up batch");
    let (wall, cpu) = (Instant::now(), cpu_time());
    for round in 1..=rounds {
        let records: Vec<UsageRecord> = (round * batch..(round + 1) * batch).map(record).collect();
        let out = store.record_usage(&records).await.expect("a batch");
        assert!(out.iter().all(|o| o.applied && o.charged == 8), "every record is new and charged");
    }
    let n = (rounds * batch) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "usage batch of {batch}, {rounds} rounds: {:.2} µs wall, {:.2} µs CPU per record",
        per(wall.elapsed()),
        per(cpu_time() - cpu)
    );
}
