//! The routes, and serving them with `TCP_NODELAY` until told to stop.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use http::{Method, Uri};
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::state::{Counters, Shared};
use crate::{chat, embeddings, models};

/// Requests larger than this are refused (long prompts and base64 images fit).
const BODY_LIMIT: usize = 64 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::openai))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::retrieve))
        .route("/openai/deployments/{deployment}/chat/completions", post(chat::azure))
        .route("/openai/deployments/{deployment}/embeddings", post(embeddings::azure))
        .route("/_mock/stats", get(stats))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// The request counters, for scripts; not counted itself.
async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.counters.snapshot()).into_response()
}

async fn unknown_route(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    Counters::count(&shared.counters.other);
    Counters::count(&shared.counters.errors);
    ApiError::unknown_route(&method, uri.path()).into_response()
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: impl Future<Output = ()> + Send + 'static) {
    // Without it, a response head and its body written separately wait ~40 ms for a
    // delayed ACK on keep-alive connections.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // `serve` only fails on listener errors it cannot retry; the mock then simply stops.
    let _ = axum::serve(listener, router(shared)).with_graceful_shutdown(stop).await;
}
