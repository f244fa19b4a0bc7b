//! Helpers for tests that need a database server, shared by the backends' test support
//! and compiled always, so a backend's public `testing` module needs no feature.

/// The URL of a test server from `var` (such as `TEST_MYSQL_URL`). Outside CI a missing
/// variable skips the backend with a note; under `CI=true` it fails the run, so CI can
/// never pass by silently testing less.
pub fn test_server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} must be set under CI=true: the backend's server is required, not optional")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// A database name no other test run uses: `<prefix>_<pid>_<counter>_<nanos>`.
pub fn unique_db_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
