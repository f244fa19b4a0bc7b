//! Security headers on every response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The API serves JSON: nothing may be framed, sniffed or run from it. The docs page
/// sets its own, looser Content-Security-Policy (scripts from this origin only).
pub async fn security_headers(hsts: bool, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    set("referrer-policy", "no-referrer");
    set("cross-origin-resource-policy", "same-origin");
    set("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
    set("cache-control", "no-store");
    if hsts {
        set("strict-transport-security", "max-age=63072000; includeSubDomains");
    }
    response
}
