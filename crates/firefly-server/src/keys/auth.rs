//! API-key authentication for the AI API: `Authorization: Bearer sk-ff-...` or
//! `x-api-key: sk-ff-...`, looked up by SHA-256 through a cache whose entries live one
//! second, so a revoked key or a disabled owner stops working everywhere within that
//! second (and at once on the instance that made the change).

use crate::accounts::extract::bearer;
use crate::http::extract::client_ip;
use crate::http::ApiError;
use crate::state::{AppState, AUTH_CACHE_TTL};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use firefly_core::time::{now_ms, Millis};
use firefly_core::ErrorCode;
use firefly_store::{ApiKeyAuth, DynStore, UserStatus};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

pub const KEY_PREFIX: &str = "sk-ff-";

/// A key record as authentication needs it, with its allow-list parsed once.
#[derive(Debug)]
pub struct CachedKey {
    pub auth: ApiKeyAuth,
    pub nets: Vec<IpNet>,
    /// A stored entry failed to parse: the list fails closed rather than open.
    pub nets_broken: bool,
}

impl CachedKey {
    fn new(auth: ApiKeyAuth) -> Self {
        let nets: Vec<IpNet> = auth.key.ip_allow.iter().filter_map(|s| parse_net(s)).collect();
        let nets_broken = nets.len() != auth.key.ip_allow.len();
        Self { auth, nets, nets_broken }
    }

    /// Whether a request from `ip` (`None`: unknown) may use this key.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.auth.key.ip_allow.is_empty() {
            return true;
        }
        !self.nets_broken && ip.is_some_and(|ip| self.nets.iter().any(|net| net.contains(&ip)))
    }
}

/// An address (`10.1.2.3`) or a range (`10.0.0.0/8`).
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[derive(Clone)]
pub struct KeyCache {
    store: DynStore,
    cache: moka::future::Cache<[u8; 32], Option<Arc<CachedKey>>>,
}

impl KeyCache {
    pub fn new(store: DynStore) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(AUTH_CACHE_TTL)
            .support_invalidation_closures()
            .build();
        Self { store, cache }
    }

    /// Authenticates a raw key from `ip` at `now`.
    pub async fn authenticate(&self, raw: &str, ip: Option<IpAddr>, now: Millis) -> Result<Arc<CachedKey>, ApiError> {
        if !raw.starts_with(KEY_PREFIX) || raw.len() > 128 {
            return Err(ErrorCode::ApiKeyInvalid.into());
        }
        let digest: [u8; 32] = Sha256::digest(raw.as_bytes()).into();
        let store = self.store.clone();
        let found = self
            .cache
            .try_get_with(digest, async move {
                let auth = store.api_key_by_hash(&hex::encode(digest)).await?;
                Ok::<_, firefly_store::StoreError>(auth.map(|a| Arc::new(CachedKey::new(a))))
            })
            .await
            .map_err(crate::http::error::internal)?;
        let key = found.ok_or(ErrorCode::ApiKeyInvalid)?;
        let k = &key.auth.key;
        if !k.enabled || k.expires_at.is_some_and(|at| at <= now) || key.auth.user_status != UserStatus::Active {
            return Err(ErrorCode::ApiKeyInvalid.into());
        }
        if !key.allows(ip) {
            return Err(ErrorCode::ApiKeyIpDenied.into());
        }
        Ok(key)
    }

    /// Forgets cached entries at once on this instance (others follow within the TTL).
    pub fn forget_key(&self, key_id: i64) {
        let _ = self.cache.invalidate_entries_if(move |_, v| v.as_ref().is_some_and(|k| k.auth.key.id == key_id));
    }

    pub fn forget_user(&self, user_id: i64) {
        let _ = self.cache.invalidate_entries_if(move |_, v| v.as_ref().is_some_and(|k| k.auth.key.user_id == user_id));
    }
}

/// A request authenticated by API key.
#[derive(Clone, Debug)]
pub struct KeyAuth(pub Arc<CachedKey>);

impl FromRequestParts<AppState> for KeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let raw = bearer(parts)
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
            .ok_or(ErrorCode::Unauthenticated)?;
        let ip = client_ip(parts);
        Ok(KeyAuth(state.key_cache.authenticate(raw, ip, now_ms()).await?))
    }
}
