//! DashScope's native API: asynchronous text-to-image (`POST .../text2image/image-synthesis`
//! with `X-DashScope-Async: enable`, then `GET /api/v1/tasks/{task_id}` until the task ends),
//! and Qwen-TTS speech synthesis (`POST .../multimodal-generation/generation`), whose audio is
//! a URL to `/_mock/files/`.

mod error;
mod tasks;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::chat::json_response;
use crate::media::files::{image_name, speech_name};
use crate::prompt::chars;
use crate::state::{bearer, header_value, unix_now, Counters, Provider, Refusal, Shared};

pub(crate) use error::DashScopeError;
pub(crate) use tasks::Tasks;

/// wanx models make 1 to 4 images, 4 unless told otherwise.
const MAX_IMAGES: u32 = 4;
const DEFAULT_IMAGES: u32 = 4;

/// How long an audio URL stays valid, as DashScope reports it.
const AUDIO_TTL_SECS: u64 = 24 * 3600;

/// Audio tokens per input character: DashScope counts 50 tokens per second of audio, and the
/// mock speaks 40 ms per character.
const AUDIO_TOKENS_PER_CHAR: u64 = 2;

/// Keys are Bearer tokens.
pub(crate) struct DashScope;

impl Provider for DashScope {
    type Error = DashScopeError;

    fn key<'r>(headers: &'r HeaderMap, _uri: &'r Uri) -> Option<&'r str> {
        bearer(headers)
    }

    fn refused(refusal: Refusal) -> DashScopeError {
        DashScopeError::refused(refusal)
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// A UUID-shaped id, unique in this process.
fn uuid_like(n: u64) -> String {
    format!("{:08x}-f1fe-4000-8000-{:012x}", n >> 48, n & 0xFFFF_FFFF_FFFF)
}

pub(crate) fn request_id() -> String {
    uuid_like(REQUEST_SEQ.fetch_add(1, Ordering::Relaxed) + 1)
}

#[derive(Deserialize)]
struct ImageSynthesisRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<ImageInput<'a>>,
    #[serde(default)]
    parameters: Option<ImageParameters>,
}

#[derive(Deserialize)]
struct ImageInput<'a> {
    #[serde(borrow)]
    prompt: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ImageParameters {
    n: Option<u32>,
}

#[derive(Serialize)]
struct Submitted<'a> {
    output: SubmittedOutput<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct SubmittedOutput<'a> {
    task_status: &'static str,
    task_id: &'a str,
}

pub(crate) async fn image_synthesis(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::count(&shared.counters.image_synthesis);
    let asynchronous = header_value(&headers, "x-dashscope-async").is_some_and(|v| v.eq_ignore_ascii_case("enable"));
    let origin = shared.origin(&headers);
    let knobs = match shared.admit_as::<DashScope>(method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    if !asynchronous {
        return shared.reject(&knobs, DashScopeError::synchronous_call()).await;
    }
    let request: ImageSynthesisRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, DashScopeError::body_error(e)).await,
    };
    if request.model.as_deref().is_none_or(str::is_empty) {
        return shared.reject(&knobs, DashScopeError::invalid("Model not specified.")).await;
    }
    let Some(prompt) = request.input.as_ref().and_then(|i| i.prompt.as_deref()).filter(|p| !p.is_empty()) else {
        return shared.reject(&knobs, DashScopeError::invalid("Field required: input.prompt")).await;
    };
    let n = request.parameters.as_ref().and_then(|p| p.n).unwrap_or(DEFAULT_IMAGES);
    if !(1..=MAX_IMAGES).contains(&n) {
        let error = DashScopeError::invalid(format!("The parameter n must be between 1 and {MAX_IMAGES}."));
        return shared.reject(&knobs, error).await;
    }
    let urls = (0..n).map(|_| format!("{origin}/_mock/files/{}", image_name(shared.next_seq()))).collect();
    let task_id = uuid_like(shared.next_seq());
    shared.tasks.submit(task_id.clone(), prompt.to_owned(), urls, knobs.task_polls(), knobs.task_fail());
    shared.delay(&knobs).await;
    let request_id = request_id();
    let submitted =
        Submitted { output: SubmittedOutput { task_status: "PENDING", task_id: &task_id }, request_id: &request_id };
    json_response(serde_json::to_vec(&submitted).expect("a submission serializes"))
}

pub(crate) async fn task(
    State(shared): State<Arc<Shared>>,
    Path(task_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    Counters::count(&shared.counters.tasks);
    let knobs = match shared.admit_as::<DashScope>(method, uri, headers, &Bytes::new()).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let json = shared.tasks.poll(&task_id, &request_id());
    shared.delay(&knobs).await;
    json_response(json)
}

#[derive(Deserialize)]
struct GenerationRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<GenerationInput<'a>>,
}

#[derive(Deserialize)]
struct GenerationInput<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Generation<'a> {
    output: GenerationOutput<'a>,
    usage: SpeechUsage,
    request_id: &'a str,
}

#[derive(Serialize)]
struct GenerationOutput<'a> {
    audio: Audio<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Audio<'a> {
    url: &'a str,
    id: &'a str,
    expires_at: u64,
    data: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SpeechUsage {
    /// Qwen3-TTS bills characters.
    Characters { characters: u64 },
    /// Qwen-TTS bills tokens.
    Tokens {
        input_tokens: u64,
        output_tokens: u64,
        total_tokens: u64,
        input_tokens_details: TextTokens,
        output_tokens_details: AudioTokens,
    },
}

#[derive(Serialize)]
struct TextTokens {
    text_tokens: u64,
}

#[derive(Serialize)]
struct AudioTokens {
    audio_tokens: u64,
    text_tokens: u64,
}

pub(crate) async fn multimodal_generation(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::count(&shared.counters.multimodal_generation);
    let origin = shared.origin(&headers);
    let knobs = match shared.admit_as::<DashScope>(method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let request: GenerationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, DashScopeError::body_error(e)).await,
    };
    let Some(model) = request.model.as_deref().filter(|m| !m.is_empty()) else {
        return shared.reject(&knobs, DashScopeError::invalid("Model not specified.")).await;
    };
    let Some(text) = request.input.as_ref().and_then(|i| i.text.as_deref()).filter(|t| !t.is_empty()) else {
        return shared.reject(&knobs, DashScopeError::invalid("Field required: input.text")).await;
    };
    let count = chars(text);
    let usage = if model.starts_with("qwen3-tts") {
        SpeechUsage::Characters { characters: count }
    } else {
        let input_tokens = (count / 4).max(1);
        let audio_tokens = count * AUDIO_TOKENS_PER_CHAR;
        SpeechUsage::Tokens {
            input_tokens,
            output_tokens: audio_tokens,
            total_tokens: input_tokens + audio_tokens,
            input_tokens_details: TextTokens { text_tokens: input_tokens },
            output_tokens_details: AudioTokens { audio_tokens, text_tokens: 0 },
        }
    };
    let n = shared.next_seq();
    let url = format!("{origin}/_mock/files/{}", speech_name(count as usize, n));
    let id = format!("audio_{}", uuid_like(n));
    let request_id = request_id();
    let generation = Generation {
        output: GenerationOutput {
            audio: Audio { url: &url, id: &id, expires_at: unix_now() + AUDIO_TTL_SECS, data: "" },
            finish_reason: "stop",
        },
        usage,
        request_id: &request_id,
    };
    shared.delay(&knobs).await;
    json_response(serde_json::to_vec(&generation).expect("a generation serializes"))
}
