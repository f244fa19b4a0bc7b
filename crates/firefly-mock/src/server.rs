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
use crate::media::{files, images, speech, transcription};
use crate::state::{Counters, Shared};
use crate::{anthropic, chat, dashscope, embeddings, gemini, models};

/// Requests larger than this are refused (long prompts and base64 images fit).
const BODY_LIMIT: usize = 64 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/embeddings", post(embeddings::handle))
        .route("/v1/models", get(models::list))
        // GET: OpenAI's (or Anthropic's) model; POST: Gemini's v1 `{model}:{method}`.
        .route("/v1/models/{model}", get(models::retrieve).post(gemini::call))
        .route("/v1/images/generations", post(images::handle))
        .route("/v1/audio/speech", post(speech::handle))
        .route("/v1/audio/transcriptions", post(transcription::handle))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models/{model}", post(gemini::call))
        .route("/openai/deployments/{deployment}/chat/completions", post(chat::handle))
        .route("/openai/deployments/{deployment}/embeddings", post(embeddings::handle))
        .route("/openai/deployments/{deployment}/images/generations", post(images::handle))
        .route("/openai/deployments/{deployment}/audio/speech", post(speech::handle))
        .route("/openai/deployments/{deployment}/audio/transcriptions", post(transcription::handle))
        .route("/api/v1/services/aigc/text2image/image-synthesis", post(dashscope::image_synthesis))
        .route("/api/v1/tasks/{task_id}", get(dashscope::task))
        .route("/api/v1/services/aigc/multimodal-generation/generation", post(dashscope::multimodal_generation))
        .route("/_mock/files/{name}", get(files::serve))
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
