//! The one application state, cloned cheaply into every handler.

use crate::accounts::password::Passwords;
use crate::accounts::tokens::Tokens;
use crate::keys::auth::KeyCache;
use crate::limiter::AttemptLimiter;
use firefly_core::config::Config;
use firefly_store::{AuthState, DynStore};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a cached authorization decision may lag the database: revoking a key or
/// disabling a user takes effect everywhere within this time.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub config: Config,
    pub store: DynStore,
    pub tokens: Tokens,
    pub passwords: Passwords,
    pub login_limiter: AttemptLimiter,
    /// Redemption-code attempts per account and per address (`billing.redeem_*`).
    pub redeem_limiter: AttemptLimiter,
    /// (user id, session id) → the user's state; bounds how long a disabled user or a
    /// revoked session keeps working with an unexpired access token.
    pub auth_cache: moka::future::Cache<(i64, i64), Option<AuthState>>,
    pub key_cache: KeyCache,
    /// Encrypts provider keys at rest.
    pub master_key: firefly_core::crypto::MasterKey,
    /// The AI relay: routes, credits, limits, the usage writer.
    pub relay: crate::relay::Relay,
    pub tasks: Tasks,
    /// Set when shutdown begins: `/readyz` then answers 503 so load balancers drain us.
    pub draining: std::sync::atomic::AtomicBool,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, store: DynStore) -> anyhow::Result<Self> {
        let secret = config.auth.jwt_secret.expose();
        anyhow::ensure!(secret.len() >= 32, "auth.jwt_secret: must be set (at least 32 characters)");
        let tokens =
            Tokens::new(secret.as_bytes(), config.auth.access_token_ttl_secs, config.auth.refresh_token_ttl_secs);
        let passwords = Passwords::new(&config.auth)?;
        let master_key = firefly_core::crypto::MasterKey::from_base64(config.security.master_key.expose())
            .map_err(|e| anyhow::anyhow!("security.master_key: {e}"))?;
        let login_limiter = AttemptLimiter::new(config.auth.login_rate_per_sec, config.auth.login_burst);
        let redeem_limiter =
            AttemptLimiter::per_minute(config.billing.redeem_rate_per_minute, config.billing.redeem_burst);
        let auth_cache = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(AUTH_CACHE_TTL)
            .support_invalidation_closures()
            .build();
        let key_cache = KeyCache::new(store.clone());
        let tasks = Tasks::default();
        let in_database = config.credits_in_database();
        let relay = crate::relay::Relay::new(&config.relay, store.clone(), master_key.clone(), &tasks, in_database)?;
        Ok(AppState(Arc::new(App {
            config,
            store,
            tokens,
            passwords,
            login_limiter,
            redeem_limiter,
            auth_cache,
            key_cache,
            master_key,
            relay,
            tasks,
            draining: Default::default(),
        })))
    }
}

impl App {
    /// Forgets this instance's cached session decisions for a user at once (other
    /// instances follow within [`AUTH_CACHE_TTL`]).
    pub fn forget_sessions(&self, user_id: i64) {
        let _ = self.auth_cache.invalidate_entries_if(move |(uid, _), _| *uid == user_id);
    }
}

/// Background tasks, registered so graceful shutdown can stop and await them.
/// Request code spawns through this, never with a bare `tokio::spawn`.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    /// Runs `f(shutdown)`: the future should return soon after `shutdown` is cancelled.
    pub fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(f(self.shutdown.clone()));
    }

    /// Runs `tick` every `period` until shutdown.
    pub fn every<F>(&self, period: Duration, mut tick: F)
    where
        F: FnMut() + Send + 'static,
    {
        self.spawn(move |shutdown| async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = interval.tick() => tick(),
                }
            }
        });
    }

    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
