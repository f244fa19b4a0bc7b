//! A browsable API reference at `/docs`, rendered in the browser from `/openapi.json` by
//! a small script shipped inside the binary: nothing is downloaded at build or run time.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("docs/index.html");
const SCRIPT: &str = include_str!("docs/app.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

/// The browsable API reference.
#[utoipa::path(get, path = "/docs", tag = "operations", responses((status = 200, content_type = "text/html", body = String, description = "the API reference page")))]
pub async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP)], PAGE)
}

/// The reference page's script.
#[utoipa::path(get, path = "/docs/app.js", tag = "operations", responses((status = 200, content_type = "text/javascript", body = String, description = "the page's script")))]
pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP)], SCRIPT)
}
