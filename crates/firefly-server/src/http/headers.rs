//! Security headers on every response.

use http::{header, HeaderMap, HeaderName, HeaderValue};

/// The API serves JSON: nothing may be framed, sniffed or run from it. A response that
/// sets one of these itself keeps its own (the docs page has a looser
/// Content-Security-Policy: scripts from this origin only).
static HEADERS: [(HeaderName, HeaderValue); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin")),
    (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];
static HSTS: (HeaderName, HeaderValue) =
    (header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));

/// Sets the security headers a response does not set itself. The names and values are
/// built at compile time.
pub fn add_security_headers(headers: &mut HeaderMap, hsts: bool) {
    for (name, value) in HEADERS.iter().chain(hsts.then_some(&HSTS)) {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
}
