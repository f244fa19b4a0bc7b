//! Databases made before the usage (0005) and holds (0006) migrations upgrade in place.

use firefly_store::{ConnectSettings, OpsStore};
use firefly_store_mysql::{testing, MysqlStore};
use std::sync::Arc;

#[tokio::test]
async fn upgrade_to_usage_keeps_keys() {
    let Some(admin) = firefly_store::testing::test_server_url("TEST_MYSQL_URL") else { return };
    let url = testing::fresh_database(&admin).await.unwrap();
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before.migrations.iter().filter(|m| m.version < 5).cloned().collect::<Vec<_>>().into();
    before.run(&pool).await.unwrap();
    sqlx::raw_sql(firefly_store::conformance::PRE_USAGE_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let store = MysqlStore::connect(&ConnectSettings::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    firefly_store::conformance::upgraded_key_reads_back(Arc::new(store)).await;
}

#[tokio::test]
async fn upgrade_to_holds_keeps_balances() {
    let Some(admin) = firefly_store::testing::test_server_url("TEST_MYSQL_URL") else { return };
    let url = testing::fresh_database(&admin).await.unwrap();
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before.migrations.iter().filter(|m| m.version < 6).cloned().collect::<Vec<_>>().into();
    before.run(&pool).await.unwrap();
    sqlx::raw_sql(firefly_store::conformance::PRE_HOLDS_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let store = MysqlStore::connect(&ConnectSettings::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    firefly_store::conformance::upgraded_balance_holds(Arc::new(store)).await;
}
