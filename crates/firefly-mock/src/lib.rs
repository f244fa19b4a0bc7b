//! A local stand-in for an OpenAI-compatible upstream, for Firefly's relay tests and
//! benchmarks. It speaks OpenAI's wire format (and Azure OpenAI's URLs and key header),
//! streaming and not, with deterministic content and usage, and can be told per request to be
//! slow, to fail, or to drop the connection mid-stream.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use firefly_mock::{MockConfig, MockUpstream};
//! let mock = MockUpstream::start(MockConfig::default()).await?;
//! let base_url = mock.base_url(); // http://127.0.0.1:PORT/v1
//! // ... point a relay channel at base_url, send requests ...
//! assert_eq!(mock.chat_requests(), 0);
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/chat/completions` | `chat.completion`, or an SSE stream of `chat.completion.chunk` with `"stream": true` |
//! | `POST /v1/embeddings` | `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}` |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the configured [`MockConfig::models`] |
//! | `POST /openai/deployments/{d}/chat/completions?api-version=…` | Azure OpenAI: the same bodies; key in `api-key` |
//! | `POST /openai/deployments/{d}/embeddings?api-version=…` | Azure OpenAI embeddings |
//! | `GET /_mock/stats` | [`MockStats`] as JSON (no key needed, not counted) |
//!
//! Every API route wants a key: `Authorization: Bearer <anything>` (Azure routes: `api-key:
//! <anything>`, or Bearer). Without one: 401 with OpenAI's error body. Azure routes without
//! `api-version` get 404 `Resource not found`, as Azure answers. A body that is not JSON gets
//! 400 `invalid_request_error`. Unknown routes get 404 `Invalid URL (METHOD /path)`.
//!
//! # Deterministic content and usage
//!
//! A completion is `K` content chunks per choice, `K` = `x-mock-chunks` or
//! [`MockConfig::chunks`] (default 8), capped by the request's `max_completion_tokens` (or
//! `max_tokens`), in which case `finish_reason` is `"length"`. Chunk `i` is the `i % 8`-th
//! word of `" Firefly mock says hello from the local upstream."` (the first chunk without its
//! leading space), so 8 chunks read `"Firefly mock says hello from the local upstream."`.
//! With a tool call (`x-mock-tool-call: 1`) the same `K` words are the arguments,
//! `{"text":"<words>"}`, streamed as `K` fragments, with `finish_reason` `"tool_calls"`; the
//! function is the request's first `tools[].function.name`, else `mock_tool`.
//!
//! Usage, which the relay's billing tests can compute exactly:
//!
//! ```text
//! prompt_tokens     = max(1, floor(C / 4))
//!                     C = characters (Unicode scalar values) of all messages[].content:
//!                         string contents, plus the "text" of content parts;
//!                         images, audio, tool-call arguments, names and roles count 0
//! completion_tokens = K × n            (one token per content chunk, n = choices)
//! total_tokens      = prompt_tokens + completion_tokens
//! ```
//!
//! Embeddings: `prompt_tokens = total_tokens = max(1, floor(C / 4) + T)`, `C` = characters of
//! all string inputs, `T` = token ids of all token-array inputs. Each input's vector has
//! `dimensions` (request) or [`MockConfig::embedding_dimensions`] (default 8) values; see
//! [`embedding_vector`]. `encoding_format: "base64"` returns the little-endian f32s in base64.
//!
//! `x-mock-no-usage: 1` removes usage entirely (no `usage` field on a completion, no usage
//! chunk and no `"usage": null` in a stream), for the relay's own counting.
//!
//! # Per-request knobs
//!
//! Headers, or the same names as string values in a chat request's `metadata` object (which
//! survives a relay that does not forward unknown headers); a header wins:
//!
//! | knob | effect |
//! |---|---|
//! | `x-mock-status: 429` | answer that status (400–599) with OpenAI's error body; 429 adds `retry-after: 1` |
//! | `x-mock-error-code: insufficient_quota` | the `code` of that error body (`insufficient_quota` also sets its type and message) |
//! | `x-mock-latency-ms: N` | wait N ms before the response head (any endpoint, errors too) |
//! | `x-mock-chunk-delay-ms: N` | wait N ms before each content chunk of a stream |
//! | `x-mock-chunks: K` | content chunks per choice |
//! | `x-mock-disconnect-after: K` | stream: drop the connection after K content chunks (counted over all choices), without `finish_reason`, usage or `[DONE]` |
//! | `x-mock-no-usage: 1` | omit usage |
//! | `x-mock-tool-call: 1` | answer with a tool call |
//!
//! Keys listed in [`MockConfig::fail_keys`] (or set with [`MockUpstream::set_fail_key`]) are
//! answered with their status, so a relay that sends its own channel key can be made to see
//! one channel fail.
//!
//! # Speed
//!
//! The mock sets `TCP_NODELAY` on accepted sockets, logs nothing, serializes straight into the
//! response buffers, keeps the last request by moving its headers and sharing its body, and
//! takes the fail-key lock only while fail keys exist.

mod anthropic;
mod chat;
mod config;
mod dashscope;
mod embeddings;
mod error;
mod frames;
mod gemini;
mod knobs;
mod media;
mod models;
mod prompt;
mod server;
mod state;
mod stream;
mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::MockConfig;
pub use embeddings::vector as embedding_vector;

use state::Shared;

/// How long [`MockUpstream::shutdown`] lets in-flight responses finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Request counts, as [`MockUpstream::stats`] and `GET /_mock/stats` report them. Every
/// answered API request counts, errors included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MockStats {
    /// All API requests (the sum of the endpoint counts, plus unknown routes; not `files`).
    pub requests: u64,
    /// OpenAI and Azure chat completions only.
    pub chat_completions: u64,
    /// OpenAI and Azure embeddings only.
    pub embeddings: u64,
    /// `GET /v1/models` and `GET /v1/models/{id}`, OpenAI's shape or Anthropic's.
    pub models: u64,
    /// Requests answered with an error status (injected or not).
    pub errors: u64,
    /// Anthropic `POST /v1/messages`.
    pub messages: u64,
    /// Anthropic `POST /v1/messages/count_tokens`.
    pub count_tokens: u64,
    /// Gemini `generateContent`, `streamGenerateContent` and `countTokens`.
    pub gemini: u64,
    /// OpenAI (and Azure) `images/generations`.
    pub images: u64,
    /// OpenAI (and Azure) `audio/speech`.
    pub speech: u64,
    /// OpenAI (and Azure) `audio/transcriptions`.
    pub transcriptions: u64,
    /// DashScope `text2image/image-synthesis` task submissions.
    pub image_synthesis: u64,
    /// DashScope `GET /api/v1/tasks/{id}` polls.
    pub tasks: u64,
    /// DashScope `multimodal-generation/generation` (Qwen-TTS).
    pub multimodal_generation: u64,
    /// `GET /_mock/files/{name}` downloads (no key needed; not part of `requests`).
    pub files: u64,
}

/// A running mock upstream, serving on a local port until [`shutdown`](Self::shutdown) or
/// drop.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds [`MockConfig::listen`] and starts serving on the current Tokio runtime.
    pub async fn start(config: MockConfig) -> io::Result<MockUpstream> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, addr));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, shared.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(MockUpstream { addr, shared, stop: Some(stop), task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server's origin, `http://127.0.0.1:PORT`: an Azure OpenAI "endpoint".
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answered API requests, all endpoints.
    pub fn requests(&self) -> u64 {
        self.stats().requests
    }

    pub fn chat_requests(&self) -> u64 {
        self.stats().chat_completions
    }

    pub fn embeddings_requests(&self) -> u64 {
        self.stats().embeddings
    }

    pub fn models_requests(&self) -> u64 {
        self.stats().models
    }

    /// Requests answered with an error status.
    pub fn error_responses(&self) -> u64 {
        self.stats().errors
    }

    pub fn stats(&self) -> MockStats {
        self.shared.counters.snapshot()
    }

    /// The body of the last API request, parsed; `None` before the first request or when the
    /// body was not JSON.
    pub fn last_request_body(&self) -> Option<serde_json::Value> {
        let body = self.with_last(|last| last.body.clone())?;
        serde_json::from_slice(&body).ok()
    }

    /// The raw body of the last API request.
    pub fn last_request_bytes(&self) -> Option<bytes::Bytes> {
        self.with_last(|last| last.body.clone())
    }

    /// The headers of the last API request (`authorization`, `api-key`, ...).
    pub fn last_request_headers(&self) -> Option<HeaderMap> {
        self.with_last(|last| last.headers.clone())
    }

    /// The method and URI (path and query) of the last API request.
    pub fn last_request_target(&self) -> Option<(http::Method, Uri)> {
        self.with_last(|last| (last.method.clone(), last.uri.clone()))
    }

    fn with_last<T>(&self, f: impl FnOnce(&state::Recorded) -> T) -> Option<T> {
        self.shared.last.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(f)
    }

    /// Makes requests presenting `key` fail with `status` from now on.
    pub fn set_fail_key(&self, key: impl Into<String>, status: u16) {
        self.shared.set_fail_key(key.into(), status);
    }

    pub fn clear_fail_key(&self, key: &str) {
        self.shared.clear_fail_key(key);
    }

    /// Stops accepting connections, lets in-flight responses finish (up to 5 s), and returns
    /// once the server is gone.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
