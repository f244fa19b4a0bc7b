//! Test support: a fresh, empty database per test on a shared server.

use sqlx::{Connection, Executor, PgConnection};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Creates a new, uniquely named database on the server `admin_url` points at and
/// returns the URL of that database (the same URL with its path replaced). The
/// database is left in place; test servers are disposable.
pub async fn fresh_database(admin_url: &str) -> Result<String, BoxError> {
    let name = firefly_store::testing::unique_db_name("ff_t").to_lowercase();
    let mut conn = PgConnection::connect(admin_url).await?;
    // DDL cannot bind an identifier. The name is generated, never user input, and is
    // quoted anyway.
    let mut ddl = String::from("CREATE DATABASE ");
    ddl.push_str(&quote_ident(&name));
    conn.execute(ddl.as_str()).await?;
    conn.close().await?;
    Ok(with_database(admin_url, &name))
}

/// `name` as a PostgreSQL quoted identifier.
fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `url` with its path (the database name) replaced by `name`; query and fragment kept.
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = authority_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let tail = &url[authority_end..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let mut out = String::with_capacity(url.len() + name.len());
    out.push_str(&url[..authority_end]);
    out.push('/');
    out.push_str(name);
    out.push_str(&tail[path_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_path_only() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
        assert_eq!(with_database("postgresql://h?application_name=t", "x"), "postgresql://h/x?application_name=t");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("ff_t_1"), "\"ff_t_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
