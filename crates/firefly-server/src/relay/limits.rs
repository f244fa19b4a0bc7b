//! Per-key and per-user rate limits on the relay's hot path: requests per minute (RPM),
//! tokens per minute (TPM) and concurrent requests. A request asks several scopes at once
//! (its API key, its user) and is admitted only if every limit of every scope admits it;
//! a refusal changes no counter anywhere.
//!
//! [`RateLimiter`] is what the relay calls. [`MemoryLimiter`] answers in process for a
//! single instance; a shared (Redis) backend implements the same trait and hands out the
//! same [`Lease`] through [`LeaseBackend`].
//!
//! # Algorithm and accuracy
//!
//! RPM and TPM are each a GCRA (the token bucket kept as one timestamp, as in `governor`
//! and in the usual Redis script): a limit of `L` per minute is a bucket of `L` that
//! refills continuously at `L` per 60 s. The state is `tat`, the moment the bucket would be
//! full again, and a cost `n` is admitted when `max(tat, now) + n·60s/L ≤ now + 60s`.
//! That is exact for what it defines (integer nanoseconds; rounding favours the client by
//! under a nanosecond per request) and `retry_after` is computed, not guessed. Against a
//! strict log of the last 60 s it is more permissive right after a burst: a bucket spent at
//! once refills during the next minute, so one 60 s span can see up to about `2L` (the
//! same worst case as the two-fixed-window approximation), and any longer span `T` at most
//! `L + L·T/60s`. In exchange a client that spent its burst waits `60s/L` for its next
//! request rather than a whole minute, and a subject's state is three words.
//!
//! TPM counts the estimate at admission; [`Lease::settle`] moves `tat` by the difference
//! to the actual count, which is exactly as if the actual count had been charged at
//! admission (a refund) or at settlement (an overage). A request is refused when the
//! tokens still in the window plus its estimate would exceed `L` — except that an estimate
//! larger than `L` itself is checked as `L`: it is admitted when the window is empty
//! (otherwise it could never run), and the debt it leaves drains for `estimate·60s/L`
//! before the subject is admitted again.
//!
//! Concurrency is a counter of leases alive. It is kept for every limited scope, whether or
//! not it has a concurrency limit, so a limit set while requests are in flight counts them.
//! A limit of `Some(0)` admits nothing; `None` is no limit.
//!
//! # Memory
//!
//! Subjects live in 32 shards, each a mutex over a map, chosen by hashing the scope; one
//! request locks only its scopes' shards, in ascending shard order, never across an await.
//! [`MemoryLimiter::prune`] (the server calls it every 30 s) drops every subject that holds
//! no slot and whose buckets are full: such a state equals a fresh one, so pruning never
//! forgives usage. A subject idle for a minute is dropped by the next sweep; one still
//! paying off an oversized request's debt is kept until the debt is paid.

use foldhash::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most limited scopes one request may ask (key and user, with room for a group).
pub const MAX_SCOPES: usize = 4;
const WINDOW_NS: u64 = 60_000_000_000;
const SHARD_BITS: u32 = 5;
/// Slots free up on other requests' schedule, so this is only a hint.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);
const ZERO_LIMIT_RETRY: Duration = Duration::from_secs(60);

/// The limits of one scope. `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub concurrency: Option<u32>,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        *self == Limit::default()
    }

    /// Dimension by dimension, the stricter of the two.
    fn strictest(self, other: Limit) -> Limit {
        fn min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Limit {
            rpm: min(self.rpm, other.rpm),
            tpm: min(self.tpm, other.tpm),
            concurrency: min(self.concurrency, other.concurrency),
        }
    }
}

/// Whose budget a limit spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Key(i64),
    User(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Requests,
    Tokens,
    Concurrency,
}

/// Why a request was refused: the limit whose wait is longest, and that wait (whole
/// seconds, never zero) for a `Retry-After` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    pub scope: Scope,
    pub dimension: Dimension,
    pub retry_after: Duration,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.dimension {
            Dimension::Requests => "requests per minute",
            Dimension::Tokens => "tokens per minute",
            Dimension::Concurrency => "concurrent requests",
        };
        write!(f, "{:?} is over its limit of {what}; retry after {} s", self.scope, self.retry_after.as_secs())
    }
}

impl std::error::Error for Denied {}

pub trait RateLimiter: Send + Sync + 'static {
    /// Admits one request estimated at `tokens` tokens against every `(scope, limit)` in
    /// `asks`, all or nothing. Unlimited asks are skipped; a scope asked twice gets the
    /// stricter limit of each dimension. At most [`MAX_SCOPES`] scopes may be limited.
    ///
    /// Not `async fn` so the future can be `Send` and, in memory, allocation-free; the
    /// server chooses the backend with an enum, so the trait need not be object-safe.
    fn acquire(&self, asks: &[(Scope, Limit)], tokens: u64) -> impl Future<Output = Result<Lease, Denied>> + Send;
}

/// The backend side of a [`Lease`]: how its corrections and releases reach the counters.
/// A shared backend queues these writes (they run in `settle` and `Drop`, which cannot
/// wait).
pub trait LeaseBackend: Send + Sync + 'static {
    /// Corrects the TPM of every held scope from `charged` to `actual` tokens.
    fn settle(&self, held: &[(Scope, Limit)], charged: u64, actual: u64, now: Instant);
    /// Gives back the concurrency slot of every held scope.
    fn release(&self, held: &[(Scope, Limit)]);
}

/// The limited scopes of one request, deduplicated, inline.
#[derive(Clone, Copy)]
struct Held {
    items: [(Scope, Limit); MAX_SCOPES],
    len: usize,
}

impl Held {
    fn from_asks(asks: &[(Scope, Limit)]) -> Held {
        const VACANT: (Scope, Limit) = (Scope::Key(0), Limit { rpm: None, tpm: None, concurrency: None });
        let mut held = Held { items: [VACANT; MAX_SCOPES], len: 0 };
        for &(scope, limit) in asks.iter().filter(|(_, limit)| !limit.is_unlimited()) {
            if let Some(same) = held.items[..held.len].iter_mut().find(|(s, _)| *s == scope) {
                same.1 = same.1.strictest(limit);
            } else {
                assert!(held.len < MAX_SCOPES, "a request asks at most {MAX_SCOPES} limited scopes");
                held.items[held.len] = (scope, limit);
                held.len += 1;
            }
        }
        held
    }

    fn as_slice(&self) -> &[(Scope, Limit)] {
        &self.items[..self.len]
    }
}

/// Held for the request's life. Dropping it releases the concurrency slots, so a handler
/// future cancelled mid-request cannot leak one.
#[must_use = "dropping the lease releases its slots at once"]
pub struct Lease {
    backend: Option<Arc<dyn LeaseBackend>>,
    held: Held,
    charged: u64,
}

impl Lease {
    /// A lease for a request nothing limits.
    pub fn unlimited() -> Lease {
        Lease { backend: None, held: Held::from_asks(&[]), charged: 0 }
    }

    /// For backends: a lease over scopes admitted with `charged` tokens.
    pub fn new(backend: Arc<dyn LeaseBackend>, held: &[(Scope, Limit)], charged: u64) -> Lease {
        Lease { backend: Some(backend), held: Held::from_asks(held), charged }
    }

    /// The tokens the TPM windows currently hold for this request.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// Corrects the TPM windows from what is charged (the estimate, at first) to `actual`.
    /// Settling again to the same count changes nothing.
    pub fn settle(&mut self, actual: u64) {
        self.settle_at(actual, Instant::now());
    }

    pub fn settle_at(&mut self, actual: u64, now: Instant) {
        if actual == self.charged {
            return;
        }
        if let Some(backend) = &self.backend {
            backend.settle(self.held.as_slice(), self.charged, actual, now);
        }
        self.charged = actual;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.release(self.held.as_slice());
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("held", &self.held.as_slice()).field("charged", &self.charged).finish()
    }
}

/// One subject's counters. Times are nanoseconds since the limiter's epoch.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    requests_tat: u64,
    tokens_tat: u64,
    inflight: u32,
}

type Subjects = HashMap<Scope, State>;

/// Aligned so that neighbouring shards' locks do not share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Subjects>);

struct Inner {
    epoch: Instant,
    shards: Box<[Shard]>,
}

/// Rate limits for a single instance. Cheap to clone; clones share the counters.
#[derive(Clone)]
pub struct MemoryLimiter {
    inner: Arc<Inner>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiter").field("subjects", &self.tracked()).finish()
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        let shards = (0..1 << SHARD_BITS).map(|_| Shard::default()).collect();
        MemoryLimiter { inner: Arc::new(Inner { epoch: Instant::now(), shards }) }
    }

    /// [`RateLimiter::acquire`] at a given time.
    pub fn acquire_at(&self, asks: &[(Scope, Limit)], tokens: u64, now: Instant) -> Result<Lease, Denied> {
        let held = Held::from_asks(asks);
        let scopes = held.as_slice();
        if scopes.is_empty() {
            return Ok(Lease::unlimited());
        }
        let now = self.inner.nanos(now);

        // Every shard involved, each locked once, in ascending order: requests sharing
        // shards take them in the same order, so they cannot deadlock.
        let mut shard_of = [0usize; MAX_SCOPES];
        for (i, (scope, _)) in scopes.iter().enumerate() {
            shard_of[i] = shard_index(scope);
        }
        let mut order = shard_of;
        order[..scopes.len()].sort_unstable();
        let mut distinct = 0;
        for i in 0..scopes.len() {
            if distinct == 0 || order[distinct - 1] != order[i] {
                order[distinct] = order[i];
                distinct += 1;
            }
        }
        let mut guards: [Option<MutexGuard<'_, Subjects>>; MAX_SCOPES] = [const { None }; MAX_SCOPES];
        for (guard, &shard) in guards.iter_mut().zip(&order[..distinct]) {
            *guard = Some(self.inner.shards[shard].0.lock().unwrap_or_else(PoisonError::into_inner));
        }
        let slot = |i: usize| order[..distinct].iter().position(|&s| s == shard_of[i]).unwrap_or(0);

        // Check everything before changing anything.
        let mut refusal: Option<Denied> = None;
        for (i, &(scope, limit)) in scopes.iter().enumerate() {
            let state = guards[slot(i)].as_deref().and_then(|m| m.get(&scope)).copied().unwrap_or_default();
            if let Some((dimension, retry_after)) = state.check(&limit, tokens, now) {
                if refusal.is_none_or(|r| retry_after > r.retry_after) {
                    refusal = Some(Denied { scope, dimension, retry_after });
                }
            }
        }
        if let Some(denied) = refusal {
            return Err(denied);
        }
        for (i, &(scope, limit)) in scopes.iter().enumerate() {
            if let Some(subjects) = guards[slot(i)].as_deref_mut() {
                subjects.entry(scope).or_default().admit(&limit, tokens, now);
            }
        }
        drop(guards);
        Ok(Lease { backend: Some(self.inner.clone()), held, charged: tokens })
    }

    /// Drops subjects that hold no slot and whose buckets are full (indistinguishable from
    /// fresh ones). Locks one shard at a time.
    pub fn prune(&self, now: Instant) {
        let now = self.inner.nanos(now);
        for shard in self.inner.shards.iter() {
            let mut subjects = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
            subjects.retain(|_, s| s.inflight > 0 || s.requests_tat > now || s.tokens_tat > now);
        }
    }

    /// How many subjects have state now (for a gauge).
    pub fn tracked(&self) -> usize {
        self.inner.shards.iter().map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

impl RateLimiter for MemoryLimiter {
    fn acquire(&self, asks: &[(Scope, Limit)], tokens: u64) -> impl Future<Output = Result<Lease, Denied>> + Send {
        std::future::ready(self.acquire_at(asks, tokens, Instant::now()))
    }
}

impl Inner {
    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self, scope: &Scope) -> MutexGuard<'_, Subjects> {
        self.shards[shard_index(scope)].0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LeaseBackend for Inner {
    fn settle(&self, held: &[(Scope, Limit)], charged: u64, actual: u64, now: Instant) {
        let now = self.nanos(now);
        for (scope, limit) in held {
            let Some(tpm) = limit.tpm.filter(|&l| l > 0) else { continue };
            let mut subjects = self.lock(scope);
            let state = subjects.entry(*scope).or_default();
            state.tokens_tat = if actual < charged {
                state.tokens_tat.saturating_sub(span(charged - actual, tpm))
            } else {
                state.tokens_tat.max(now).saturating_add(span(actual - charged, tpm))
            };
        }
    }

    fn release(&self, held: &[(Scope, Limit)]) {
        for (scope, _) in held {
            if let Some(state) = self.lock(scope).get_mut(scope) {
                state.inflight = state.inflight.saturating_sub(1);
            }
        }
    }
}

impl State {
    /// The longest wait among the limits that refuse, if any does.
    fn check(&self, limit: &Limit, tokens: u64, now: u64) -> Option<(Dimension, Duration)> {
        let mut worst: Option<(Dimension, Duration)> = None;
        let mut refuse = |dimension, wait: Duration| {
            if worst.is_none_or(|(_, w)| wait > w) {
                worst = Some((dimension, wait));
            }
        };
        if limit.concurrency.is_some_and(|max| self.inflight >= max) {
            refuse(Dimension::Concurrency, CONCURRENCY_RETRY);
        }
        if let Some(Err(wait)) = limit.rpm.map(|rpm| gcra(self.requests_tat, now, 1, rpm.into())) {
            refuse(Dimension::Requests, wait);
        }
        if let Some(Err(wait)) = limit.tpm.map(|tpm| gcra(self.tokens_tat, now, tokens, tpm)) {
            refuse(Dimension::Tokens, wait);
        }
        worst
    }

    /// Charges an admitted request; `check` passed under the same lock.
    fn admit(&mut self, limit: &Limit, tokens: u64, now: u64) {
        if let Some(Ok(tat)) = limit.rpm.map(|rpm| gcra(self.requests_tat, now, 1, rpm.into())) {
            self.requests_tat = tat;
        }
        if let Some(Ok(tat)) = limit.tpm.map(|tpm| gcra(self.tokens_tat, now, tokens, tpm)) {
            self.tokens_tat = tat;
        }
        self.inflight = self.inflight.saturating_add(1);
    }
}

/// GCRA over a 60 s window: the new `tat` if `cost` fits a limit of `limit` per minute,
/// else how long until it would. A cost above the limit is checked as the limit.
fn gcra(tat: u64, now: u64, cost: u64, limit: u64) -> Result<u64, Duration> {
    if limit == 0 {
        return Err(ZERO_LIMIT_RETRY);
    }
    let start = tat.max(now);
    let probe = start.saturating_add(span(cost.min(limit), limit));
    let allowed = now.saturating_add(WINDOW_NS);
    if probe > allowed {
        return Err(Duration::from_secs((probe - allowed).div_ceil(1_000_000_000)));
    }
    Ok(start.saturating_add(span(cost, limit)))
}

/// The part of the window `cost` units of a per-minute `limit` occupy, in nanoseconds.
/// Rounded down so that `limit` units of one take no more than the window.
fn span(cost: u64, limit: u64) -> u64 {
    u64::try_from(u128::from(cost) * u128::from(WINDOW_NS) / u128::from(limit)).unwrap_or(u64::MAX)
}

/// Fibonacci hashing: sequential ids spread over all shards.
fn shard_index(scope: &Scope) -> usize {
    let (salt, id) = match *scope {
        Scope::Key(id) => (0, id),
        Scope::User(id) => (0x5bd1_e995_u64, id),
    };
    ((id as u64 ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARD_BITS)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn key(id: i64) -> Scope {
        Scope::Key(id)
    }
    fn user(id: i64) -> Scope {
        Scope::User(id)
    }
    fn rpm(n: u32) -> Limit {
        Limit { rpm: Some(n), ..Limit::default() }
    }
    fn tpm(n: u64) -> Limit {
        Limit { tpm: Some(n), ..Limit::default() }
    }
    fn conc(n: u32) -> Limit {
        Limit { concurrency: Some(n), ..Limit::default() }
    }
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    /// A limiter and a start time well after its epoch.
    fn setup() -> (MemoryLimiter, Instant) {
        let lim = MemoryLimiter::new();
        let t0 = lim.inner.epoch + secs(100);
        (lim, t0)
    }
    /// Admissions in a row at `now` before the first refusal (leases dropped at once).
    fn admitted(lim: &MemoryLimiter, asks: &[(Scope, Limit)], tokens: u64, now: Instant) -> usize {
        (0..).take_while(|_| lim.acquire_at(asks, tokens, now).is_ok()).count()
    }

    #[test]
    fn rpm_admits_exactly_the_limit_then_refills_as_the_window_slides() {
        let (lim, t0) = setup();
        let ask = [(key(1), rpm(3))];
        assert_eq!(admitted(&lim, &ask, 0, t0), 3);
        let denied = lim.acquire_at(&ask, 0, t0).unwrap_err();
        assert_eq!(denied, Denied { scope: key(1), dimension: Dimension::Requests, retry_after: secs(20) });
        assert!(lim.acquire_at(&ask, 0, t0 + Duration::from_millis(19_999)).is_err());
        assert_eq!(admitted(&lim, &ask, 0, t0 + secs(20)), 1, "60 s / 3 later one request is back");
        assert_eq!(admitted(&lim, &ask, 0, t0 + secs(80)), 3, "a minute after the last, the whole burst");

        let fast = [(key(2), rpm(1000))];
        assert_eq!(admitted(&lim, &fast, 0, t0), 1000);
        let denied = lim.acquire_at(&fast, 0, t0).unwrap_err();
        assert_eq!(denied.retry_after, secs(1), "60 ms rounds up to a whole second, never zero");
    }

    #[test]
    fn tpm_counts_the_estimate_and_settle_corrects_it() {
        let (lim, t0) = setup();
        let ask = [(key(1), tpm(1000))];
        let mut first = lim.acquire_at(&ask, 600, t0).unwrap();
        let denied = lim.acquire_at(&ask, 500, t0).unwrap_err();
        assert_eq!((denied.dimension, denied.retry_after), (Dimension::Tokens, secs(6)), "100 tokens over: 6 s");
        first.settle_at(100, t0);
        first.settle_at(100, t0);
        assert_eq!(first.charged(), 100);
        let _second = lim.acquire_at(&ask, 500, t0).expect("settling lower freed 500");
        let _third = lim.acquire_at(&ask, 400, t0).expect("100 + 500 + 400 fits 1000");
        assert!(lim.acquire_at(&ask, 1, t0).is_err());

        // Settling higher charges the overage now, not back at admission.
        let ask = [(key(2), tpm(1000))];
        let mut lease = lim.acquire_at(&ask, 100, t0).unwrap();
        let later = t0 + secs(60);
        lease.settle_at(900, later);
        assert!(lim.acquire_at(&ask, 201, later).is_err(), "800 tokens charged at settlement");
        drop(lim.acquire_at(&ask, 200, later).expect("exactly 200 left"));
        assert!(lim.acquire_at(&ask, 1, later).is_err());
    }

    #[test]
    fn an_estimate_above_the_whole_tpm_runs_only_on_an_empty_window() {
        let (lim, t0) = setup();
        let ask = [(key(1), tpm(1000))];
        drop(lim.acquire_at(&ask, 1, t0).unwrap());
        assert_eq!(lim.acquire_at(&ask, 5000, t0).unwrap_err().dimension, Dimension::Tokens);
        let empty = t0 + Duration::from_millis(60);
        drop(lim.acquire_at(&ask, 5000, empty).expect("admitted once the window is empty"));
        // 4001 tokens over at 60 ms each.
        assert_eq!(lim.acquire_at(&ask, 1, empty).unwrap_err().retry_after, secs(241));
        assert!(lim.acquire_at(&ask, 1, empty + secs(240)).is_err());
        assert!(lim.acquire_at(&ask, 1, empty + Duration::from_millis(240_060)).is_ok());
    }

    #[tokio::test]
    async fn concurrency_slots_come_back_on_drop_and_on_cancellation() {
        let lim = MemoryLimiter::new();
        let ask = [(key(1), conc(1)), (user(1), conc(1))];
        let held = lim.acquire(&ask, 0).await.unwrap();
        let denied = lim.acquire(&ask, 0).await.unwrap_err();
        assert_eq!(denied, Denied { scope: key(1), dimension: Dimension::Concurrency, retry_after: secs(1) });
        drop(held);

        let mut handler = Box::pin(async {
            let _lease = lim.acquire(&ask, 0).await.unwrap();
            std::future::pending::<()>().await;
        });
        assert!(futures::poll!(handler.as_mut()).is_pending());
        assert!(lim.acquire(&ask, 0).await.is_err(), "the suspended handler holds the slot");
        drop(handler);
        let _again = lim.acquire(&ask, 0).await.expect("cancelling the handler released its slot");
    }

    #[test]
    fn scopes_are_all_or_nothing() {
        let (lim, t0) = setup();
        // The user refuses: the key is charged nothing.
        assert_eq!(admitted(&lim, &[(key(1), rpm(5)), (user(1), rpm(2))], 0, t0), 2);
        let denied = lim.acquire_at(&[(key(1), rpm(5)), (user(1), rpm(2))], 0, t0).unwrap_err();
        assert_eq!((denied.scope, denied.dimension), (user(1), Dimension::Requests));
        assert!(lim.acquire_at(&[(key(2), rpm(5)), (user(1), rpm(2))], 0, t0).is_err(), "shared by the user's keys");
        assert_eq!(admitted(&lim, &[(key(1), rpm(5))], 0, t0), 3, "key 1 has exactly 5 - 2 left");

        // The key refuses: the user is charged nothing.
        assert_eq!(admitted(&lim, &[(key(3), rpm(1)), (user(3), rpm(3))], 0, t0), 1);
        assert!(lim.acquire_at(&[(key(3), rpm(1)), (user(3), rpm(3))], 0, t0).is_err());
        assert_eq!(admitted(&lim, &[(user(3), rpm(3))], 0, t0), 2);

        // Concurrency and tokens likewise.
        let both = [(key(4), Limit { concurrency: Some(2), tpm: Some(100), rpm: None }), (user(4), conc(1))];
        let _held = lim.acquire_at(&both, 10, t0).unwrap();
        for _ in 0..3 {
            assert_eq!(lim.acquire_at(&both, 10, t0).unwrap_err().scope, user(4));
        }
        let key_only = [(key(4), Limit { concurrency: Some(2), tpm: Some(100), rpm: None })];
        let _second = lim.acquire_at(&key_only, 90, t0).expect("one slot and 90 tokens left");
        assert_eq!(lim.acquire_at(&key_only, 0, t0).unwrap_err().dimension, Dimension::Concurrency);
    }

    #[test]
    fn the_longest_wait_is_reported() {
        let (lim, t0) = setup();
        let asks = [(key(1), rpm(3)), (user(1), tpm(100))];
        drop(lim.acquire_at(&asks, 100, t0).unwrap());
        drop(lim.acquire_at(&[(key(1), rpm(3))], 0, t0).unwrap());
        drop(lim.acquire_at(&[(key(1), rpm(3))], 0, t0).unwrap());
        // The key waits 20 s for a request, the user 60 s for 100 tokens.
        let denied = lim.acquire_at(&asks, 100, t0).unwrap_err();
        assert_eq!(denied, Denied { scope: user(1), dimension: Dimension::Tokens, retry_after: secs(60) });
    }

    #[test]
    fn no_limits_always_admit_and_zero_admits_nothing() {
        let (lim, t0) = setup();
        let free = [(key(1), Limit::default()), (user(1), Limit::default())];
        let leases: Vec<Lease> = (0..1000).map(|_| lim.acquire_at(&free, u64::MAX, t0).unwrap()).collect();
        assert_eq!(leases.len(), 1000);
        assert_eq!(lim.tracked(), 0, "unlimited scopes keep no state");

        assert_eq!(lim.acquire_at(&[(key(2), rpm(0))], 0, t0).unwrap_err().retry_after, secs(60));
        assert_eq!(lim.acquire_at(&[(key(2), tpm(0))], 0, t0).unwrap_err().dimension, Dimension::Tokens);
        assert_eq!(lim.acquire_at(&[(key(2), conc(0))], 0, t0).unwrap_err().dimension, Dimension::Concurrency);
    }

    #[test]
    fn a_scope_asked_twice_gets_the_stricter_limits_and_is_charged_once() {
        let (lim, t0) = setup();
        let asks = [(key(1), Limit { rpm: Some(10), concurrency: Some(1), tpm: None }), (key(1), rpm(2))];
        let lease = lim.acquire_at(&asks, 0, t0).unwrap();
        assert_eq!(lim.acquire_at(&asks, 0, t0).unwrap_err().dimension, Dimension::Concurrency);
        drop(lease);
        assert_eq!(admitted(&lim, &asks, 0, t0), 1, "rpm 2, one request charged so far");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrency_never_exceeds_the_limit_under_parallel_tasks() {
        const K: u32 = 3;
        let lim = MemoryLimiter::new();
        let current = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let admissions = Arc::new(AtomicU32::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..64 {
            let (lim, current, peak, admissions) = (lim.clone(), current.clone(), peak.clone(), admissions.clone());
            tasks.spawn(async move {
                // Keys in several shards, one user shared by all.
                let asks = [(key(t % 7), conc(2)), (user(1), conc(K))];
                for _ in 0..300 {
                    match lim.acquire(&asks, 0).await {
                        Ok(lease) => {
                            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            admissions.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            current.fetch_sub(1, Ordering::SeqCst);
                            drop(lease);
                        }
                        Err(_) => tokio::task::yield_now().await,
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=K).contains(&peak), "peak {peak} with a limit of {K}");
        assert!(admissions.load(Ordering::SeqCst) > 0);
        let all: Vec<Lease> =
            (0..K).map(|_| lim.acquire_at(&[(user(1), conc(K))], 0, Instant::now()).unwrap()).collect();
        assert!(lim.acquire_at(&[(user(1), conc(K))], 0, Instant::now()).is_err(), "{} leases held", all.len());
    }

    #[test]
    fn prune_drops_idle_state_but_never_held_slots_or_debt() {
        let (lim, t0) = setup();
        drop(lim.acquire_at(&[(key(1), rpm(10))], 0, t0).unwrap());
        let held = lim.acquire_at(&[(key(2), conc(1))], 0, t0).unwrap();
        drop(lim.acquire_at(&[(key(3), tpm(1000))], 5000, t0).unwrap());
        assert_eq!(lim.tracked(), 3);

        lim.prune(t0 + secs(5));
        assert_eq!(lim.tracked(), 3, "key 1 refills until 6 s");
        assert!(lim.acquire_at(&[(key(1), rpm(1))], 0, t0 + secs(5)).is_err(), "its usage still counts");

        let idle = t0 + secs(150);
        lim.prune(idle);
        assert_eq!(lim.tracked(), 2);
        assert!(lim.acquire_at(&[(key(2), conc(1))], 0, idle).is_err(), "the held slot survived");
        assert!(lim.acquire_at(&[(key(3), tpm(1000))], 1, idle).is_err(), "the debt survived");

        drop(held);
        lim.prune(t0 + secs(301));
        assert_eq!(lim.tracked(), 0);
    }
}
