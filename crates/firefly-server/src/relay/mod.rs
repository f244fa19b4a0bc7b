//! The AI relay: the OpenAI-compatible API (`/v1/...`) over administrators' upstream
//! channels, with routing, failover, rate limits, reservations and settlement.
//!
//! A request goes: key (cached) → [`admit`] (model allowed and served, priced, limits,
//! reservation) → [`forward`] (channels in plan order, retries before the first byte,
//! streams passed through event by event) → settlement (charge the real usage, release
//! the rest) → the batched usage [`writer`].

pub mod admit;
pub mod anthropic;
pub mod channels;
pub mod credits;
pub mod formats;
pub mod forward;
pub mod limits;
pub mod media;
pub mod openai;
pub mod probe;
pub mod route;
pub mod table;
pub mod upstream;
pub mod usage;
pub mod writer;

use crate::http::ApiError;
use crate::state::Tasks;
use firefly_core::config::RelayConfig;
use firefly_core::crypto::MasterKey;
use firefly_core::money::{TokenPrice, BP_ONE};
use firefly_providers::Registry;
use firefly_store::DynStore;
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

type Prices = Arc<HashMap<String, TokenPrice>>;

/// The price list as last loaded, and when.
#[derive(Default)]
struct PriceCache {
    slot: RwLock<Option<(Instant, Prices)>>,
    /// Bumped by every invalidation.
    generation: AtomicU64,
    loading: tokio::sync::Mutex<()>,
}

impl PriceCache {
    fn fresh(&self) -> Option<Arc<HashMap<String, TokenPrice>>> {
        match &*self.slot.read().unwrap_or_else(|e| e.into_inner()) {
            Some((at, prices)) if at.elapsed() < PRICE_CACHE_TTL => Some(prices.clone()),
            _ => None,
        }
    }
}

/// How long a price or group change may take to reach requests on other instances (this
/// instance forgets its cached copy at once).
const PRICE_CACHE_TTL: Duration = Duration::from_secs(2);

pub struct Settings {
    pub max_attempts: u32,
    pub first_byte_timeout: Duration,
    pub chunk_timeout: Duration,
    pub drain_timeout: Duration,
    pub default_output_reserve: u64,
    pub max_body_bytes: usize,
    pub user_rpm: u32,
    pub user_tpm: u64,
    pub user_concurrency: u32,
}

pub struct Relay {
    pub routes: table::Routes,
    pub credits: credits::Credits,
    /// Embedded now; a shared (Redis) backend implements the same trait.
    pub limiter: Arc<limits::MemoryLimiter>,
    pub usage: writer::UsageWriter,
    pub settings: Settings,
    client: reqwest::Client,
    /// The hot path's client (chat, embeddings, images, speech, transcriptions).
    upstream: upstream::UpstreamClient,
    store: DynStore,
    prices: PriceCache,
    groups: moka::future::Cache<i64, i64>,
}

impl Relay {
    /// `in_database`: reservations live in the database (instances share it), else in process.
    pub fn new(
        config: &RelayConfig,
        store: DynStore,
        master_key: MasterKey,
        tasks: &Tasks,
        in_database: bool,
    ) -> anyhow::Result<Relay> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            // Upstream answers are relayed, never followed somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let breaker = route::BreakerSettings {
            failure_threshold: config.breaker_failures,
            open_for: Duration::from_secs(config.breaker_open_secs),
        };
        let ttl = Duration::from_secs(config.reservation_ttl_secs);
        let credits = if in_database {
            credits::Credits::database(store.clone(), ttl, tasks)
        } else {
            credits::Credits::memory(store.clone(), ttl)
        };
        let usage = writer::UsageWriter::start(store.clone(), credits.clone(), tasks);
        Ok(Relay {
            routes: table::Routes::new(store.clone(), master_key, Registry::default(), breaker),
            credits,
            limiter: Arc::new(limits::MemoryLimiter::new()),
            usage,
            settings: Settings {
                max_attempts: config.max_attempts,
                first_byte_timeout: Duration::from_secs(config.first_byte_timeout_secs),
                chunk_timeout: Duration::from_secs(config.chunk_timeout_secs),
                drain_timeout: Duration::from_secs(config.drain_timeout_secs),
                default_output_reserve: config.default_output_reserve,
                max_body_bytes: config.max_body_bytes,
                user_rpm: config.user_rpm,
                user_tpm: config.user_tpm,
                user_concurrency: config.user_concurrency,
            },
            client,
            upstream: upstream::UpstreamClient::new(Duration::from_secs(config.connect_timeout_secs))?,
            store,
            prices: PriceCache::default(),
            groups: moka::future::Cache::builder().max_capacity(100_000).time_to_live(PRICE_CACHE_TTL).build(),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Every model's price, cached for [`PRICE_CACHE_TTL`]; one load at a time refreshes it.
    pub async fn prices(&self) -> Result<Arc<HashMap<String, TokenPrice>>, ApiError> {
        if let Some(prices) = self.prices.fresh() {
            return Ok(prices);
        }
        let _loading = self.prices.loading.lock().await;
        if let Some(prices) = self.prices.fresh() {
            return Ok(prices);
        }
        let generation = self.prices.generation.load(Ordering::Acquire);
        let list = self.store.list_model_prices().await.map_err(crate::http::error::internal)?;
        let prices = Arc::new(list.into_iter().map(|p| (p.model, p.price)).collect::<HashMap<_, _>>());
        let mut slot = self.prices.slot.write().unwrap_or_else(|e| e.into_inner());
        // A change made while loading: what was loaded may predate it, so it is not kept.
        if self.prices.generation.load(Ordering::Acquire) == generation {
            *slot = Some((Instant::now(), prices.clone()));
        }
        Ok(prices)
    }

    pub async fn price(&self, model: &str) -> Result<Option<TokenPrice>, ApiError> {
        Ok(self.prices().await?.get(model).copied())
    }

    /// The user's price multiplier in basis points (1× without a group).
    pub async fn multiplier(&self, user_id: i64) -> Result<i64, ApiError> {
        let store = self.store.clone();
        self.groups
            .try_get_with(user_id, async move {
                Ok::<_, firefly_store::StoreError>(store.user_group(user_id).await?.map_or(BP_ONE, |g| g.multiplier_bp))
            })
            .await
            .map_err(crate::http::error::internal)
    }

    /// An administrator changed prices or groups: this instance stops using its copies.
    pub fn forget_prices(&self) {
        self.prices.generation.fetch_add(1, Ordering::AcqRel);
        *self.prices.slot.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.groups.invalidate_all();
    }

    /// The periodic work: route-table refresh, reservation sweep, limiter pruning, probes of
    /// auto-disabled channels, usage-log retention.
    pub fn start_background(state: &crate::state::AppState, config: &RelayConfig) {
        let s = state.clone();
        state.tasks.spawn(move |shutdown| async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = s.relay.routes.reload().await {
                    tracing::warn!(error = %e, "refreshing the routing table failed");
                }
                s.relay.credits.sweep().await;
                s.relay.limiter.prune(std::time::Instant::now());
                n += 1;
                if n % 720 == 1 {
                    usage::prune(&s).await;
                }
            }
        });
        probe::start(state, Duration::from_secs(config.probe_interval_secs));
    }
}
