//! Databases made before the usage (0005) and holds (0006) migrations upgrade in place.

use firefly_store::{ConnectSettings, OpsStore};
use firefly_store_sqlite::SqliteStore;
use std::sync::Arc;

#[tokio::test]
async fn upgrade_to_usage_keeps_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upgrade.db").display());
    let opts = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before.migrations.iter().filter(|m| m.version < 5).cloned().collect::<Vec<_>>().into();
    before.run(&pool).await.unwrap();
    sqlx::raw_sql(firefly_store::conformance::PRE_USAGE_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let store = SqliteStore::connect(&ConnectSettings::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    firefly_store::conformance::upgraded_key_reads_back(Arc::new(store)).await;
}

#[tokio::test]
async fn upgrade_to_holds_keeps_balances() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upgrade.db").display());
    let opts = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before.migrations.iter().filter(|m| m.version < 6).cloned().collect::<Vec<_>>().into();
    before.run(&pool).await.unwrap();
    sqlx::raw_sql(firefly_store::conformance::PRE_HOLDS_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let store = SqliteStore::connect(&ConnectSettings::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    firefly_store::conformance::upgraded_balance_holds(Arc::new(store)).await;
}
