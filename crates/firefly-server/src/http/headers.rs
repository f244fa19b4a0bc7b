//! Security headers on every response.

use http::{HeaderName, HeaderValue};
use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

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

type HeaderLayer = SetResponseHeaderLayer<HeaderValue>;
/// Seven header layers, one after the other (the last only with HSTS on).
pub type SecurityHeaders = Stack<
    tower::util::Either<HeaderLayer, Identity>,
    Stack<
        HeaderLayer,
        Stack<HeaderLayer, Stack<HeaderLayer, Stack<HeaderLayer, Stack<HeaderLayer, Stack<HeaderLayer, Identity>>>>>,
    >,
>;

/// The security headers as plain layers (no boxed future per request).
pub fn security_headers(hsts: bool) -> SecurityHeaders {
    let layer = |(name, value): (&'static str, &'static str)| {
        SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
    };
    let [a, b, c, d, e, f] = HEADERS.map(layer);
    ServiceBuilder::new()
        .layer(a)
        .layer(b)
        .layer(c)
        .layer(d)
        .layer(e)
        .layer(f)
        .option_layer(hsts.then(|| layer(HSTS)))
        .into_inner()
}
