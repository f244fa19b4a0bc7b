//! The `firefly` binary's library: configuration loading, backend wiring and the CLI.

pub mod cli;
pub mod config;
pub mod logformat;
pub mod logwriter;

use anyhow::Context;
use firefly_core::config::{Config, DatabaseKind};
use firefly_store::{ConnectSettings, DynStore};
use std::sync::Arc;
use std::time::Duration;

/// Opens the store the database URL's scheme names.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    let url = config.database_url();
    let settings = ConnectSettings {
        url: url.expose().to_owned(),
        read_url: config.database.read_url.as_ref().map(|u| u.expose().to_owned()),
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_secs(config.database.acquire_timeout_secs),
    };
    let what = || format!("connecting to {}", url.masked());
    let store: DynStore = match url.kind() {
        Some(DatabaseKind::Sqlite) => {
            Arc::new(firefly_store_sqlite::SqliteStore::connect(&settings).await.with_context(what)?)
        }
        Some(DatabaseKind::Mysql) => {
            Arc::new(firefly_store_mysql::MysqlStore::connect(&settings).await.with_context(what)?)
        }
        Some(DatabaseKind::Postgres) => {
            Arc::new(firefly_store_postgres::PostgresStore::connect(&settings).await.with_context(what)?)
        }
        None => anyhow::bail!("database.url: unsupported scheme `{}:`", url.scheme()),
    };
    Ok(store)
}
