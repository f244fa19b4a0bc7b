//! API-key authentication on a cache hit: SHA-256 of the presented key, the cache
//! lookup, and the expiry, owner and IP allow-list checks.
//!
//! cargo bench -p firefly --bench key_auth

use criterion::{criterion_group, criterion_main, Criterion};
use firefly_server::keys::auth::KeyCache;
use firefly_store::{ConnectSettings, DynStore, NewApiKey, NewUser, OpsStore, Role};
use std::net::IpAddr;
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cache, key) = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = firefly_store_sqlite::SqliteStore::connect(&ConnectSettings::new(url)).await.unwrap();
        store.migrate().await.unwrap();
        let store: DynStore = Arc::new(store);
        let user = store
            .create_user(NewUser {
                email: "bench@example.com".into(),
                display_name: "bench".into(),
                password_hash: "x".into(),
                role: Role::User,
                initial_credits: 0,
                now: 0,
            })
            .await
            .unwrap();
        let key = "sk-ff-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG".to_owned();
        let hash = hex_sha256(&key);
        store
            .create_api_key(NewApiKey {
                user_id: user.id,
                name: "bench".into(),
                key_hash: hash,
                prefix: key[..12].to_owned(),
                expires_at: None,
                models: vec![],
                ip_allow: vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()],
                credit_limit: None,
                rpm_limit: None,
                tpm_limit: None,
                concurrency_limit: None,
                now: 0,
            })
            .await
            .unwrap();
        let cache = KeyCache::new(store);
        (cache, key)
    });
    let ip: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
    rt.block_on(cache.authenticate(&key, ip, 1)).expect("the key authenticates");
    c.bench_function("api_key_auth_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let k = cache.authenticate(std::hint::black_box(&key), ip, 1).await.unwrap();
            std::hint::black_box(k);
        })
    });
}

fn hex_sha256(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
