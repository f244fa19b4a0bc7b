//! `GET /_mock/files/{name}`: the images and audio the mock hands out as URLs, rebuilt from
//! their names: `img-<n>.png` is the 1×1 PNG, `speech-<chars>-<n>.wav` the speech for that
//! many characters. No key is needed; anything else is 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::state::{Counters, Shared};

/// Longest speech a file name may ask for (about 19 MB of WAV; OpenAI caps speech input at 4096 characters).
const MAX_SPEECH_CHARS: usize = 10_000;

pub(crate) fn image_name(n: u64) -> String {
    format!("img-{n}.png")
}

pub(crate) fn speech_name(chars: usize, n: u64) -> String {
    format!("speech-{chars}-{n}.wav")
}

fn file(name: &str) -> Option<(&'static str, Vec<u8>)> {
    if let Some(n) = name.strip_prefix("img-").and_then(|rest| rest.strip_suffix(".png")) {
        n.parse::<u64>().ok()?;
        return Some(("image/png", super::png()));
    }
    let rest = name.strip_prefix("speech-")?.strip_suffix(".wav")?;
    let (chars, n) = rest.split_once('-')?;
    let chars: usize = chars.parse().ok().filter(|&c| c <= MAX_SPEECH_CHARS)?;
    n.parse::<u64>().ok()?;
    Some(("audio/wav", super::wav(chars)))
}

pub(crate) async fn serve(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    Counters::count(&shared.counters.files);
    match file(&name) {
        Some((content_type, bytes)) => {
            let mut response = Bytes::from(bytes).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        None => (StatusCode::NOT_FOUND, "file not found").into_response(),
    }
}
