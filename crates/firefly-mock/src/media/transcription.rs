//! `POST /v1/audio/transcriptions` (and Azure's deployment route): a `multipart/form-data`
//! upload answered with the deterministic words, and the upload's duration when it is WAV.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue};
use serde::Serialize;

use crate::chat::{json_response, words};
use crate::error::ApiError;
use crate::state::{Counters, Incoming, Shared};

/// The duration reported for an upload that is not WAV.
const UNKNOWN_DURATION: f64 = 1.0;

/// One field of a `multipart/form-data` body.
struct Field<'a> {
    name: &'a str,
    data: &'a [u8],
}

/// The `boundary` of a `multipart/form-data` content type.
fn boundary(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (mime, params) = value.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim().eq_ignore_ascii_case("boundary").then(|| value.trim().trim_matches('"')).filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The fields of a multipart body, as far as it is well-formed (RFC 7578: parts separated by
/// `--boundary` lines, headers, a blank line, then the content).
fn fields<'a>(body: &'a [u8], boundary: &str) -> Vec<Field<'a>> {
    let delimiter = format!("\r\n--{boundary}");
    let mut fields = Vec::new();
    // The first delimiter may start the body without the leading CRLF.
    let Some(start) = find(body, &delimiter.as_bytes()[2..]) else {
        return fields;
    };
    let mut rest = &body[start + delimiter.len() - 2..];
    loop {
        // After a delimiter: `--` ends the body, CRLF starts a part.
        let Some(part) = rest.strip_prefix(b"\r\n") else {
            return fields;
        };
        let Some(head_end) = find(part, b"\r\n\r\n") else {
            return fields;
        };
        let head = std::str::from_utf8(&part[..head_end]).unwrap_or("");
        let content = &part[head_end + 4..];
        let Some(end) = find(content, delimiter.as_bytes()) else {
            return fields;
        };
        if let Some(name) = field_name(head) {
            fields.push(Field { name, data: &content[..end] });
        }
        rest = &content[end + delimiter.len()..];
    }
}

/// The `name` parameter of a part's `Content-Disposition` header.
fn field_name(head: &str) -> Option<&str> {
    let disposition = head
        .split("\r\n")
        .find_map(|line| {
            line.split_once(':').filter(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))
        })?
        .1;
    disposition.split(';').find_map(|param| {
        let (key, value) = param.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"'))
    })
}

#[derive(Serialize)]
struct Usage {
    #[serde(rename = "type")]
    kind: &'static str,
    seconds: f64,
}

#[derive(Serialize)]
struct Transcription<'a> {
    text: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Verbose<'a> {
    task: &'static str,
    language: &'static str,
    duration: f64,
    text: &'a str,
    segments: [Segment<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Segment<'a> {
    id: u32,
    seek: u32,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: [u32; 0],
    temperature: f64,
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
}

/// `POST` on this endpoint's OpenAI route, or on its Azure route (`{deployment}` in the path).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Incoming) -> Response {
    Counters::count(&shared.counters.transcriptions);
    answer(&shared, request).await
}

async fn answer(shared: &Shared, request: Incoming) -> Response {
    let Incoming { flavor, deployment, method, uri, headers, body } = request;
    let boundary = boundary(&headers).map(str::to_owned);
    let knobs = match shared.admit(flavor, method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let Some(boundary) = boundary else {
        let error = ApiError::invalid_body("the body must be multipart/form-data with a boundary".into());
        return shared.reject(&knobs, error).await;
    };
    let fields = fields(&body, &boundary);
    let field = |name: &str| fields.iter().find(|f| f.name == name).map(|f| f.data);
    let text_field = |name: &str| field(name).and_then(|data| std::str::from_utf8(data).ok()).map(str::trim);
    let Some(file) = field("file") else {
        return shared.reject(&knobs, ApiError::missing_parameter("file")).await;
    };
    if text_field("model").is_none_or(str::is_empty) && deployment.is_none() {
        return shared.reject(&knobs, ApiError::missing_parameter("model")).await;
    }
    let seconds = super::wav_duration(file).unwrap_or(UNKNOWN_DURATION);
    let text = words(knobs.chunks(&shared.config));
    let usage = Usage { kind: "duration", seconds };
    let response = match text_field("response_format").unwrap_or("json") {
        "json" => json_response(to_json(&Transcription { text: &text, usage })),
        "verbose_json" => {
            let segment = Segment {
                id: 0,
                seek: 0,
                start: 0.0,
                end: seconds,
                text: &text,
                tokens: [],
                temperature: 0.0,
                avg_logprob: 0.0,
                compression_ratio: 1.0,
                no_speech_prob: 0.0,
            };
            let verbose = Verbose {
                task: "transcribe",
                language: "english",
                duration: seconds,
                text: &text,
                segments: [segment],
                usage,
            };
            json_response(to_json(&verbose))
        }
        "text" => plain(format!("{text}\n"), "text/plain; charset=utf-8"),
        "srt" => {
            plain(format!("1\n00:00:00,000 --> {}\n{text}\n\n", timestamp(seconds, ',')), "text/plain; charset=utf-8")
        }
        "vtt" => plain(
            format!("WEBVTT\n\n00:00:00.000 --> {}\n{text}\n\n", timestamp(seconds, '.')),
            "text/vtt; charset=utf-8",
        ),
        other => {
            let error = ApiError::invalid_value(
                "response_format",
                format!(
                    "Invalid value: '{other}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'."
                ),
            );
            return shared.reject(&knobs, error).await;
        }
    };
    shared.delay(&knobs).await;
    response
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("a transcription serializes")
}

fn plain(text: String, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = (seconds * 1000.0).round() as u64;
    let mut stamp = String::with_capacity(12);
    let _ = write!(
        stamp,
        "{:02}:{:02}:{:02}{separator}{:03}",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    );
    stamp
}
