//! The batched usage writer: finished requests (their charge, call-log row and rollup)
//! are queued here and written off the request path in group commits: one transaction
//! for whatever arrives within [`WINDOW`] of the first record (or [`MAX_BATCH`] records),
//! so even a steady trickle costs one transaction per window, not one per request. A
//! crash loses at most the records of the window being collected (the design's
//! group-commit bound); until written, their charges already count as spent for
//! admission.
//!
//! Every relay request takes its queue slot before it starts ([`UsageWriter::begin`]), so
//! the queue bounds the requests in flight: when the database falls behind, new requests
//! wait for a slot instead of piling up finished-but-unwritten work in memory. A failed
//! write is retried with backoff, never dropped. On shutdown the writer keeps going until
//! every relay request has finished and the queue is empty.

use super::credits::Credits;
use crate::state::Tasks;
use firefly_store::{DynStore, UsageRecord};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const QUEUE: usize = 4_096;
const MAX_BATCH: usize = 2_048;
/// How long a batch collects records after its first.
const WINDOW: Duration = Duration::from_millis(20);

struct Job {
    record: UsageRecord,
    /// Credits charged in memory (the record's `credits`), to release from `pending`.
    key_id: Option<i64>,
}

#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<Job>,
    /// Relay requests that may still send a record; the writer outlives them.
    in_flight: Arc<AtomicUsize>,
}

/// One relay request's place in the queue, taken before it starts; it counts the request
/// as in flight until the record is sent (or the slot dropped).
pub struct Slot {
    permit: Option<mpsc::OwnedPermit<Job>>,
    in_flight: Arc<AtomicUsize>,
}

impl Slot {
    /// Queues the finished request's record.
    pub fn send(mut self, record: UsageRecord, key_id: Option<i64>) {
        if let Some(permit) = self.permit.take() {
            permit.send(Job { record, key_id });
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl UsageWriter {
    pub fn start(store: DynStore, credits: Credits, tasks: &Tasks) -> UsageWriter {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let busy = in_flight.clone();
        tasks.spawn(move |shutdown| async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            loop {
                tokio::select! {
                    biased;
                    n = rx.recv_many(&mut batch, MAX_BATCH) => {
                        if n == 0 {
                            break;
                        }
                        if batch.len() < MAX_BATCH {
                            tokio::time::sleep(WINDOW).await;
                            while batch.len() < MAX_BATCH {
                                match rx.try_recv() {
                                    Ok(job) => batch.push(job),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    _ = shutdown.cancelled() => {
                        // Drain: requests still running will send their records.
                        while busy.load(Ordering::Acquire) > 0 || !rx.is_empty() {
                            if rx.is_empty() {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                            rx.recv_many(&mut batch, MAX_BATCH).await;
                            write(&store, &credits, &mut batch).await;
                        }
                        break;
                    }
                }
                write(&store, &credits, &mut batch).await;
            }
        });
        UsageWriter { tx, in_flight }
    }

    /// Waits for a queue slot (only when the writer is [`QUEUE`] records behind).
    pub async fn begin(&self) -> Slot {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = self.tx.clone().reserve_owned().await.ok();
        if permit.is_none() {
            tracing::error!("usage writer stopped; this request's usage will not be written");
        }
        Slot { permit, in_flight: self.in_flight.clone() }
    }
}

async fn write(store: &DynStore, credits: &Credits, batch: &mut Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let records: Vec<UsageRecord> = batch.iter().map(|j| j.record.clone()).collect();
    let mut delay = Duration::from_millis(50);
    let results = loop {
        match store.record_usage(&records).await {
            Ok(results) => break results,
            Err(e) => {
                // Retrying is safe: a record already written is recognised by its request id.
                tracing::error!(error = %e, records = records.len(), "writing usage failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    metrics::counter!("relay_usage_records_written_total").increment(records.len() as u64);
    metrics::histogram!("relay_usage_batch_size").record(records.len() as f64);
    for (job, result) in batch.iter().zip(&results) {
        credits.written(job.record.user_id, job.key_id, job.record.credits, result);
    }
    batch.clear();
}
