//! Test support: a fresh, empty database per test on a shared MySQL/MariaDB server.

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates a new database on the server `admin_url` points at (for example
/// `mysql://root@127.0.0.1:3306/test`) and returns the same URL with its path
/// replaced by the new database's name. The database is left behind for inspection.
pub async fn fresh_database(admin_url: &str) -> Result<String, BoxError> {
    let name = firefly_store::testing::unique_db_name("ff_t");
    // An identifier cannot be bound, so it is checked and quoted instead; the name is
    // generated above, never user input.
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("unexpected database name {name:?}").into());
    }
    let mut conn = MySqlConnectOptions::from_str(admin_url)?.connect().await?;
    let ddl = format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
    conn.execute(ddl.as_str()).await?;
    conn.close().await?;
    with_database(admin_url, &name)
}

/// `url` with its path (the database) set to `name`, keeping credentials and query.
fn with_database(url: &str, name: &str) -> Result<String, BoxError> {
    let authority = url.find("://").map(|i| i + 3).ok_or("database URL has no scheme")?;
    let rest = &url[authority..];
    // The authority ends at the first '/', '?' or '#'; the path runs to the next '?' or '#'.
    let host_end = authority + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let tail = &url[host_end..];
    let path_end = host_end + tail.find(['?', '#']).unwrap_or(tail.len());
    Ok(format!("{}/{}{}", &url[..host_end], name, &url[path_end..]))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_path() {
        let cases = [
            ("mysql://root@127.0.0.1:3306/test", "mysql://root@127.0.0.1:3306/db"),
            ("mysql://root@127.0.0.1:3306", "mysql://root@127.0.0.1:3306/db"),
            ("mysql://u:p@h/test?ssl-mode=disabled", "mysql://u:p@h/db?ssl-mode=disabled"),
            ("mysql://u:p@h?charset=utf8mb4", "mysql://u:p@h/db?charset=utf8mb4"),
        ];
        for (input, want) in cases {
            assert_eq!(with_database(input, "db").unwrap(), want, "{input}");
        }
    }
}
