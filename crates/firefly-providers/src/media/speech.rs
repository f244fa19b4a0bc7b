//! `POST /v1/audio/speech`.

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;

use super::fields::{number, pick, required_string, splice_string, string};
use crate::json::span_in;
use crate::openai::RequestError;

/// The longest `input` OpenAI accepts, in characters.
pub const MAX_SPEECH_INPUT_CHARS: usize = 4096;

/// `response_format`: the audio container and codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeechFormat {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    /// Raw 24 kHz, 16-bit signed little-endian mono samples, no header.
    Pcm,
}

impl SpeechFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeechFormat::Mp3 => "mp3",
            SpeechFormat::Opus => "opus",
            SpeechFormat::Aac => "aac",
            SpeechFormat::Flac => "flac",
            SpeechFormat::Wav => "wav",
            SpeechFormat::Pcm => "pcm",
        }
    }

    /// The media type of the audio. Opus comes in an Ogg container.
    pub fn content_type(self) -> &'static str {
        match self {
            SpeechFormat::Mp3 => "audio/mpeg",
            SpeechFormat::Opus => "audio/ogg",
            SpeechFormat::Aac => "audio/aac",
            SpeechFormat::Flac => "audio/flac",
            SpeechFormat::Wav => "audio/wav",
            SpeechFormat::Pcm => "audio/pcm",
        }
    }

    fn parse(s: &str) -> Option<SpeechFormat> {
        Some(match s {
            "mp3" => SpeechFormat::Mp3,
            "opus" => SpeechFormat::Opus,
            "aac" => SpeechFormat::Aac,
            "flac" => SpeechFormat::Flac,
            "wav" => SpeechFormat::Wav,
            "pcm" => SpeechFormat::Pcm,
            _ => return None,
        })
    }
}

/// A validated speech request, holding the client's body.
#[derive(Clone, Debug)]
pub struct SpeechRequest {
    body: Bytes,
    model: Box<str>,
    model_span: Range<usize>,
    input: Box<str>,
    characters: u64,
    voice: Box<str>,
    format: SpeechFormat,
    speed: Option<f64>,
    instructions: Option<Box<str>>,
    sse: bool,
}

impl SpeechRequest {
    /// Validates the body: a JSON object with a non-empty string `model`; a non-empty
    /// `input` of at most 4096 characters; a `voice` that is a non-empty string or an object
    /// with a string `id` (a custom voice); `response_format` among `mp3` (the default),
    /// `opus`, `aac`, `flac`, `wav`, `pcm`; `speed` from 0.25 to 4.0; `instructions` a
    /// string; `stream_format` `audio` or `sse`.
    pub fn parse(body: Bytes) -> Result<SpeechRequest, RequestError> {
        let [model_raw, input, voice, response_format, speed, instructions, stream_format] =
            pick(&body, ["model", "input", "voice", "response_format", "speed", "instructions", "stream_format"])?;
        let model = required_string(model_raw, "model")?;
        let input = required_string(input, "input")?;
        let characters = input.chars().count();
        if characters > MAX_SPEECH_INPUT_CHARS {
            return Err(RequestError::InvalidValue { field: "input", reason: "must be at most 4096 characters" });
        }
        let voice = parse_voice(voice)?;
        let format = match string(response_format, "response_format")? {
            None => SpeechFormat::Mp3,
            Some(format) => SpeechFormat::parse(&format).ok_or(RequestError::InvalidValue {
                field: "response_format",
                reason: "expected one of 'mp3', 'opus', 'aac', 'flac', 'wav', 'pcm'",
            })?,
        };
        let speed = number(speed, "speed")?;
        if speed.is_some_and(|s| !(0.25..=4.0).contains(&s)) {
            return Err(RequestError::InvalidValue { field: "speed", reason: "must be between 0.25 and 4.0" });
        }
        let instructions = string(instructions, "instructions")?.map(String::into_boxed_str);
        let sse = match string(stream_format, "stream_format")?.as_deref() {
            None | Some("audio") => false,
            Some("sse") => true,
            Some(_) => {
                return Err(RequestError::InvalidValue { field: "stream_format", reason: "expected 'audio' or 'sse'" })
            }
        };
        let model_span = model_raw.map_or(0..0, |raw| span_in(&body, raw.get()));
        Ok(SpeechRequest {
            body,
            model: model.into_boxed_str(),
            model_span,
            input: input.into_boxed_str(),
            characters: characters as u64,
            voice,
            format,
            speed,
            instructions,
            sse,
        })
    }

    /// The model the client asked for (before any mapping).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The text to speak.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is billed: the Unicode scalar values of `input` (so `"日本"` is 2, `"é"` written
    /// as `e` + a combining accent is 2), known before the upstream is called.
    pub fn characters(&self) -> u64 {
        self.characters
    }

    /// A built-in voice's name, or a custom voice's `id`.
    pub fn voice(&self) -> &str {
        &self.voice
    }

    /// `mp3` when the client named none.
    pub fn response_format(&self) -> SpeechFormat {
        self.format
    }

    /// The media type to answer with: the format's, or `text/event-stream` when the client
    /// asked for `stream_format: "sse"`. When passing an upstream's answer through, its own
    /// `content-type` is the better source.
    pub fn content_type(&self) -> &'static str {
        if self.sse {
            "text/event-stream"
        } else {
            self.format.content_type()
        }
    }

    /// `None`: 1.0.
    pub fn speed(&self) -> Option<f64> {
        self.speed
    }

    pub fn instructions(&self) -> Option<&str> {
        self.instructions.as_deref()
    }

    /// Whether the client asked for `stream_format: "sse"`.
    pub fn stream_sse(&self) -> bool {
        self.sse
    }

    /// The client's body, as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's bytes with `model` set to `upstream_model` when given and different; the
    /// client's buffer itself otherwise.
    pub fn upstream_body(&self, upstream_model: Option<&str>) -> Bytes {
        match upstream_model.filter(|m| *m != &*self.model) {
            Some(model) => splice_string(&self.body, self.model_span.clone(), model),
            None => self.body.clone(),
        }
    }
}

fn parse_voice(raw: Option<&serde_json::value::RawValue>) -> Result<Box<str>, RequestError> {
    const EXPECTED: &str = "a string or an object with a string 'id'";
    let raw = raw.ok_or(RequestError::Missing { field: "voice" })?;
    let voice = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => return Err(RequestError::Missing { field: "voice" }),
        Ok(Value::String(name)) => name,
        Ok(Value::Object(mut object)) => match object.remove("id") {
            Some(Value::String(id)) => id,
            _ => return Err(RequestError::InvalidType { field: "voice", expected: EXPECTED }),
        },
        _ => return Err(RequestError::InvalidType { field: "voice", expected: EXPECTED }),
    };
    if voice.is_empty() {
        return Err(RequestError::InvalidValue { field: "voice", reason: "must not be empty" });
    }
    Ok(voice.into_boxed_str())
}
