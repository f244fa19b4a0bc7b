//! All timestamps are UTC milliseconds since the Unix epoch (`i64`), in memory and in
//! every database, so the three backends agree on ordering and arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

pub type Millis = i64;

pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
