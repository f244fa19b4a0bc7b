//! The request id: taken from `x-request-id` or generated, returned on the response, and
//! available to handlers; the middleware that sets it is [`super::edge`].

use axum::http::{HeaderName, HeaderValue};

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Set when the request id is the client's own (`x-request-id`), not one we generated.
#[derive(Clone, Copy, Debug)]
pub struct ClientChoseId;

impl RequestId {
    /// An id unique to this request, for what must never collide (the relay's charge is
    /// idempotent per id): ours as it is; a client's with a random suffix, so that sending
    /// an id again, or someone else's, can never make a request look already billed.
    pub fn unique(&self, client_chose: bool) -> String {
        if !client_chose {
            return self.0.clone();
        }
        let head = &self.0[..self.0.len().min(95)];
        format!("{head}:{}", new_request_id())
    }
}

pub(super) fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// 32 hex digits: the time in milliseconds (12 digits), then 80 random bits. Ids made
/// later sort later, so the database indexes keyed by them (the call log's request id, the
/// ledger's `charge:{id}` idempotency key) grow at their right edge instead of touching a
/// random page per row: a usage batch dirties a handful of pages, not hundreds.
pub(super) fn new_request_id() -> String {
    let millis = firefly_core::time::now_ms().clamp(0, (1 << 48) - 1) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&rand::random::<[u8; 10]>());
    let mut hex = [0u8; 32];
    hex::encode_to_slice(bytes, &mut hex).expect("32 digits for 16 bytes");
    hex.iter().map(|&digit| char::from(digit)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_hex_unique_and_sort_by_time() {
        let first = new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        for id in &later {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
            assert!(*id > first, "{id} was made after {first} but sorts before it");
        }
        let distinct: std::collections::HashSet<&String> = later.iter().collect();
        assert_eq!(distinct.len(), later.len());
        let millis = i64::from_str_radix(&first[..12], 16).unwrap();
        assert!((firefly_core::time::now_ms() - millis).abs() < 60_000, "the prefix is the time in ms");
    }
}
