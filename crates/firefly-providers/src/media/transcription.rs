//! `POST /v1/audio/transcriptions`: a `multipart/form-data` upload.

use bytes::Bytes;
use serde::Deserialize;

use super::multipart::Multipart;

/// Why a transcription upload cannot be sent; shown to the client in OpenAI's error shape
/// (`invalid_request_error`, HTTP 400) with [`param`](Self::param) and [`code`](Self::code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptionError {
    #[error("Invalid Content-Type: expected multipart/form-data.")]
    UnsupportedContentType,
    #[error("Invalid Content-Type: multipart/form-data needs a boundary parameter.")]
    MissingBoundary,
    #[error("Invalid Content-Type: the multipart boundary must be 1 to 70 printable ASCII characters.")]
    InvalidBoundary,
    #[error("Invalid multipart body: {0}.")]
    Malformed(&'static str),
    #[error("Invalid multipart body: it ends before its closing boundary.")]
    Truncated,
    #[error("Multipart body too large: {0}.")]
    TooLarge(&'static str),
    #[error("Missing required parameter: '{field}'.")]
    Missing { field: &'static str },
    #[error("Invalid value for '{field}': {reason}.")]
    InvalidValue { field: &'static str, reason: &'static str },
    /// A field the relay reads appears twice: the relay and the upstream could each believe a
    /// different one.
    #[error("Duplicate parameter: '{field}' appears more than once.")]
    Duplicate { field: &'static str },
}

impl TranscriptionError {
    /// The offending form field, OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            TranscriptionError::Missing { field }
            | TranscriptionError::InvalidValue { field, .. }
            | TranscriptionError::Duplicate { field } => Some(field),
            _ => None,
        }
    }

    /// A stable code, OpenAI's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            TranscriptionError::UnsupportedContentType => "unsupported_content_type",
            TranscriptionError::MissingBoundary => "missing_boundary",
            TranscriptionError::InvalidBoundary => "invalid_boundary",
            TranscriptionError::Malformed(_) => "invalid_multipart",
            TranscriptionError::Truncated => "truncated_multipart",
            TranscriptionError::TooLarge(_) => "multipart_too_large",
            TranscriptionError::Missing { .. } => "missing_required_parameter",
            TranscriptionError::InvalidValue { .. } => "invalid_value",
            TranscriptionError::Duplicate { .. } => "duplicate_parameter",
        }
    }
}

/// `response_format`: what the transcription comes back as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptionFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
    /// gpt-4o-transcribe-diarize's speaker segments.
    DiarizedJson,
}

impl TranscriptionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptionFormat::Json => "json",
            TranscriptionFormat::Text => "text",
            TranscriptionFormat::Srt => "srt",
            TranscriptionFormat::VerboseJson => "verbose_json",
            TranscriptionFormat::Vtt => "vtt",
            TranscriptionFormat::DiarizedJson => "diarized_json",
        }
    }

    /// Whether the answer is JSON (and may report its duration).
    pub fn is_json(self) -> bool {
        matches!(self, TranscriptionFormat::Json | TranscriptionFormat::VerboseJson | TranscriptionFormat::DiarizedJson)
    }
}

/// The form fields read, each at most once.
const READ: [&str; 5] = ["model", "file", "response_format", "temperature", "stream"];

/// A validated transcription upload, holding the client's body.
#[derive(Clone, Debug)]
pub struct TranscriptionRequest {
    multipart: Multipart,
    model: Box<str>,
    model_part: usize,
    file_part: usize,
    format: TranscriptionFormat,
    temperature: Option<f64>,
    stream: bool,
}

impl TranscriptionRequest {
    /// Reads the upload: a `multipart/form-data` body (see [`Multipart`]) with a non-empty
    /// `model` text field and a non-empty `file` part that has a file name; when present,
    /// `response_format` among `json` (the default), `text`, `srt`, `verbose_json`, `vtt`,
    /// `diarized_json`; `temperature` from 0 to 1; `stream` `true` or `false`. Other fields
    /// (`language`, `prompt`, `timestamp_granularities[]`, …) are passed on unread.
    pub fn parse(content_type: &str, body: Bytes) -> Result<TranscriptionRequest, TranscriptionError> {
        let multipart = Multipart::parse(content_type, body)?;
        let mut found: [Option<usize>; READ.len()] = [None; READ.len()];
        for (index, part) in multipart.parts().iter().enumerate() {
            if let Some(field) = READ.iter().position(|f| *f == part.name()) {
                if found[field].replace(index).is_some() {
                    return Err(TranscriptionError::Duplicate { field: READ[field] });
                }
            }
        }
        let [model, file, response_format, temperature, stream] = found;
        let text = |index: Option<usize>, field: &'static str| -> Result<Option<&str>, TranscriptionError> {
            let Some(part) = index.and_then(|i| multipart.parts().get(i)) else {
                return Ok(None);
            };
            std::str::from_utf8(&multipart.body()[part.range()])
                .map(Some)
                .map_err(|_| TranscriptionError::InvalidValue { field, reason: "must be UTF-8 text" })
        };

        let model_part = model.ok_or(TranscriptionError::Missing { field: "model" })?;
        let model_text = text(model, "model")?.unwrap_or_default();
        if model_text.is_empty() {
            return Err(TranscriptionError::InvalidValue { field: "model", reason: "must not be empty" });
        }
        let file_part = file.ok_or(TranscriptionError::Missing { field: "file" })?;
        match multipart.parts().get(file_part) {
            Some(part) if part.filename().is_none() => {
                return Err(TranscriptionError::InvalidValue {
                    field: "file",
                    reason: "must be a file upload (a part with a filename)",
                })
            }
            Some(part) if part.is_empty() => {
                return Err(TranscriptionError::InvalidValue { field: "file", reason: "must not be empty" })
            }
            _ => {}
        }
        let format = match text(response_format, "response_format")? {
            None => TranscriptionFormat::Json,
            Some("json") => TranscriptionFormat::Json,
            Some("text") => TranscriptionFormat::Text,
            Some("srt") => TranscriptionFormat::Srt,
            Some("verbose_json") => TranscriptionFormat::VerboseJson,
            Some("vtt") => TranscriptionFormat::Vtt,
            Some("diarized_json") => TranscriptionFormat::DiarizedJson,
            Some(_) => {
                return Err(TranscriptionError::InvalidValue {
                    field: "response_format",
                    reason: "expected one of 'json', 'text', 'srt', 'verbose_json', 'vtt', 'diarized_json'",
                })
            }
        };
        let temperature = match text(temperature, "temperature")? {
            None => None,
            Some(t) => match t.trim().parse::<f64>() {
                Ok(t) if (0.0..=1.0).contains(&t) => Some(t),
                _ => {
                    return Err(TranscriptionError::InvalidValue {
                        field: "temperature",
                        reason: "must be a number between 0 and 1",
                    })
                }
            },
        };
        let stream = match text(stream, "stream")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(TranscriptionError::InvalidValue { field: "stream", reason: "expected 'true' or 'false'" })
            }
        };
        let model = model_text.into();
        Ok(TranscriptionRequest { multipart, model, model_part, file_part, format, temperature, stream })
    }

    /// The model the client asked for (before any mapping).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// `json` when the client named none.
    pub fn response_format(&self) -> TranscriptionFormat {
        self.format
    }

    pub fn temperature(&self) -> Option<f64> {
        self.temperature
    }

    /// Whether the client asked for a server-sent event stream (gpt-4o-transcribe models).
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The uploaded audio, a slice of the body (no copy).
    pub fn file(&self) -> Bytes {
        self.multipart.parts().get(self.file_part).map(|part| self.multipart.data(part)).unwrap_or_default()
    }

    /// The uploaded audio's size in bytes.
    pub fn file_len(&self) -> usize {
        self.multipart.parts().get(self.file_part).map_or(0, |part| part.len())
    }

    /// The uploaded file's name, as the client sent it (upstreams read its extension).
    pub fn file_name(&self) -> &str {
        self.multipart.parts().get(self.file_part).and_then(|part| part.filename()).unwrap_or_default()
    }

    /// The file part's `Content-Type`, as the client sent it.
    pub fn file_content_type(&self) -> Option<&str> {
        self.multipart.parts().get(self.file_part).and_then(|part| part.content_type())
    }

    /// The upload's length, measured locally: only WAV files are (see
    /// [`wav_duration_seconds`]).
    pub fn file_wav_duration_seconds(&self) -> Option<f64> {
        let part = self.multipart.parts().get(self.file_part)?;
        wav_duration_seconds(&self.multipart.body()[part.range()])
    }

    /// The parsed body.
    pub fn multipart(&self) -> &Multipart {
        &self.multipart
    }

    /// The client's body, as received.
    pub fn body(&self) -> &Bytes {
        self.multipart.body()
    }

    /// The client's bytes with the `model` field's value set to `upstream_model` when given
    /// and different; the client's buffer itself otherwise. The content type (and its
    /// boundary) stays the client's. The model name comes from the channel's configuration
    /// and is written as it is.
    pub fn upstream_body(&self, upstream_model: Option<&str>) -> Bytes {
        let part = self.multipart.parts().get(self.model_part);
        match (upstream_model.filter(|m| *m != &*self.model), part) {
            (Some(model), Some(part)) => self.multipart.replace(part, model.as_bytes()),
            _ => self.multipart.body().clone(),
        }
    }
}

/// The audio's length an upstream reported in its answer: `usage.seconds` when
/// `usage.type` is `duration` (whisper-1's `json`), else the top-level `duration` of
/// `verbose_json`. `None` for `text`, `srt` and `vtt` answers, token-billed answers
/// (gpt-4o-transcribe reports `usage.type: "tokens"`), and anything else; the relay then
/// falls back to [`wav_duration_seconds`] on the upload, or to its own estimate.
pub fn duration_seconds(response_body: &[u8], content_type: &str) -> Option<f64> {
    #[derive(Deserialize)]
    struct Usage {
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        seconds: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        duration: Option<f64>,
    }
    let looks_json = content_type.to_ascii_lowercase().contains("json")
        || response_body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !looks_json {
        return None;
    }
    let answer: Answer = serde_json::from_slice(response_body).ok()?;
    let valid = |s: f64| s.is_finite() && s >= 0.0;
    let from_usage = answer.usage.filter(|u| u.kind.as_deref() == Some("duration")).and_then(|u| u.seconds);
    from_usage.filter(|s| valid(*s)).or(answer.duration.filter(|s| valid(*s)))
}

/// The length in seconds of a RIFF/WAVE file: its `data` chunk's size over the `fmt `
/// chunk's byte rate. `None` for anything that is not a WAV file with both chunks (in that
/// order) and a non-zero byte rate.
///
/// Other containers (MP3, M4A, Ogg, WebM, FLAC) are not measured locally: their duration
/// needs a demuxer, which this crate does not carry. A `data` size of 0 or `0xFFFFFFFF`
/// (written by streaming encoders) means "up to the end"; a size beyond the bytes present
/// is cut to them, so a truncated upload is measured as what it holds.
pub fn wav_duration_seconds(bytes: &[u8]) -> Option<f64> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut at = 12usize;
    let mut byte_rate = None;
    while at.checked_add(8).is_some_and(|end| end <= bytes.len()) {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4)?;
        let start = at + 8;
        if id == b"fmt " {
            if size < 16 {
                return None;
            }
            let sample_rate = u64::from(u32_at(start + 4)?);
            let declared = u64::from(u32_at(start + 8)?);
            let block_align = u64::from(u16_at(start + 12)?);
            byte_rate = Some(if declared > 0 { declared } else { sample_rate * block_align });
        } else if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)?;
            let available = (bytes.len() - start) as u64;
            let length = match size {
                0 | u32::MAX => available,
                size => u64::from(size).min(available),
            };
            return Some(length as f64 / rate as f64);
        }
        // Chunks are padded to an even size.
        let padded = u64::from(size) + u64::from(size & 1);
        at = usize::try_from(start as u64 + padded).ok()?;
    }
    None
}
