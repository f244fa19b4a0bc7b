use firefly_store::{ConnectSettings, DynStore};
use firefly_store_postgres::{testing, PostgresStore};
use std::sync::Arc;

/// A fresh, empty database on the server in `TEST_POSTGRES_URL`.
async fn fresh_url() -> Option<String> {
    let admin = firefly_store::testing::test_server_url("TEST_POSTGRES_URL")?;
    Some(testing::fresh_database(&admin).await.unwrap())
}

async fn connect(settings: &ConnectSettings) -> DynStore {
    Arc::new(PostgresStore::connect(settings).await.unwrap())
}

/// A fresh database per test, migrated.
async fn fresh() -> Option<DynStore> {
    let store = connect(&ConnectSettings::new(fresh_url().await?)).await;
    store.migrate().await.unwrap();
    Some(store)
}

firefly_store::conformance_tests!(fresh);
firefly_store::conformance_instance_tests!(fresh_url, connect);
