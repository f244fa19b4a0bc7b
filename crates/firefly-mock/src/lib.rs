//! A local stand-in for the AI providers Firefly relays to, for its tests and benchmarks. It
//! speaks OpenAI's wire format (and Azure OpenAI's URLs and key header), Anthropic's Messages
//! API, Gemini's `generateContent`, OpenAI's images and audio endpoints, and DashScope's native
//! image-synthesis tasks and Qwen-TTS, streaming and not, with deterministic content and usage,
//! and can be told per request to be slow, to fail, or to break a stream.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use firefly_mock::{MockConfig, MockUpstream};
//! let mock = MockUpstream::start(MockConfig::default()).await?;
//! let base_url = mock.base_url(); // http://127.0.0.1:PORT/v1
//! let origin = mock.origin(); // http://127.0.0.1:PORT (Azure, Gemini, DashScope, files)
//! // ... point a relay channel at base_url, send requests ...
//! assert_eq!(mock.chat_requests(), 0);
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! | route | answer | counter |
//! |---|---|---|
//! | `POST /v1/chat/completions` | `chat.completion`, or an SSE stream of `chat.completion.chunk` with `"stream": true` | `chat_completions` |
//! | `POST /v1/embeddings` | `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}` | `embeddings` |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the configured [`MockConfig::models`]; in Anthropic's shape (`{data:[{type:"model",id,display_name,created_at}],has_more,first_id,last_id}`) when the request has `anthropic-version` | `models` |
//! | `POST /v1/images/generations` | `{created, data:[{url}\|{b64_json}]}` (see Images) | `images` |
//! | `POST /v1/audio/speech` | audio bytes (see Audio) | `speech` |
//! | `POST /v1/audio/transcriptions` | multipart upload → `{"text","usage":{"type":"duration","seconds"}}` (see Audio) | `transcriptions` |
//! | `POST /openai/deployments/{d}/chat/completions?api-version=…` | Azure OpenAI: the same bodies; key in `api-key` | `chat_completions` |
//! | `POST /openai/deployments/{d}/embeddings?api-version=…` | Azure OpenAI embeddings | `embeddings` |
//! | `POST /openai/deployments/{d}/images/generations`, `…/audio/speech`, `…/audio/transcriptions` (`?api-version=…`) | Azure OpenAI images and audio; `d` is the model when the body has none | `images`, `speech`, `transcriptions` |
//! | `POST /v1/messages` | Anthropic `message`, or Anthropic's SSE event stream with `"stream": true` | `messages` |
//! | `POST /v1/messages/count_tokens` | `{"input_tokens": N}` | `count_tokens` |
//! | `POST /v1beta/models/{model}:generateContent` (also `/v1/models/…`) | Gemini `GenerateContentResponse` | `gemini` |
//! | `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` | one SSE `data:` event per chunk, CRLF-framed (`data: {…}\r\n\r\n`), as Google frames them; without `alt=sse` the same responses as one streamed JSON array | `gemini` |
//! | `POST /v1beta/models/{model}:countTokens` | `{"totalTokens": N, "promptTokensDetails": [...]}` | `gemini` |
//! | `POST /api/v1/services/aigc/text2image/image-synthesis` | DashScope: needs `X-DashScope-Async: enable`; `{output:{task_status:"PENDING",task_id},request_id}` | `image_synthesis` |
//! | `GET /api/v1/tasks/{task_id}` | DashScope task state (see DashScope) | `tasks` |
//! | `POST /api/v1/services/aigc/multimodal-generation/generation` | Qwen-TTS: `{output:{audio:{url,id,expires_at,data:""},finish_reason:"stop"},usage,request_id}` | `multimodal_generation` |
//! | `GET /_mock/files/{name}` | generated files: `img-<n>.png` (`image/png`), `speech-<C>-<n>.wav` (`audio/wav`, the speech for `C` characters); no key; else 404 | `files` |
//! | `GET /_mock/stats` | [`MockStats`] as JSON (no key needed, not counted) | — |
//!
//! `requests` is the sum of every counter above except `files`, plus unknown routes. The
//! OpenAI counters count only OpenAI (and Azure) chat, embeddings and models requests.
//!
//! ## Keys and refusals
//!
//! | provider | key | without a key | other admission errors |
//! |---|---|---|---|
//! | OpenAI | `Authorization: Bearer <anything>` | 401, OpenAI's error body | body not JSON: 400 `invalid_request_error`; unknown route: 404 `Invalid URL (METHOD /path)` |
//! | Azure | `api-key: <anything>`, or Bearer | 401 | no `api-version`: 404 `Resource not found` |
//! | Anthropic | `x-api-key: <anything>`, or Bearer | 401 `authentication_error` | no `anthropic-version`: 400 `invalid_request_error` |
//! | Gemini | `x-goog-api-key`, `?key=`, or Bearer | 403 `PERMISSION_DENIED` | a fail key with status 400 or 401: 400 `INVALID_ARGUMENT` with an `ErrorInfo` detail of reason `API_KEY_INVALID` |
//! | DashScope | `Authorization: Bearer <anything>` | 401 `InvalidApiKey` | image synthesis without `X-DashScope-Async: enable`: 403 `AccessDenied` "current user api does not support synchronous calls" |
//!
//! Every error is in the provider's own body:
//!
//! - OpenAI: `{"error":{"message","type","param","code"}}`.
//! - Anthropic: `{"type":"error","error":{"type","message"},"request_id":"req_…"}` and a
//!   `request-id` header. Types by status: 400 `invalid_request_error`, 401
//!   `authentication_error`, 402 `billing_error`, 403 `permission_error`, 404 `not_found_error`,
//!   413 `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 504 `timeout_error`, 529
//!   `overloaded_error`; other 4xx `invalid_request_error`, other 5xx `api_error`. 429 and 529
//!   add `retry-after: 1`.
//! - Gemini: `{"error":{"code":<status>,"message","status"}}`; status names: 400
//!   `INVALID_ARGUMENT`, 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`, 409
//!   `ABORTED`, 429 `RESOURCE_EXHAUSTED`, 499 `CANCELLED`, 500 `INTERNAL`, 501 `NOT_IMPLEMENTED`,
//!   503 `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`; other 4xx `FAILED_PRECONDITION`, other 5xx
//!   `INTERNAL`.
//! - DashScope: `{"code","message","request_id"}`; codes: 400 `InvalidParameter`, 401
//!   `InvalidApiKey`, 403 `AccessDenied`, 404 `ModelNotFound`, 429 `Throttling.RateQuota`, 500
//!   `InternalError`, 503 `ServiceUnavailable`.
//!
//! Bodies that are not JSON, or have wrong types or missing required fields, get the
//! provider's 400.
//!
//! # Deterministic content and usage
//!
//! A completion is `K` content chunks per choice, `K` = `x-mock-chunks` or
//! [`MockConfig::chunks`] (default 8), capped by the request's output limit (OpenAI
//! `max_completion_tokens` or `max_tokens`, Anthropic `max_tokens`, Gemini
//! `generationConfig.maxOutputTokens`), in which case the answer ends for length (OpenAI
//! `"length"`, Anthropic `"max_tokens"`, Gemini `"MAX_TOKENS"`). Chunk `i` is the `i % 8`-th
//! word of `" Firefly mock says hello from the local upstream."` (the first chunk without its
//! leading space), so 8 chunks read `"Firefly mock says hello from the local upstream."`.
//! With a tool call (`x-mock-tool-call: 1`) the same `K` words are the arguments,
//! `{"text":"<words>"}`: OpenAI streams them as `K` fragments with `finish_reason`
//! `"tool_calls"`; the function is the request's first `tools[].function.name`, else
//! `mock_tool`.
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
//! chunk and no `"usage": null` in a stream; no `usageMetadata` from Gemini), for the relay's
//! own counting. Anthropic always reports usage (its schema requires it).
//!
//! ## Anthropic
//!
//! ```text
//! input_tokens  = max(1, floor(C / 4))
//!                 C = characters of `system` (a string, or the "text" of its blocks)
//!                   + of every message's content: a string, the "text" of text blocks, and
//!                     the content of tool_result blocks (a string, or its blocks' "text");
//!                     images, documents, tool_use inputs and thinking count 0
//! output_tokens = K, or 2K with the thinking block
//! cache_creation_input_tokens = cache_read_input_tokens = 0
//! ```
//!
//! The message is `{id:"msg_…", type:"message", role:"assistant", model, content,
//! stop_reason, stop_sequence:null, usage}`; `stop_reason` is `end_turn`, `tool_use` or
//! `max_tokens`. `content` is `[{type:"text", text}]`; with `x-mock-tool-call: 1`
//! `[{type:"tool_use", id:"toolu_…", name, input:{"text":"<words>"}}]`, the name being the
//! request's first `tools[].name`, else `mock_tool`; with `x-mock-thinking: 1` a
//! `{type:"thinking", thinking:"<the same K words>", signature}` block comes first. The stream
//! is, exactly:
//!
//! ```text
//! event: message_start        message with empty content, usage.input_tokens, output_tokens 1
//! [x-mock-thinking:  content_block_start (thinking, index 0), ping,
//!                    content_block_delta thinking_delta × K, content_block_delta signature_delta,
//!                    content_block_stop]
//! event: content_block_start  text "" (or tool_use with input {}), index 0 (1 after thinking)
//! event: ping                 (here only without thinking)
//! event: content_block_delta  text_delta per word (or input_json_delta fragments) × K
//! event: content_block_stop
//! event: message_delta        {stop_reason, stop_sequence:null}, usage {output_tokens}
//! event: message_stop
//! ```
//!
//! `count_tokens` answers `{"input_tokens"}` by the same formula (`max_tokens` not needed).
//!
//! ## Gemini
//!
//! ```text
//! promptTokenCount     = max(1, floor(C / 4))
//!                        C = characters of contents[].parts[].text + systemInstruction.parts[].text
//! candidatesTokenCount = K × candidateCount        (candidateCount 1–8, default 1)
//! totalTokenCount      = promptTokenCount + candidatesTokenCount
//! ```
//!
//! The response is `{candidates:[{content:{parts:[{text}],role:"model"}, finishReason, index}],
//! usageMetadata:{promptTokenCount, candidatesTokenCount, totalTokenCount,
//! promptTokensDetails:[{modality:"TEXT",tokenCount}]}, modelVersion:<model>, responseId}`;
//! `finishReason` is `STOP` (tool calls too) or `MAX_TOKENS`. With `x-mock-tool-call: 1` the
//! part is `{functionCall:{name, args:{"text":"<words>"}}}`, the name being the first
//! `tools[].functionDeclarations[].name`, else `mock_tool`. A stream has `K` events (one if
//! `K` = 0 or for a tool call, which Gemini sends whole), event `i` (from 0) carrying word `i`
//! for every candidate and `usageMetadata` with `candidatesTokenCount = (i + 1) × candidates`
//! (cumulative, as Gemini reports it); only the last has `finishReason`. camelCase and
//! snake_case field names are both accepted, as Google's JSON parser does.
//!
//! ## Images
//!
//! `n` images (1–10, default 1; `dall-e-3` only 1). `gpt-image*` models: always `b64_json` (a
//! 1×1 PNG), plus `background:"opaque"`, `output_format:"png"`, `quality`, `size` and
//!
//! ```text
//! usage = {input_tokens: P, input_tokens_details: {image_tokens: 0, text_tokens: P},
//!          output_tokens: 272 × n, total_tokens: P + 272 × n}      P = max(1, floor(C / 4)) of prompt
//! ```
//!
//! Every other model (default `dall-e-2`) answers as DALL·E, without `usage`: `{url}` pointing
//! at `/_mock/files/img-<n>.png` on the host the request was sent to (its `Host` header), or
//! `{b64_json}` with `response_format: "b64_json"`; `dall-e-3` adds `revised_prompt` (the
//! prompt).
//!
//! ## Audio
//!
//! Speech is 40 ms per input character (`C` = characters of `input`, 1–4096) of 16-bit mono PCM
//! at 24 kHz, i.e. 1920 bytes per character:
//!
//! | `response_format` | content type | bytes |
//! |---|---|---|
//! | `wav` | `audio/wav` | 44-byte RIFF header + 1920 × C (a valid WAV of 0.04 × C s) |
//! | `pcm` | `audio/pcm` | 1920 × C (the WAV's samples) |
//! | `mp3` (default), `opus`, `aac`, `flac` | `audio/mpeg`, `audio/opus`, `audio/aac`, `audio/flac` | 240 × C, starting with the format's magic (`ID3`, `OggS`, `FF F1`, `fLaC`) |
//!
//! A transcription reads the multipart fields `file` (required), `model` (required off Azure)
//! and `response_format`. `S` = the duration of `file` when it is WAV (`data` bytes over the
//! byte rate; exact, e.g. `2.0`), else `1.0`. The text is the `K` words. `json` (default):
//! `{"text", "usage":{"type":"duration","seconds":S}}`; `verbose_json`: `{task:"transcribe",
//! language:"english", duration:S, text, segments:[one segment 0–S], usage}`; `text`: the text
//! and a newline, as `text/plain`; `srt` and `vtt`: one cue from 0 to `S`.
//!
//! ## DashScope
//!
//! Image synthesis makes `parameters.n` images (1–4, default 4) of `input.prompt`. Each
//! `GET /api/v1/tasks/{id}` is one poll: with `N` = `x-mock-task-polls` on the submission
//! (default 2), poll 1 is `PENDING`, polls 2…N are `RUNNING`, and poll N + 1 and later are
//! `SUCCEEDED`, with `output.results[{orig_prompt, actual_prompt, url}]` (both prompts are the
//! prompt; `url` → `/_mock/files/img-<n>.png`), `task_metrics {TOTAL, SUCCEEDED, FAILED}` and
//! `usage:{image_count:n}`. With `x-mock-task-fail` the end is `FAILED` with `output.code`
//! (`DataInspectionFailed` for `1`, else the knob's value) and `output.message`, no usage. An
//! id the mock never issued is `UNKNOWN`.
//!
//! Qwen-TTS reads `input.text` (`C` characters) and answers with a URL to
//! `/_mock/files/speech-<C>-<n>.wav` (the WAV above) and, for `qwen3-tts*` models,
//! `usage:{characters:C}`, else
//!
//! ```text
//! usage = {input_tokens: P, output_tokens: 2C, total_tokens: P + 2C,
//!          input_tokens_details: {text_tokens: P},
//!          output_tokens_details: {audio_tokens: 2C, text_tokens: 0}}   P = max(1, floor(C / 4))
//! ```
//!
//! (50 audio tokens per second of audio, 40 ms per character.)
//!
//! # Per-request knobs
//!
//! Headers, or the same names as string values in a chat or Anthropic request's `metadata`
//! object (which survives a relay that does not forward unknown headers); a header wins:
//!
//! | knob | effect |
//! |---|---|
//! | `x-mock-status: 429` | answer that status (400–599) with the provider's error body for it (above); OpenAI and Anthropic add `retry-after: 1` to 429 (Anthropic to 529 too) |
//! | `x-mock-error-code: insufficient_quota` | OpenAI: the `code` of the error body (`insufficient_quota` also sets its type and message); Anthropic: the error `type`; Gemini: the `status` name (`API_KEY_INVALID` gives that body); DashScope: the `code` (`Arrearage`, `Throttling.AllocationQuota`, `DataInspectionFailed`, … bring their documented messages) |
//! | `x-mock-latency-ms: N` | wait N ms before the response head (any API endpoint, errors too; not `/_mock/*`) |
//! | `x-mock-chunk-delay-ms: N` | wait N ms before each content chunk of a stream |
//! | `x-mock-chunks: K` | content chunks per choice (also the words of a transcription) |
//! | `x-mock-disconnect-after: K` | stream: drop the connection after K content chunks (OpenAI: counted over all choices; Anthropic: text, tool-input and thinking deltas; Gemini: events), without what would follow (finish, usage, `[DONE]`, `message_stop`); Gemini's finish rides on its last event, so K ≥ the event count sends every event, then drops the connection |
//! | `x-mock-stream-error-after: K` | Anthropic and Gemini streams: after K content chunks, send the provider's mid-stream error and end the body cleanly: Anthropic `event: error` with `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`; Gemini a `data:` event `{"error":{"code":503,"message":…,"status":"UNAVAILABLE"}}` (`x-mock-disconnect-after` wins if both are set) |
//! | `x-mock-no-usage: 1` | omit usage (OpenAI, Gemini) |
//! | `x-mock-tool-call: 1` | answer with a tool call (OpenAI, Anthropic, Gemini) |
//! | `x-mock-thinking: 1` | Anthropic: a thinking block first |
//! | `x-mock-task-polls: N` | DashScope image synthesis: polls before the task ends (header only) |
//! | `x-mock-task-fail: 1` or `<Code>` | DashScope image synthesis: the task ends `FAILED` (header only) |
//!
//! Every knob can also ride in the API key, for requests that reach the mock through a
//! relay which rewrites bodies and drops unknown headers: a key `x-mock:tool-call=1;chunks=3`
//! (in whichever header the provider takes its key) sets those knobs; headers win.
//!
//! Keys listed in [`MockConfig::fail_keys`] (or set with [`MockUpstream::set_fail_key`]) are
//! answered with their status, in the provider's error body, so a relay that sends its own
//! channel key can be made to see one channel fail.
//!
//! # Speed
//!
//! The mock sets `TCP_NODELAY` on accepted sockets, logs nothing, serializes straight into the
//! response buffers, keeps the last request by moving its headers and sharing its body, and
//! takes the fail-key lock only while fail keys exist. The OpenAI chat and embeddings paths do
//! no work for the other providers. Generated files are rebuilt from their names, so nothing
//! is stored per image or audio; DashScope tasks are kept (at most 100 000).

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
