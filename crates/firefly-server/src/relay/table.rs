//! The routing table: enabled channels, their keys opened once, grouped by the models
//! they serve. Rebuilt from the store when an administrator changes a channel (at once on
//! this instance) and every few seconds (for changes made through other instances);
//! circuit breakers survive rebuilds, keyed by channel id.

use super::route::{order_in_place, Breaker, BreakerSettings, Candidate};
use super::upstream::Head;
use firefly_core::crypto::MasterKey;
use firefly_providers::adapter::{BuildError, Operation, RequestContext};
use firefly_providers::{Adapter, Registry};
use firefly_store::{Channel, ChannelStatus, DynStore, StoreResult};
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// One enabled channel, ready to send to.
pub struct Upstream {
    pub id: i64,
    pub name: String,
    pub provider: String,
    pub adapter: Arc<dyn Adapter>,
    pub base_url: String,
    pub api_version: Option<String>,
    keys: Vec<String>,
    next_key: AtomicUsize,
    pub model_map: BTreeMap<String, String>,
    pub priority: i64,
    pub weight: i64,
    rpm: Option<MinuteCounter>,
    pub breaker: Arc<Breaker>,
    /// Request heads built so far, by operation, stream, upstream model and key: the URL
    /// is parsed and the headers rendered once, not per request. Bounded by what the
    /// channel serves (only models routed to it reach it).
    heads: Mutex<HashMap<HeadKey, Arc<Head>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct HeadKey {
    op: Operation,
    stream: bool,
    model: Option<String>,
    key: usize,
}

/// At most this many heads are kept per channel; past it, heads are built per request.
const MAX_HEADS: usize = 1_024;

impl Upstream {
    /// The next key, round robin; empty for keyless upstreams.
    pub fn key(&self) -> &str {
        if self.keys.is_empty() {
            return "";
        }
        &self.keys[self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len()]
    }

    /// The request head of `op` for `model` (the upstream's name) with the next key,
    /// round robin.
    pub fn head(&self, op: Operation, model: Option<&str>, stream: bool) -> Result<Arc<Head>, BuildError> {
        let key = match self.keys.len() {
            0 => 0,
            n => self.next_key.fetch_add(1, Ordering::Relaxed) % n,
        };
        let wanted = HeadKey { op, stream, model: model.map(str::to_owned), key };
        if let Some(head) = self.heads.lock().unwrap_or_else(|e| e.into_inner()).get(&wanted) {
            return Ok(head.clone());
        }
        let ctx = RequestContext {
            base_url: &self.base_url,
            api_version: self.api_version.as_deref(),
            key: self.keys.get(key).map_or("", String::as_str),
            model,
            stream,
        };
        let built = self.adapter.build(op, &ctx)?;
        let head = Arc::new(Head::new(built).ok_or_else(|| BuildError::InvalidBaseUrl {
            url: self.base_url.clone(),
            reason: "not a valid URI".into(),
        })?);
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        if heads.len() < MAX_HEADS {
            heads.insert(wanted, head.clone());
        }
        Ok(head)
    }

    /// The upstream's name for a client's model.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_map.get(model).map_or(model, String::as_str)
    }

    /// Takes one request from the channel's own per-minute budget, if it has one.
    pub fn take_rpm(&self) -> bool {
        self.rpm.as_ref().is_none_or(|c| c.take())
    }
}

/// A fixed one-minute window: enough for a channel's own request budget.
struct MinuteCounter {
    limit: u32,
    window: Mutex<(u64, u32)>,
}

impl MinuteCounter {
    fn take(&self) -> bool {
        let minute = firefly_core::time::now_ms().max(0) as u64 / 60_000;
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != minute {
            *w = (minute, 0);
        }
        if w.1 >= self.limit {
            return false;
        }
        w.1 += 1;
        true
    }
}

#[derive(Default)]
pub struct RouteTable {
    by_model: HashMap<String, Vec<Arc<Upstream>>>,
    by_id: HashMap<i64, Arc<Upstream>>,
    /// Every model some enabled channel serves, sorted.
    models: Vec<String>,
}

impl RouteTable {
    /// The channels to try for `model`, in order: priority tiers, weighted inside a tier,
    /// open circuits left out. `None`: no enabled channel serves the model at all.
    pub fn plan(&self, model: &str, now: Instant) -> Option<Vec<Arc<Upstream>>> {
        let all = self.by_model.get(model)?;
        let mut open: Vec<Arc<Upstream>> = all.iter().filter(|u| !u.breaker.is_open(now)).cloned().collect();
        if open.len() > 1 {
            let candidate = |u: &Arc<Upstream>| Candidate { id: u.id, priority: u.priority, weight: u.weight };
            order_in_place(&mut open, candidate, &mut rand::thread_rng());
        }
        Some(open)
    }

    pub fn models(&self) -> &[String] {
        &self.models
    }

    pub fn serves(&self, model: &str) -> bool {
        self.by_model.contains_key(model)
    }

    pub fn channel(&self, id: i64) -> Option<&Arc<Upstream>> {
        self.by_id.get(&id)
    }
}

pub struct Routes {
    store: DynStore,
    master_key: MasterKey,
    registry: Registry,
    breaker: BreakerSettings,
    table: RwLock<Arc<RouteTable>>,
    breakers: Mutex<HashMap<i64, Arc<Breaker>>>,
    /// Serializes rebuilds so an older one cannot overwrite a newer one.
    rebuilding: tokio::sync::Mutex<()>,
}

impl Routes {
    pub fn new(store: DynStore, master_key: MasterKey, registry: Registry, breaker: BreakerSettings) -> Self {
        Routes {
            store,
            master_key,
            registry,
            breaker,
            table: RwLock::default(),
            breakers: Mutex::default(),
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn current(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rebuilds the table from the store.
    pub async fn reload(&self) -> StoreResult<()> {
        let _one = self.rebuilding.lock().await;
        let channels = self.store.list_channels().await?;
        let table = self.build(channels);
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// Takes a channel out of the table at once (auto-disable), before the store says so.
    pub fn remove(&self, id: i64) {
        let mut guard = self.table.write().unwrap_or_else(|e| e.into_inner());
        let old = &**guard;
        let mut by_model = old.by_model.clone();
        for list in by_model.values_mut() {
            list.retain(|u| u.id != id);
        }
        by_model.retain(|_, list| !list.is_empty());
        let mut by_id = old.by_id.clone();
        by_id.remove(&id);
        let models = by_model.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        *guard = Arc::new(RouteTable { by_model, by_id, models });
    }

    /// The breaker of channel `id`, created on first use.
    pub fn breaker(&self, id: i64) -> Arc<Breaker> {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_insert_with(|| Arc::new(Breaker::new(self.breaker)))
            .clone()
    }

    /// A channel ready to send to, whatever its status (for probes).
    pub fn upstream(&self, channel: &Channel) -> Result<Upstream, String> {
        let spec = &channel.spec;
        let adapter =
            self.registry.get_shared(&spec.provider).ok_or_else(|| format!("unknown provider {}", spec.provider))?;
        let keys = super::channels::open_keys(&self.master_key, spec).map_err(|e| format!("keys: {e}"))?;
        Ok(Upstream {
            id: channel.id,
            name: spec.name.clone(),
            provider: spec.provider.clone(),
            adapter,
            base_url: spec.base_url.clone(),
            api_version: spec.api_version.clone(),
            keys,
            next_key: AtomicUsize::new(rand::random::<u16>() as usize),
            model_map: spec.model_map.clone(),
            priority: spec.priority,
            weight: spec.weight,
            rpm: spec
                .rpm_limit
                .map(|l| MinuteCounter { limit: l.clamp(0, u32::MAX as i64) as u32, window: Mutex::new((0, 0)) }),
            breaker: self.breaker(channel.id),
            heads: Mutex::new(HashMap::new()),
        })
    }

    fn build(&self, channels: Vec<Channel>) -> RouteTable {
        let mut by_model: HashMap<String, Vec<Arc<Upstream>>> = HashMap::new();
        let mut by_id = HashMap::new();
        for channel in channels.iter().filter(|c| c.spec.status == ChannelStatus::Enabled) {
            let upstream = match self.upstream(channel) {
                Ok(u) => Arc::new(u),
                Err(reason) => {
                    tracing::error!(channel_id = channel.id, %reason, "channel left out of routing");
                    continue;
                }
            };
            for model in &channel.spec.models {
                by_model.entry(model.clone()).or_default().push(upstream.clone());
            }
            by_id.insert(channel.id, upstream);
        }
        let models = by_model.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        RouteTable { by_model, by_id, models }
    }
}
