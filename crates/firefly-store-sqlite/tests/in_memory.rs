//! In-memory databases migrate without a lock file: sqlx names one `file:sqlx-in-memory-N`,
//! and a lock "next to" it would land in the working directory.

use firefly_store::{ConnectSettings, OpsStore, UserStore};
use firefly_store_sqlite::SqliteStore;

fn lock_files_here() -> Vec<String> {
    std::fs::read_dir(".")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".migrate.lock"))
        .collect()
}

#[tokio::test]
async fn in_memory_migrates_without_a_lock_file() {
    for url in ["sqlite::memory:", "sqlite:file:ff-in-memory?mode=memory"] {
        let store = SqliteStore::connect(&ConnectSettings::new(url)).await.unwrap();
        store.migrate().await.unwrap();
        let status = store.migration_status().await.unwrap();
        assert!(status.is_current(), "{url}: {status:?}");
        assert_eq!(store.count_active_admins().await.unwrap(), 0, "{url}");
        store.close().await;
    }
    assert_eq!(lock_files_here(), Vec::<String>::new());
}
