//! Operations endpoints: liveness, readiness, metrics, the OpenAPI document and its
//! browsable page.

pub mod docs;
pub mod metrics;
pub mod openapi;

use crate::http::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use firefly_core::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

const TAG: &str = "operations";

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = TAG, responses((status = 200, body = Health, description = "the process is alive")))]
pub async fn healthz() -> crate::http::Json<Health> {
    crate::http::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    status: &'static str,
    database: &'static str,
    migrations_applied: i64,
    migrations_expected: i64,
}

/// Readiness: the database answers and its schema is current.
#[utoipa::path(get, path = "/readyz", tag = TAG,
    responses((status = 200, body = Readiness, description = "the database answers and its schema is current"),
              (status = 503, body = openapi::ErrorResponse, description = "service.unavailable")))]
pub async fn readyz(State(state): State<AppState>) -> Result<crate::http::Json<Readiness>, ApiError> {
    let unavailable = |why: String| ApiError(Error::with_message(ErrorCode::Unavailable, why));
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(unavailable("The server is shutting down.".into()));
    }
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: database unreachable");
        unavailable("The database is unreachable.".into())
    })?;
    let m = state.store.migration_status().await.map_err(|_| unavailable("Cannot read migration state.".into()))?;
    if !m.is_current() {
        return Err(unavailable(format!(
            "Database migrations are not current: {} of {} applied, {} unknown.",
            m.applied, m.expected, m.unknown
        )));
    }
    Ok(crate::http::Json(Readiness {
        status: "ready",
        database: state.store.kind(),
        migrations_applied: m.applied,
        migrations_expected: m.expected,
    }))
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = TAG, responses((status = 200, body = Object, description = "this document")))]
pub async fn openapi_json() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| crate::router::openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = TAG, responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::record_pools(&state.store.pool_stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics::handle().render())
}
