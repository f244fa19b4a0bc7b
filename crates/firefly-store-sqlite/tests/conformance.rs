use firefly_store::{ConnectSettings, DynStore};
use firefly_store_sqlite::SqliteStore;
use std::sync::Arc;

/// A fresh SQLite file.
async fn fresh_url() -> Option<String> {
    let dir = tempfile::tempdir().unwrap().keep();
    Some(format!("sqlite://{}", dir.join("conformance.db").display()))
}

async fn connect(settings: &ConnectSettings) -> DynStore {
    Arc::new(SqliteStore::connect(settings).await.unwrap())
}

/// A fresh SQLite file per test, migrated.
async fn fresh() -> Option<DynStore> {
    let store = connect(&ConnectSettings::new(fresh_url().await?)).await;
    store.migrate().await.unwrap();
    Some(store)
}

firefly_store::conformance_tests!(fresh);
firefly_store::conformance_instance_tests!(fresh_url, connect);
