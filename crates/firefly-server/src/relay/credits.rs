//! Credits in process: reservations against users' balances and keys' credit limits.
//!
//! Before a request is forwarded, its worst-case cost is **reserved**: held against the
//! user's balance and the key's limit in one step under one lock, so concurrent requests
//! can never together hold more than there is. When it ends it is **settled**: the hold is
//! released and the real cost becomes a pending charge until the batched usage writer has
//! written its ledger row (the writer reports back through [`Credits::written`]). So
//!
//! ```text
//! available(user) = balance of the newest ledger row seen − pending charges − holds
//! available(key)  = credit_limit − credits_used − pending charges − holds
//! ```
//!
//! The database stays the authority: the writer clamps a charge to the balance, so even
//! a change made behind this instance's back (another instance, a manual fix) can never
//! take a balance below zero. This in-process answer is for one instance.
//!
//! Several instances sharing MySQL/PostgreSQL use the **database** answer instead
//! (`billing.credit_backend`): a hold is a conditional write on the user's balances row
//! ([`firefly_store::CreditStore`]), released in the same transaction that writes the
//! request's charge, so two instances can never both hold the same credits.
//!
//! Either way a hold is released when its [`Hold`] is dropped unsettled (a cancelled
//! request), and holds older than `relay.reservation_ttl_secs` are released by a sweep, so
//! nothing — not even a crashed instance — can pin credits for ever.

use crate::http::ApiError;
use crate::state::Tasks;
use firefly_core::time::now_ms;
use firefly_core::ErrorCode;
use firefly_store::{DynStore, HoldOutcome, LedgerEntry, NewHold, RecordedUsage};
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An idle account is forgotten after this long (it is reloaded from the database when next
/// used), and one without holds or pending charges is refreshed from the database when
/// older than [`REFRESH_AFTER`], so grants made elsewhere show up.
const FORGET_AFTER: Duration = Duration::from_secs(120);
const REFRESH_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct UserAccount {
    /// `balance_after` of the newest ledger row seen (or the balance read from the store).
    balance: i64,
    /// Id of that row; rows with a smaller id are older news.
    last_row: i64,
    pending: i64,
    held: i64,
    holds: HashMap<u64, (i64, Instant)>,
    loaded_at: Option<Instant>,
    used_at: Option<Instant>,
}

impl UserAccount {
    fn available(&self) -> i64 {
        self.balance.saturating_sub(self.pending).saturating_sub(self.held)
    }

    fn observe(&mut self, row: &LedgerEntry) {
        if row.id > self.last_row {
            self.last_row = row.id;
            self.balance = row.balance_after;
        }
    }

    fn idle(&self) -> bool {
        self.holds.is_empty() && self.pending == 0
    }
}

#[derive(Debug, Default)]
struct KeyAccount {
    /// Credits spent through the key, as written.
    used: i64,
    pending: i64,
    held: i64,
    holds: HashMap<u64, (i64, Instant)>,
    used_at: Option<Instant>,
}

#[derive(Default)]
struct Accounts {
    users: HashMap<i64, UserAccount>,
    keys: HashMap<i64, KeyAccount>,
}

struct Inner {
    store: DynStore,
    accounts: Mutex<Accounts>,
    next_id: AtomicU64,
    ttl: Duration,
    /// Database mode: unsettled holds to release, sent from `Drop`.
    releases: Option<mpsc::UnboundedSender<String>>,
}

/// The key side of a reservation: its id, limit and what the key record says was used.
#[derive(Debug, Clone, Copy)]
pub struct KeyBudget {
    pub key_id: i64,
    pub credit_limit: Option<i64>,
    pub credits_used: i64,
}

#[derive(Clone)]
pub struct Credits(Arc<Inner>);

impl Credits {
    /// In-process reservations.
    pub fn memory(store: DynStore, ttl: Duration) -> Self {
        Credits(Arc::new(Inner { store, accounts: Mutex::default(), next_id: AtomicU64::new(1), ttl, releases: None }))
    }

    /// Reservations held in the database, for instances sharing it.
    pub fn database(store: DynStore, ttl: Duration, tasks: &Tasks) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let releaser = store.clone();
        tasks.spawn(move |_shutdown| async move {
            // Ends when every sender is gone; a hold left behind expires anyway.
            while let Some(id) = rx.recv().await {
                if let Err(e) = releaser.release_hold(&id).await {
                    tracing::warn!(error = %e, hold = %id, "releasing a hold failed; it will expire");
                }
            }
        });
        Credits(Arc::new(Inner {
            store,
            accounts: Mutex::default(),
            next_id: AtomicU64::new(1),
            ttl,
            releases: Some(tx),
        }))
    }

    pub fn in_database(&self) -> bool {
        self.0.releases.is_some()
    }

    /// What the user has held right now (for checks and tests).
    pub async fn held(&self, user_id: i64) -> Result<i64, ApiError> {
        if self.in_database() {
            return Ok(self.0.store.held_credits(user_id).await?);
        }
        Ok(self.lock().users.get(&user_id).map_or(0, |u| u.held))
    }

    fn lock(&self) -> MutexGuard<'_, Accounts> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // loses money (each update is a few arithmetic steps); keep serving.
        self.0.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `amount` credits for a request of `user_id` through `key`.
    pub async fn reserve(&self, user_id: i64, key: Option<KeyBudget>, amount: i64) -> Result<Hold, ApiError> {
        let amount = amount.max(0);
        if self.in_database() {
            let now = now_ms();
            let hold = NewHold {
                id: hex::encode(rand::random::<[u8; 16]>()),
                user_id,
                api_key_id: key.map(|k| k.key_id),
                key_limit: key.and_then(|k| k.credit_limit),
                amount,
                expires_at: now.saturating_add(self.0.ttl.as_millis() as i64),
                now,
            };
            return match self.0.store.hold_credits(&hold).await? {
                HoldOutcome::Held => Ok(Hold {
                    credits: self.clone(),
                    id: 0,
                    user_id,
                    key_id: hold.api_key_id,
                    amount,
                    db: Some(hold.id),
                    done: false,
                }),
                HoldOutcome::Insufficient { .. } => Err(ErrorCode::InsufficientBalance.into()),
                HoldOutcome::KeyLimitReached { .. } => Err(ErrorCode::ApiKeyCreditLimit.into()),
            };
        }
        let now = Instant::now();
        let stale = {
            let accounts = self.lock();
            accounts
                .users
                .get(&user_id)
                .is_none_or(|a| a.loaded_at.is_none_or(|at| a.idle() && now.duration_since(at) >= REFRESH_AFTER))
        };
        if stale {
            let balance = self.0.store.balance(user_id).await?;
            let mut accounts = self.lock();
            let account = accounts.users.entry(user_id).or_default();
            // With nothing held or pending the read is the whole truth; otherwise another
            // request loaded the account meanwhile and its view is at least as new.
            if account.loaded_at.is_none() || account.idle() {
                account.balance = balance;
                account.loaded_at = Some(now);
            }
        }
        let mut accounts = self.lock();
        let Accounts { users, keys } = &mut *accounts;
        let user = users.entry(user_id).or_default();
        if user.available() < amount {
            return Err(ErrorCode::InsufficientBalance.into());
        }
        if let Some(budget) = key {
            let k = keys
                .entry(budget.key_id)
                .or_insert_with(|| KeyAccount { used: budget.credits_used, ..Default::default() });
            if let Some(limit) = budget.credit_limit {
                let committed = k.used.saturating_add(k.pending).saturating_add(k.held);
                if committed.saturating_add(amount) > limit {
                    return Err(ErrorCode::ApiKeyCreditLimit.into());
                }
            }
        }
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let expires = now + self.0.ttl;
        user.held += amount;
        user.holds.insert(id, (amount, expires));
        user.used_at = Some(now);
        if let Some(budget) = key {
            let k = keys.get_mut(&budget.key_id).expect("inserted above");
            k.held += amount;
            k.holds.insert(id, (amount, expires));
            k.used_at = Some(now);
        }
        Ok(Hold { credits: self.clone(), id, user_id, key_id: key.map(|k| k.key_id), amount, db: None, done: false })
    }

    /// Removes hold `id` if it is still there (a swept hold is not).
    fn release(accounts: &mut Accounts, id: u64, user_id: i64, key_id: Option<i64>) {
        if let Some(user) = accounts.users.get_mut(&user_id) {
            if let Some((amount, _)) = user.holds.remove(&id) {
                user.held -= amount;
            }
        }
        if let Some(k) = key_id.and_then(|k| accounts.keys.get_mut(&k)) {
            if let Some((amount, _)) = k.holds.remove(&id) {
                k.held -= amount;
            }
        }
    }

    /// A ledger row written outside the relay (a grant, a redemption): the balance moves at
    /// once instead of at the next refresh.
    pub fn observe(&self, row: &LedgerEntry) {
        if let Some(user) = self.lock().users.get_mut(&row.user_id) {
            user.observe(row);
        }
    }

    /// The usage writer wrote a settled charge of `requested` credits (now `written`).
    pub fn written(&self, user_id: i64, key_id: Option<i64>, requested: i64, written: &RecordedUsage) {
        let mut accounts = self.lock();
        if let Some(user) = accounts.users.get_mut(&user_id) {
            user.pending -= requested;
            if let Some(row) = &written.ledger {
                user.observe(row);
            }
        }
        if let Some(k) = key_id.and_then(|k| accounts.keys.get_mut(&k)) {
            k.pending -= requested;
            if written.applied {
                k.used += written.charged;
            }
        }
    }

    /// Releases expired holds (in the database too, in database mode) and forgets idle
    /// accounts.
    pub async fn sweep(&self) {
        if self.in_database() {
            match self.0.store.expire_holds(now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(expired = n, "released holds that outlived relay.reservation_ttl_secs"),
                Err(e) => tracing::warn!(error = %e, "expiring holds failed"),
            }
            return;
        }
        self.sweep_memory();
    }

    fn sweep_memory(&self) {
        let now = Instant::now();
        let mut accounts = self.lock();
        let mut expired = 0;
        for user in accounts.users.values_mut() {
            user.holds.retain(|_, (amount, until)| {
                let keep = *until > now;
                if !keep {
                    user.held -= *amount;
                    expired += 1;
                }
                keep
            });
        }
        for k in accounts.keys.values_mut() {
            k.holds.retain(|_, (amount, until)| {
                let keep = *until > now;
                if !keep {
                    k.held -= *amount;
                }
                keep
            });
        }
        let old = |at: Option<Instant>| at.is_none_or(|at| now.duration_since(at) > FORGET_AFTER);
        accounts.users.retain(|_, u| !(u.idle() && old(u.used_at)));
        accounts.keys.retain(|_, k| !(k.holds.is_empty() && k.pending == 0 && old(k.used_at)));
        if expired > 0 {
            tracing::warn!(expired, "released reservations that outlived relay.reservation_ttl_secs");
        }
    }
}

/// Credits held for one request. Settle it with the real cost; dropping it unsettled
/// releases the hold.
pub struct Hold {
    credits: Credits,
    id: u64,
    user_id: i64,
    key_id: Option<i64>,
    amount: i64,
    /// The hold's id in the database (database mode).
    db: Option<String>,
    done: bool,
}

impl Hold {
    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// Releases the hold and makes `charge` (at most the amount held) a pending charge,
    /// which the caller hands to the usage writer with the returned database hold id (the
    /// writer releases that hold in the transaction that writes the charge). Returns the
    /// charge and that id.
    pub fn settle(mut self, charge: i64) -> (i64, Option<String>) {
        let charge = charge.clamp(0, self.amount);
        if let Some(id) = self.db.take() {
            self.done = true;
            return (charge, Some(id));
        }
        let mut accounts = self.credits.lock();
        Credits::release(&mut accounts, self.id, self.user_id, self.key_id);
        if let Some(user) = accounts.users.get_mut(&self.user_id) {
            user.pending += charge;
        }
        if let Some(k) = self.key_id.and_then(|k| accounts.keys.get_mut(&k)) {
            k.pending += charge;
        }
        self.done = true;
        (charge, None)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let (false, Some(id), Some(releases)) = (self.done, self.db.take(), &self.credits.0.releases) {
            let _ = releases.send(id);
            return;
        }
        if !self.done {
            let mut accounts = self.credits.lock();
            Credits::release(&mut accounts, self.id, self.user_id, self.key_id);
        }
    }
}
