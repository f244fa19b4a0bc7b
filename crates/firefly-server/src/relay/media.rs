//! Images and speech: `POST /v1/images/generations`, `POST /v1/audio/speech` and
//! `POST /v1/audio/transcriptions` in OpenAI's formats, on OpenAI-compatible channels
//! (bytes passed through) and on DashScope's native API (image synthesis as a task that is
//! submitted and polled; speech synthesis whose audio is fetched from the URL it answers).
//!
//! Billing is by unit, at the model's media price: per image delivered, per character of
//! speech input, per second of audio transcribed (by the millisecond). A transcription's
//! length comes from the upstream's answer (`usage.seconds`, `verbose_json`'s `duration`),
//! else from the upload's WAV header, else from its size at 128 kbit/s; the reservation
//! assumes 16 kbit/s, so it covers every common encoding.

use super::admit::Ask;
use super::formats::{ClientFormat, RequestBody};
use super::forward::{relay, Call};
use super::openai::{read_body, Caller};
use super::table::Upstream;
use super::Relay;
use crate::http::{ApiError, ApiResult};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use firefly_core::money::MediaUnits;
use firefly_core::{Error, ErrorCode};
use firefly_providers::adapter::{Operation, WireFormat};
use firefly_providers::dashscope::{self, SpeechAudio, TaskState};
use firefly_providers::media::{self, ImageRequest, SpeechRequest, TranscriptionRequest};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TAG: &str = "openai";
/// How long a DashScope image task may take before the request fails.
const TASK_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest audio file fetched from a speech answer's URL.
const MAX_AUDIO_BYTES: usize = 64 * 1024 * 1024;

/// What a media call is billed by, and what the relay knows of it before the answer.
#[derive(Clone, Debug)]
pub enum MediaCall {
    Images,
    Speech {
        characters: u64,
        content_type: &'static str,
    },
    /// `fallback_ms`: the length assumed when the answer does not report one.
    Transcription {
        fallback_ms: u64,
    },
}

/// Generate images.
#[utoipa::path(post, path = "/v1/images/generations", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "OpenAI's image generation request", content_type = "application/json"),
    responses((status = 200, description = "`{created, data: [{url | b64_json}]}`"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn images(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    let request = Arc::new(ImageRequest::parse(bytes).map_err(|e| invalid(e.to_string(), e.param(), e.code()))?);
    let ask =
        Ask { model: request.model(), input_bytes: 0, output_tokens: 0, media: Some(MediaUnits::Images(request.n())) };
    let admission = state.relay.admit(&key, ask).await?;
    let (pass, native) = (request.clone(), request.clone());
    let body = RequestBody::media(
        Box::new(move |model| pass.upstream_body(Some(model))),
        Box::new(move |model| Bytes::from(dashscope::image_request_from_openai(&native, model))),
    );
    let call = Call {
        media: Some(MediaCall::Images),
        ..Call::new(Operation::ImageGenerations, ClientFormat::OpenAi, request.model().to_owned(), request_id, body)
    };
    Ok(relay(state.clone(), admission, call).await)
}

/// Text to speech: the audio, in the requested format.
#[utoipa::path(post, path = "/v1/audio/speech", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "OpenAI's speech request", content_type = "application/json"),
    responses((status = 200, description = "The audio bytes"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn speech(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    let request = Arc::new(SpeechRequest::parse(bytes).map_err(|e| invalid(e.to_string(), e.param(), e.code()))?);
    let characters = request.characters();
    let ask = Ask {
        model: request.model(),
        input_bytes: 0,
        output_tokens: 0,
        media: Some(MediaUnits::Characters(characters)),
    };
    let admission = state.relay.admit(&key, ask).await?;
    let (pass, native) = (request.clone(), request.clone());
    let body = RequestBody::media(
        Box::new(move |model| pass.upstream_body(Some(model))),
        Box::new(move |model| Bytes::from(dashscope::speech_request_from_openai(&native, model))),
    );
    let call = Call {
        media: Some(MediaCall::Speech { characters, content_type: request.content_type() }),
        ..Call::new(Operation::AudioSpeech, ClientFormat::OpenAi, request.model().to_owned(), request_id, body)
    };
    Ok(relay(state.clone(), admission, call).await)
}

/// Speech to text: a `multipart/form-data` upload, passed through.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = TAG, security(("api_key" = [])),
    request_body(content = String, description = "OpenAI's transcription upload (`file`, `model`, ...)", content_type = "multipart/form-data"),
    responses((status = 200, description = "The transcription, in the requested format"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn transcriptions(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers.get(http::header::CONTENT_TYPE).cloned();
    let type_text = content_type.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = read_body(&state, body).await?;
    let request =
        TranscriptionRequest::parse(&type_text, bytes).map_err(|e| invalid(e.to_string(), e.param(), e.code()))?;
    let file = request.file_len() as u64;
    let measured_ms = request.file_wav_duration_seconds().map(|s| (s * 1000.0).ceil() as u64);
    // 16 kbit/s (2 bytes a millisecond) for the reservation; 128 kbit/s (16 bytes a
    // millisecond) when nothing better is known at settlement.
    let reserve_ms = measured_ms.unwrap_or(file / 2).max(1);
    let fallback_ms = measured_ms.unwrap_or(file / 16).max(1);
    let ask = Ask {
        model: request.model(),
        input_bytes: 0,
        output_tokens: 0,
        media: Some(MediaUnits::Milliseconds(reserve_ms)),
    };
    let admission = state.relay.admit(&key, ask).await?;
    let model = request.model().to_owned();
    let body =
        RequestBody::pass_through_only(ClientFormat::OpenAi, Box::new(move |model| request.upstream_body(Some(model))));
    let call = Call {
        media: Some(MediaCall::Transcription { fallback_ms }),
        content_type,
        ..Call::new(Operation::AudioTranscriptions, ClientFormat::OpenAi, model, request_id, body)
    };
    Ok(relay(state.clone(), admission, call).await)
}

/// A media answer for the client: body, content type, and the units it is billed.
pub struct MediaAnswer {
    pub body: Bytes,
    pub content_type: HeaderValue,
    pub units: MediaUnits,
}

/// Turns a channel's 2xx answer to a media call into the client's answer. Errors are
/// failures of this channel (retried on the next while nothing reached the client).
pub async fn answer(
    relay: &Relay,
    upstream: &Upstream,
    media: &MediaCall,
    wire: WireFormat,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<MediaAnswer, String> {
    let json = || HeaderValue::from_static("application/json");
    match (media, wire) {
        (MediaCall::Images, WireFormat::DashScope) => {
            let task = dashscope::parse_task_submit(&body).map_err(|e| e.to_string())?;
            let (urls, count) = poll_task(relay, upstream, &task).await?;
            let created = firefly_core::time::now_ms() / 1000;
            Ok(MediaAnswer {
                body: Bytes::from(dashscope::images_response(&urls, created)),
                content_type: json(),
                units: MediaUnits::Images(count),
            })
        }
        (MediaCall::Images, _) => {
            let count = media::images_billed(&body);
            Ok(MediaAnswer { body, content_type: content_type.unwrap_or_else(json), units: MediaUnits::Images(count) })
        }
        (MediaCall::Speech { characters, .. }, WireFormat::DashScope) => {
            let result = dashscope::parse_speech(&body).map_err(|e| e.to_string())?;
            // DashScope answers WAV whatever format was asked for; the content type says so.
            let sniffed = HeaderValue::from_static(result.content_type());
            let (audio, fetched_type) = match result.audio {
                SpeechAudio::Data(data) => (Bytes::from(data), None),
                SpeechAudio::Url(url) => fetch_audio(relay, &url).await?,
            };
            let content_type = fetched_type.unwrap_or(sniffed);
            let billed = result.characters.unwrap_or(*characters);
            Ok(MediaAnswer { body: audio, content_type, units: MediaUnits::Characters(billed) })
        }
        (MediaCall::Speech { characters, content_type: wanted }, _) => Ok(MediaAnswer {
            body,
            content_type: content_type.unwrap_or_else(|| HeaderValue::from_static(wanted)),
            units: MediaUnits::Characters(*characters),
        }),
        (MediaCall::Transcription { fallback_ms }, _) => {
            let type_text = content_type.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
            let ms = media::duration_seconds(&body, type_text).map_or(*fallback_ms, |s| (s * 1000.0).ceil() as u64);
            Ok(MediaAnswer {
                body,
                content_type: content_type.unwrap_or_else(json),
                units: MediaUnits::Milliseconds(ms.max(1)),
            })
        }
    }
}

/// Polls a DashScope task until it succeeds, fails, or takes too long; half a second
/// between polls at first, then two.
async fn poll_task(relay: &Relay, upstream: &Upstream, task: &str) -> Result<(Vec<String>, u64), String> {
    let deadline = Instant::now() + TASK_TIMEOUT;
    let mut wait = Duration::from_millis(100);
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
        if Instant::now() > deadline {
            return Err(format!("the image task {task} did not finish within {} s", TASK_TIMEOUT.as_secs()));
        }
        let head = dashscope::task_request(&upstream.base_url, upstream.key(), task).map_err(|e| e.to_string())?;
        let request = relay.client.request(head.method, head.url).headers(head.headers);
        let response = tokio::time::timeout(relay.settings.first_byte_timeout, request.send())
            .await
            .map_err(|_| "the task poll timed out".to_owned())?
            .map_err(|e| format!("the task poll failed: {e}"))?;
        let status = response.status();
        let body = tokio::time::timeout(relay.settings.chunk_timeout, response.bytes())
            .await
            .map_err(|_| "the task poll stalled".to_owned())?
            .map_err(|e| format!("the task poll failed: {e}"))?;
        if !status.is_success() {
            // A poll that fails for a moment (429, 5xx) is tried again; others end the task.
            if status.as_u16() == 429 || status.is_server_error() {
                continue;
            }
            return Err(format!("the task poll answered HTTP {}", status.as_u16()));
        }
        match dashscope::parse_task(&body).map_err(|e| e.to_string())? {
            TaskState::Pending | TaskState::Running => {}
            TaskState::Succeeded { urls, image_count } => return Ok((urls, image_count)),
            TaskState::Failed { code, message } => return Err(format!("the image task failed: {code}: {message}")),
        }
    }
}

/// The audio a speech answer points at. The URL comes from the channel's upstream, not
/// from a user; only `http` and `https` are fetched, with the relay's timeouts and a size
/// limit.
async fn fetch_audio(relay: &Relay, url: &str) -> Result<(Bytes, Option<HeaderValue>), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("the audio URL is invalid: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the audio URL is not http(s)".into());
    }
    let response = tokio::time::timeout(relay.settings.first_byte_timeout, relay.client.get(parsed).send())
        .await
        .map_err(|_| "fetching the audio timed out".to_owned())?
        .map_err(|e| format!("fetching the audio failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("fetching the audio answered HTTP {}", response.status().as_u16()));
    }
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    if response.content_length().is_some_and(|n| n > MAX_AUDIO_BYTES as u64) {
        return Err("the audio is too large".into());
    }
    let audio = tokio::time::timeout(relay.settings.chunk_timeout * 4, response.bytes())
        .await
        .map_err(|_| "fetching the audio stalled".to_owned())?
        .map_err(|e| format!("fetching the audio failed: {e}"))?;
    if audio.len() > MAX_AUDIO_BYTES {
        return Err("the audio is too large".into());
    }
    Ok((audio, content_type))
}

fn invalid(message: String, param: Option<&str>, reason: &str) -> ApiError {
    let mut error = Error::with_message(ErrorCode::InvalidRequest, message);
    error.details = Some(serde_json::json!({ "param": param, "reason": reason }));
    ApiError(error)
}
