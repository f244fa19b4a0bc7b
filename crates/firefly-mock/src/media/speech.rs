//! `POST /v1/audio/speech` (and Azure's deployment route): audio bytes whose length follows
//! the input's length (see the crate documentation for the formula).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue};
use serde::Deserialize;

use crate::chat::parse_error;
use crate::error::ApiError;
use crate::prompt::chars;
use crate::state::{Counters, Incoming, Shared};

/// OpenAI's limit on `input`.
const MAX_INPUT_CHARS: u64 = 4_096;

/// Bytes per input character of the formats the mock does not really encode (an eighth of
/// the PCM, about a 48 kbit/s stream).
pub(crate) const COMPRESSED_BYTES_PER_CHAR: usize = super::PCM_BYTES_PER_CHAR / 8;

#[derive(Deserialize)]
struct SpeechRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
    /// A voice name, or `{"id": ...}` for a custom voice.
    voice: Option<serde_json::Value>,
    #[serde(borrow)]
    response_format: Option<Cow<'a, str>>,
}

/// `POST` on this endpoint's OpenAI route, or on its Azure route (`{deployment}` in the path).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Incoming) -> Response {
    Counters::count(&shared.counters.speech);
    answer(&shared, request).await
}

async fn answer(shared: &Shared, request: Incoming) -> Response {
    let Incoming { flavor, deployment, method, uri, headers, body } = request;
    let knobs = match shared.admit(flavor, method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let request: SpeechRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, parse_error(e)).await,
    };
    match audio(&request, deployment.as_deref()) {
        Ok((content_type, bytes)) => {
            shared.delay(&knobs).await;
            let mut response = Bytes::from(bytes).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(error) => shared.reject(&knobs, error).await,
    }
}

fn audio(request: &SpeechRequest, deployment: Option<&str>) -> Result<(&'static str, Vec<u8>), ApiError> {
    if request.model.as_deref().is_none_or(str::is_empty) && deployment.is_none() {
        return Err(ApiError::missing_parameter("model"));
    }
    let Some(input) = request.input.as_deref() else {
        return Err(ApiError::missing_parameter("input"));
    };
    if request.voice.as_ref().is_none_or(serde_json::Value::is_null) {
        return Err(ApiError::missing_parameter("voice"));
    }
    let count = chars(input);
    if count == 0 || count > MAX_INPUT_CHARS {
        return Err(ApiError::invalid_value(
            "input",
            format!("Invalid 'input': string length {count} is not between 1 and {MAX_INPUT_CHARS}."),
        ));
    }
    let count = count as usize;
    let format = request.response_format.as_deref().unwrap_or("mp3");
    let (content_type, magic): (&'static str, &[u8]) = match format {
        "wav" => return Ok(("audio/wav", super::wav(count))),
        "pcm" => return Ok(("audio/pcm", super::pcm(count))),
        "mp3" => ("audio/mpeg", b"ID3\x04\x00\x00"),
        "opus" => ("audio/opus", b"OggS\x00\x02"),
        "aac" => ("audio/aac", b"\xFF\xF1\x50\x80"),
        "flac" => ("audio/flac", b"fLaC\x00\x00"),
        other => {
            return Err(ApiError::invalid_value(
                "response_format",
                format!(
                    "Invalid value: '{other}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'."
                ),
            ))
        }
    };
    Ok((content_type, compressed(magic, count * COMPRESSED_BYTES_PER_CHAR)))
}

/// `len` bytes: the format's magic, then a fixed pattern.
fn compressed(magic: &[u8], len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = magic.iter().copied().take(len).collect();
    bytes.extend((bytes.len()..len).map(|i| (i * 31 % 251) as u8));
    bytes
}
