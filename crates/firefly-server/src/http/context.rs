//! The outermost middleware: request id (taken from `x-request-id` or generated, and
//! returned), error bodies rendered with that id, one JSON log line and the HTTP
//! metrics per request. Nothing from headers or bodies is logged: no secret can leak.

use super::error::{error_body_for, ErrorPayload};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

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

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// 32 hex digits: the time in milliseconds (12 digits), then 80 random bits. Ids made
/// later sort later, so the database indexes keyed by them (the call log's request id, the
/// ledger's `charge:{id}` idempotency key) grow at their right edge instead of touching a
/// random page per row: a usage batch dirties a handful of pages, not hundreds.
fn new_request_id() -> String {
    let millis = firefly_core::time::now_ms().clamp(0, (1 << 48) - 1) as u64;
    let random: [u8; 10] = rand::random();
    let mut id = String::with_capacity(32);
    id.push_str(&hex::encode(&millis.to_be_bytes()[2..]));
    id.push_str(&hex::encode(random));
    id
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let client_id = req.headers().get(&REQUEST_ID).and_then(valid_request_id);
    if client_id.is_some() {
        req.extensions_mut().insert(ClientChoseId);
    }
    let id = client_id.unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(id.clone()));

    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span.clone()).await;

    let code = response.extensions_mut().remove::<ErrorPayload>().map(|ErrorPayload(error)| {
        let body = error_body_for(&path, &error, &id);
        let body = body.to_string();
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.remove(http::header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
        error.code
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }

    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    // Set by the router when a route matched.
    let route = response.extensions().get::<MatchedPath>();
    let route = route.map_or("unmatched", |p| p.as_str());
    crate::ops::metrics::record_request(method.as_str(), route, status, elapsed);
    // Outside the request's span, with the id as a field of its own: the JSON formatter
    // would otherwise re-parse the span's fields for this line (one per request).
    drop(span);
    tracing::info!(
        target: "firefly::http",
        request_id = %id,
        method = %method,
        path = %path,
        route,
        status,
        error_code = code.map(|c| c.as_str()),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
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
