//! Qwen text-to-speech over HTTP (qwen-tts, qwen3-tts-flash): an OpenAI speech request as
//! a multimodal-generation call, and the audio out of its answer.

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::media::SpeechRequest;
use crate::transcode::TranscodeError;

/// The synthesis call for an OpenAI speech request: `input` as `input.text`, the voice name
/// (or custom voice id) as `input.voice`, unchanged (DashScope's voices have their own
/// names: `Cherry`, `Ethan`, `Serena`, …; OpenAI's `alloy` is refused upstream), and
/// `instructions` as `input.instructions` (read by the instruct models). `speed` and
/// `response_format` have no counterpart and are dropped.
pub fn speech_request_from_openai(req: &SpeechRequest, upstream_model: &str) -> Vec<u8> {
    let mut input = Map::new();
    input.insert("text".to_owned(), Value::from(req.input()));
    input.insert("voice".to_owned(), Value::from(req.voice()));
    if let Some(instructions) = req.instructions() {
        input.insert("instructions".to_owned(), Value::from(instructions));
    }
    serde_json::to_vec(&json!({"model": upstream_model, "input": input})).unwrap_or_default()
}

/// Where the synthesized audio is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeechAudio {
    /// To be fetched by the relay before it expires (`expires_at`).
    Url(String),
    /// Sent inline (base64 in the answer), decoded.
    Data(Vec<u8>),
}

/// A synthesis answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeechResult {
    pub audio: SpeechAudio,
    /// When a URL stops working, in seconds since the Unix epoch.
    pub expires_at: Option<i64>,
    /// The characters DashScope billed (`usage.characters`, qwen3-tts models).
    pub characters: Option<u64>,
    /// The tokens DashScope billed (`usage.input_tokens`/`output_tokens`, qwen-tts).
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reason: Option<String>,
}

impl SpeechResult {
    /// The audio's media type: sniffed from inline bytes, else from the URL's extension;
    /// `audio/wav`, DashScope's format, when neither tells.
    pub fn content_type(&self) -> &'static str {
        match &self.audio {
            SpeechAudio::Data(bytes) => sniff(bytes),
            SpeechAudio::Url(url) => {
                let path = url.split(['?', '#']).next().unwrap_or_default();
                let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
                match extension.as_str() {
                    "mp3" => "audio/mpeg",
                    "ogg" | "opus" => "audio/ogg",
                    "flac" => "audio/flac",
                    "aac" => "audio/aac",
                    "pcm" => "audio/pcm",
                    _ => "audio/wav",
                }
            }
        }
    }
}

fn sniff(bytes: &[u8]) -> &'static str {
    match bytes {
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', ..] => "audio/wav",
        [b'I', b'D', b'3', ..] | [0xFF, 0xE0..=0xFF, ..] => "audio/mpeg",
        [b'O', b'g', b'g', b'S', ..] => "audio/ogg",
        [b'f', b'L', b'a', b'C', ..] => "audio/flac",
        _ => "audio/wav",
    }
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    audio: Option<Audio>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Audio {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    expires_at: Option<i64>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    characters: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// The audio of a synthesis answer,
/// `{"output":{"audio":{"url","data","expires_at"},"finish_reason"},"usage":{…},"request_id"}`.
/// Inline data wins over a URL (nothing to fetch).
pub fn parse_speech(body: &[u8]) -> Result<SpeechResult, TranscodeError> {
    let (output, usage) = super::read_answer::<Output, Usage>(body, "speech")?;
    let audio = output.audio.ok_or_else(|| TranscodeError::upstream("a DashScope speech answer has no audio"))?;
    let data = audio.data.filter(|d| !d.is_empty());
    let url = audio.url.filter(|u| !u.is_empty());
    let content = match (data, url) {
        (Some(data), _) => SpeechAudio::Data(decode_base64(&data)?),
        (None, Some(url)) => SpeechAudio::Url(url),
        (None, None) => {
            return Err(TranscodeError::upstream("a DashScope speech answer has neither audio data nor URL"))
        }
    };
    Ok(SpeechResult {
        audio: content,
        expires_at: audio.expires_at,
        characters: usage.as_ref().and_then(|u| u.characters),
        input_tokens: usage.as_ref().and_then(|u| u.input_tokens),
        output_tokens: usage.as_ref().and_then(|u| u.output_tokens),
        finish_reason: output.finish_reason,
    })
}

/// Standard base64, padded or not, line breaks ignored.
fn decode_base64(text: &str) -> Result<Vec<u8>, TranscodeError> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT
        .decode(compact)
        .map_err(|e| TranscodeError::upstream(format!("DashScope's inline audio is not valid base64: {e}")))
}
