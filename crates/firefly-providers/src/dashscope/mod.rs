//! DashScope's native API (Alibaba Cloud Model Studio, formerly Bailian): Wanx/Wan image
//! synthesis, which is asynchronous, and Qwen speech synthesis.
//!
//! DashScope's chat models are reached through its OpenAI-compatible mode instead: an
//! `openai` channel on `https://dashscope.aliyuncs.com/compatible-mode/v1` (or
//! `https://dashscope-intl.aliyuncs.com/compatible-mode/v1`), whose bodies pass through. A
//! `dashscope` channel ([`DashScopeAdapter`]) serves only what that mode lacks:
//!
//! | operation | request | upstream | answer |
//! |---|---|---|---|
//! | image generations | [`image_request_from_openai`] | `POST {base}/api/v1/services/aigc/text2image/image-synthesis` with `X-DashScope-Async: enable` | a task id ([`parse_task_submit`]) |
//! | (polling) | – | `GET {base}/api/v1/tasks/{task_id}` ([`task_request`]) | [`parse_task`] until [`TaskState::Succeeded`], then [`images_response`] |
//! | speech | [`speech_request_from_openai`] | `POST {base}/api/v1/services/aigc/multimodal-generation/generation` | [`parse_speech`]: the audio, inline or at a URL |
//! | errors | – | `{"code","message","request_id"}` | [`DashScopeAdapter::classify`], [`error_to_openai`] |
//!
//! The base is `https://dashscope.aliyuncs.com` (Beijing) or
//! `https://dashscope-intl.aliyuncs.com` (Singapore); a base ending in `/api/v1` or
//! `/compatible-mode/v1` is accepted too. The key goes in `Authorization: Bearer`.
//!
//! # An image request through these pieces
//!
//! Submit the task, then poll it: Wan tasks take from a few seconds to about a minute, and
//! DashScope keeps a task's result for 24 hours (its image URLs too). Poll every few
//! seconds, with a deadline; a task that ends [`TaskState::Failed`] is classified with
//! [`classify_task_failure`] and shown to the client with [`error_to_openai`] on the poll's
//! body. Bill [`TaskState::Succeeded`]'s `image_count`, not `n`.
//!
//! # What does not carry over
//!
//! - Images: DashScope answers with URLs only, so `response_format: "b64_json"` needs the
//!   relay to fetch them ([`images_response`] writes `url` entries); `quality`, `style` and
//!   `user` have no counterpart and are dropped; `n` above the model's limit (4 for Wan) is
//!   refused by the upstream; the prompt DashScope rewrote (`actual_prompt`) is not returned
//!   as `revised_prompt`.
//! - Speech: the voice name passes through as it is, so the client must name a DashScope
//!   voice (`Cherry`, `Ethan`, …), not an OpenAI one (`alloy`); the audio comes back in
//!   DashScope's format (WAV) whatever `response_format` asked for, and `speed` is dropped.
//!   Only non-streamed synthesis is supported.

mod image;
mod speech;

#[cfg(test)]
mod tests;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use url::Url;

use crate::adapter::{
    join, retry_after, Adapter, BuildError, ErrorInfo, Operation, RequestContext, UpstreamFailure, UpstreamRequest,
    WireFormat,
};

pub use image::{image_request_from_openai, images_response, parse_task, parse_task_submit, TaskState};
pub use speech::{parse_speech, speech_request_from_openai, SpeechAudio, SpeechResult};

const PROVIDER: &str = "dashscope";

/// `X-DashScope-Async: enable` makes image synthesis answer with a task to poll.
const ASYNC: HeaderName = HeaderName::from_static("x-dashscope-async");

const IMAGE_SYNTHESIS: &[&str] = &["services", "aigc", "text2image", "image-synthesis"];
const SPEECH_SYNTHESIS: &[&str] = &["services", "aigc", "multimodal-generation", "generation"];

/// DashScope's native API: image synthesis ([`Operation::ImageGenerations`]) and speech
/// synthesis ([`Operation::AudioSpeech`]). Chat, embeddings and models go through an
/// `openai` channel on DashScope's compatible mode (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct DashScopeAdapter;

impl Adapter for DashScopeAdapter {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::DashScope
    }

    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
        let path = match op {
            Operation::ImageGenerations => IMAGE_SYNTHESIS,
            Operation::AudioSpeech => SPEECH_SYNTHESIS,
            _ => return Err(BuildError::Unsupported { provider: PROVIDER, operation: op }),
        };
        let url = api_url(ctx.base_url, path)?;
        let mut headers = auth_headers(ctx.key)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if op == Operation::ImageGenerations {
            headers.insert(ASYNC, HeaderValue::from_static("enable"));
        }
        Ok(UpstreamRequest { method: Method::POST, url, headers })
    }

    fn classify(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        classify(status, headers, body)
    }
}

/// The request that polls an image task: `GET {base}/api/v1/tasks/{task_id}`. A task id
/// holds only ASCII letters, digits, `-` and `_` (DashScope's are UUIDs); any other is
/// refused rather than sent.
pub fn task_request(base_url: &str, key: &str, task_id: &str) -> Result<UpstreamRequest, BuildError> {
    if !is_task_id(task_id) {
        return Err(BuildError::InvalidBaseUrl {
            url: format!("{base_url} (task {task_id:?})"),
            reason: "a task id may hold only ASCII letters, digits, '-' and '_', at most 128 of them".to_owned(),
        });
    }
    let url = api_url(base_url, &["tasks", task_id])?;
    Ok(UpstreamRequest { method: Method::GET, url, headers: auth_headers(key)? })
}

pub(crate) fn is_task_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `{base}/api/v1/{path}`, for a base given with or without `/api/v1` (or the compatible
/// mode's `/compatible-mode/v1`).
fn api_url(base: &str, path: &[&str]) -> Result<Url, BuildError> {
    let mut url = join(base, None, &[])?;
    let mut kept: Vec<String> =
        url.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let ends_with = |kept: &[String], tail: [&str; 2]| kept.len() >= 2 && kept[kept.len() - 2..] == tail;
    if ends_with(&kept, ["api", "v1"]) || ends_with(&kept, ["compatible-mode", "v1"]) {
        kept.truncate(kept.len() - 2);
    }
    let mut segments = url
        .path_segments_mut()
        .map_err(|()| BuildError::InvalidBaseUrl { url: base.to_owned(), reason: "cannot be a base".to_owned() })?;
    segments.clear().extend(&kept).extend(["api", "v1"]).extend(path);
    drop(segments);
    Ok(url)
}

fn auth_headers(key: &str) -> Result<HeaderMap, BuildError> {
    let mut headers = HeaderMap::with_capacity(3);
    if !key.is_empty() {
        let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| BuildError::InvalidKey)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// What a DashScope error answer means for the relay:
///
/// | answer | failure |
/// |---|---|
/// | `Arrearage` (sent with 400), `AllocationQuota.FreeTierOnly`, 402, other balance codes | [`OutOfBalance`](UpstreamFailure::OutOfBalance): disable the channel |
/// | `InvalidApiKey`, 401, 403 (`AccessDenied…`: the key's account may not use this API) | [`AuthFailed`](UpstreamFailure::AuthFailed): disable the channel |
/// | `Throttling…` (429), `InternalError…`, 408, 429, 5xx | [`Retryable`](UpstreamFailure::Retryable), after `Retry-After` when given |
/// | `InvalidParameter`, `DataInspectionFailed`, other 4xx | [`Fatal`](UpstreamFailure::Fatal): the answer goes to the client |
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let info = ErrorInfo::parse(body);
    let code = info.as_ref().and_then(|i| i.code.as_deref()).unwrap_or_default();
    if status == 402 || is_balance_code(code) || info.as_ref().is_some_and(ErrorInfo::is_out_of_balance) {
        return UpstreamFailure::OutOfBalance;
    }
    if matches!(status, 401 | 403) || info.as_ref().is_some_and(ErrorInfo::is_auth_failure) {
        return UpstreamFailure::AuthFailed;
    }
    if is_passing_code(code) {
        return UpstreamFailure::Retryable { retry_after: retry_after(headers) };
    }
    match status {
        408 | 429 | 500..=599 => UpstreamFailure::Retryable { retry_after: retry_after(headers) },
        400..=499 => UpstreamFailure::Fatal,
        _ => UpstreamFailure::Retryable { retry_after: None },
    }
}

/// What a task that ended [`TaskState::Failed`] means, by its code: DashScope reports a
/// failed task in a successful (200) poll, so there is no status to go by.
pub fn classify_task_failure(code: &str) -> UpstreamFailure {
    if is_balance_code(code) || code.eq_ignore_ascii_case("Arrearage") {
        UpstreamFailure::OutOfBalance
    } else if code.eq_ignore_ascii_case("InvalidApiKey") {
        UpstreamFailure::AuthFailed
    } else if is_passing_code(code) {
        UpstreamFailure::Retryable { retry_after: None }
    } else {
        UpstreamFailure::Fatal
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn is_balance_code(code: &str) -> bool {
    code.eq_ignore_ascii_case("Arrearage") || code.eq_ignore_ascii_case("AllocationQuota.FreeTierOnly")
}

fn is_passing_code(code: &str) -> bool {
    ["Throttling", "InternalError", "RequestTimeOut", "ServiceUnavailable"]
        .iter()
        .any(|prefix| starts_with_ignore_case(code, prefix))
}

/// A DashScope error answer (or a failed task's poll) in OpenAI's error shape,
/// `{"error":{"message","type","param","code"}}`. Codes with an OpenAI counterpart take it
/// (`InvalidApiKey` → `invalid_api_key`, `Arrearage` → `insufficient_quota`, `Throttling…`
/// → `rate_limit_exceeded`, `DataInspectionFailed` → `content_policy_violation`); others
/// keep DashScope's. The message names DashScope's code and request id, for support.
pub fn error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = |value: Option<&Value>, key: &str| {
        value.and_then(|v| v.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
    };
    let output = parsed.as_ref().and_then(|v| v.get("output"));
    let code = text(parsed.as_ref(), "code").or_else(|| text(output, "code"));
    let message = text(parsed.as_ref(), "message").or_else(|| text(output, "message"));
    let request_id = text(parsed.as_ref(), "request_id");

    let code_ref = code.as_deref().unwrap_or_default();
    let (kind, openai_code) = if code_ref.eq_ignore_ascii_case("InvalidApiKey") || status == 401 {
        ("invalid_request_error", Some("invalid_api_key"))
    } else if is_balance_code(code_ref) || status == 402 {
        ("insufficient_quota", Some("insufficient_quota"))
    } else if starts_with_ignore_case(code_ref, "Throttling") || status == 429 {
        ("requests", Some("rate_limit_exceeded"))
    } else if starts_with_ignore_case(code_ref, "DataInspectionFailed") {
        ("invalid_request_error", Some("content_policy_violation"))
    } else if status >= 500 || starts_with_ignore_case(code_ref, "InternalError") {
        ("server_error", None)
    } else {
        ("invalid_request_error", None)
    };
    let mut text = message.unwrap_or_else(|| format!("The upstream answered HTTP {status}."));
    match (&code, &request_id) {
        (Some(code), Some(id)) => text.push_str(&format!(" (DashScope {code}, request {id})")),
        (Some(code), None) => text.push_str(&format!(" (DashScope {code})")),
        (None, Some(id)) => text.push_str(&format!(" (DashScope request {id})")),
        (None, None) => {}
    }
    let code = openai_code.map(str::to_owned).or(code);
    let error = json!({"error": {"message": text, "type": kind, "param": null, "code": code}});
    serde_json::to_vec(&error).unwrap_or_default()
}

/// DashScope's answer envelope, `{"output", "usage", "code", "message", "request_id"}`: the
/// output and usage of a call of the kind `what` names, or an error naming its code.
fn read_answer<O: serde::de::DeserializeOwned, U: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<(O, Option<U>), crate::transcode::TranscodeError> {
    #[derive(serde::Deserialize)]
    #[serde(bound = "O: serde::de::DeserializeOwned, U: serde::de::DeserializeOwned")]
    struct Answer<O, U> {
        #[serde(default)]
        output: Option<O>,
        #[serde(default)]
        usage: Option<U>,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let answer: Answer<O, U> = serde_json::from_slice(body).map_err(|e| {
        crate::transcode::TranscodeError::upstream(format!("a DashScope {what} answer is not the expected JSON: {e}"))
    })?;
    match answer.output {
        Some(output) => Ok((output, answer.usage)),
        None => Err(crate::transcode::TranscodeError::upstream(format!(
            "a DashScope {what} answer has no output ({}: {})",
            answer.code.as_deref().unwrap_or("no code"),
            answer.message.as_deref().unwrap_or("no message"),
        ))),
    }
}
