//! Security headers on every response.

use axum::response::Response;
use http::{HeaderName, HeaderValue};
use tower::util::MapResponseLayer;

/// The API serves JSON: nothing may be framed, sniffed or run from it. A response that
/// sets one of these itself keeps its own (the docs page has a looser
/// Content-Security-Policy: scripts from this origin only).
const HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cache-control", "no-store"),
];
const HSTS: (&str, &str) = ("strict-transport-security", "max-age=63072000; includeSubDomains");

/// The security headers as a plain layer (no boxed future per request).
pub fn security_headers(hsts: bool) -> MapResponseLayer<impl Fn(Response) -> Response + Clone + Send + Sync> {
    MapResponseLayer::new(move |mut response: Response| {
        let headers = response.headers_mut();
        for (name, value) in HEADERS.iter().chain(hsts.then_some(&HSTS)) {
            headers.entry(HeaderName::from_static(name)).or_insert(HeaderValue::from_static(value));
        }
        response
    })
}
