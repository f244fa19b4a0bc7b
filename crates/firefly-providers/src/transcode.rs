//! Converting between the wire format a client speaks and the one its upstream speaks.
//!
//! OpenAI's chat-completions format is the hub. A client's request is turned into an
//! OpenAI chat request (a [`Value`]) and from there into the upstream's; the upstream's
//! answer is turned into an OpenAI `chat.completion` (or a stream of
//! `chat.completion.chunk` objects) and from there into the client's format. With two
//! client formats (OpenAI, Anthropic) and three upstream formats (OpenAI, Anthropic,
//! Gemini), every pair is one function per side, and a pair that matches
//! (OpenAI → OpenAI, Anthropic → Anthropic) is never transcoded: its bytes pass through.
//!
//! | step | OpenAI | Anthropic ([`crate::anthropic`]) | Gemini ([`crate::gemini`]) |
//! |---|---|---|---|
//! | client request → hub | the body as it is | `request_to_openai` | – |
//! | hub → upstream request | [`crate::openai`] | `request_from_openai` | `request_from_openai` |
//! | upstream response → hub | the body as it is | `response_to_openai` | `response_to_openai` |
//! | hub → client response | the body as it is | `response_from_openai` | – |
//! | upstream stream → hub chunks | [`OpenAiChunkDecoder`] | `StreamDecoder` ([`ChunkDecoder`]) | `StreamDecoder` ([`ChunkDecoder`]) |
//! | hub chunks → client stream | [`OpenAiChunkEncoder`] | `StreamEncoder` ([`ChunkEncoder`]) | – |
//!
//! Hub chunks follow OpenAI's streaming format exactly: `choices[].delta` with `role`,
//! `content`, `tool_calls[]` (`index`, then `id`, `type` and `function.name` on a call's
//! first fragment, `function.arguments` fragments after), `reasoning_content` for thinking
//! text, `finish_reason` (`stop`, `length`, `tool_calls`, `content_filter`), and a last
//! chunk with `"choices": []` and `usage` (`prompt_tokens`, `completion_tokens`,
//! `total_tokens`, `prompt_tokens_details.cached_tokens`).
//!
//! Decoders never panic on any input: whatever the upstream sends is either converted or
//! reported as a [`TranscodeError::Upstream`], and the relay then ends the client's
//! stream with its format's error event ([`ChunkEncoder::fail`]) and bills
//! [`ChunkDecoder::usage`], what was delivered.

use bytes::Bytes;
use serde_json::Value;

use crate::openai::Usage;
use crate::sse::{encode_event, SseEvent};

/// Why a body could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The client's request is invalid or cannot be expressed in the upstream's format:
    /// a 400 to the client. `param` names the offending field, when there is one.
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String> },
    /// The upstream sent something that is not its documented format.
    #[error("the upstream sent an invalid answer: {0}")]
    Upstream(String),
}

impl TranscodeError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> TranscodeError {
        TranscodeError::InvalidRequest { message: message.into(), param: param.map(str::to_owned) }
    }

    pub fn upstream(message: impl Into<String>) -> TranscodeError {
        TranscodeError::Upstream(message.into())
    }
}

/// An upstream's stream events, converted to hub chunks (OpenAI `chat.completion.chunk`
/// objects) as they arrive.
pub trait ChunkDecoder: Send {
    /// Converts one upstream event, appending zero or more hub chunks to `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Value>) -> Result<(), TranscodeError>;

    /// Whether the upstream's stream reached its documented end (Anthropic's
    /// `message_stop`, Gemini's last candidate with a `finishReason`, OpenAI's `[DONE]`).
    /// A stream that closes before is truncated.
    fn is_complete(&self) -> bool;

    /// The usage the upstream reported so far: what the relay bills, also when the stream
    /// broke. `None` when it reported none (the relay counts tokens instead).
    fn usage(&self) -> Option<Usage>;
}

/// Hub chunks, converted to the client's stream events.
pub trait ChunkEncoder: Send {
    /// Converts one hub chunk, appending zero or more encoded SSE events to `out`.
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>);

    /// The upstream's stream ended as it should: the closing events (OpenAI's
    /// `data: [DONE]`; Anthropic's `message_delta` and `message_stop`).
    fn finish(&mut self, out: &mut Vec<Bytes>);

    /// The upstream's stream broke: close what is open and append the client format's
    /// in-band error event carrying `message`.
    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>);
}

/// An OpenAI-compatible upstream's stream as hub chunks (for a client of another format).
#[derive(Debug, Default)]
pub struct OpenAiChunkDecoder {
    done: bool,
    usage: Option<Usage>,
}

impl OpenAiChunkDecoder {
    pub fn new() -> OpenAiChunkDecoder {
        OpenAiChunkDecoder::default()
    }
}

impl ChunkDecoder for OpenAiChunkDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        if event.is_done() {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_slice(&event.data)
            .map_err(|e| TranscodeError::upstream(format!("a stream chunk is not JSON: {e}")))?;
        if !chunk.is_object() {
            return Err(TranscodeError::upstream("a stream chunk is not a JSON object"));
        }
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("the upstream reported an error");
            return Err(TranscodeError::upstream(message.to_owned()));
        }
        if let Some(usage) = Usage::from_chunk(&event.data) {
            self.usage = Some(usage);
        }
        out.push(chunk);
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Hub chunks as an OpenAI stream (for an OpenAI client of another upstream format). The
/// usage chunk is sent only when the client asked for it with
/// `stream_options.include_usage`.
#[derive(Debug)]
pub struct OpenAiChunkEncoder {
    include_usage: bool,
    done: bool,
}

impl OpenAiChunkEncoder {
    pub fn new(include_usage: bool) -> OpenAiChunkEncoder {
        OpenAiChunkEncoder { include_usage, done: false }
    }
}

impl ChunkEncoder for OpenAiChunkEncoder {
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        let usage_only = chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
        if usage_only && !self.include_usage {
            return;
        }
        if !self.include_usage && chunk.get("usage").is_some_and(|u| !u.is_null()) {
            let mut chunk = chunk.clone();
            if let Some(object) = chunk.as_object_mut() {
                object.remove("usage");
            }
            out.push(encode_json(&chunk));
            return;
        }
        out.push(encode_json(chunk));
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if !std::mem::replace(&mut self.done, true) {
            out.push(encode_event(b"[DONE]"));
        }
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        let error = serde_json::json!({
            "error": {"message": message, "type": "upstream_error", "param": null, "code": "relay.upstream_failed"}
        });
        out.push(encode_json(&error));
    }
}

/// `data: <json>\n\n`.
pub fn encode_json(value: &Value) -> Bytes {
    encode_event(&serde_json::to_vec(value).expect("a Value always serializes"))
}

/// `event: <name>\ndata: <json>\n\n`, as Anthropic's streams frame every event.
pub fn encode_named_json(name: &str, value: &Value) -> Bytes {
    let data = serde_json::to_vec(value).expect("a Value always serializes");
    let mut frame = Vec::with_capacity(name.len() + data.len() + 16);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    frame.extend_from_slice(&data);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The usage of a hub response or chunk (`usage` with OpenAI's names), if it has one.
pub fn hub_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage")?;
    let number = |key: &str| usage.get(key).and_then(Value::as_u64);
    let prompt_tokens = number("prompt_tokens")?;
    let completion_tokens = number("completion_tokens").unwrap_or(0);
    Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: number("total_tokens").unwrap_or(prompt_tokens + completion_tokens),
        cached_tokens: usage
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        parser.push(text.as_bytes());
        let mut out = Vec::new();
        while let Some(event) = parser.next_event().unwrap() {
            out.push(event);
        }
        out
    }

    #[test]
    fn openai_decoder_reads_chunks_usage_and_the_end() {
        let mut decoder = OpenAiChunkDecoder::new();
        let mut chunks = Vec::new();
        let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n\
                      data: [DONE]\n\n";
        for event in events(stream) {
            decoder.on_event(&event, &mut chunks).unwrap();
        }
        assert_eq!(chunks.len(), 2);
        assert!(decoder.is_complete());
        assert_eq!(decoder.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((3, 1)));
        assert_eq!(hub_usage(&chunks[1]), decoder.usage());
    }

    #[test]
    fn openai_decoder_reports_garbage_and_in_band_errors() {
        let mut decoder = OpenAiChunkDecoder::new();
        let mut chunks = Vec::new();
        for bad in ["data: {not json\n\n", "data: [1,2]\n\n", "data: {\"error\":{\"message\":\"boom\"}}\n\n"] {
            let event = &events(bad)[0];
            assert!(matches!(decoder.on_event(event, &mut chunks), Err(TranscodeError::Upstream(_))), "{bad}");
        }
        assert!(chunks.is_empty());
        assert!(!decoder.is_complete());
    }

    #[test]
    fn openai_encoder_hides_usage_unless_asked_and_ends_once() {
        let text = serde_json::json!({"choices":[{"index":0,"delta":{"content":"a"}}],"usage":null});
        let usage = serde_json::json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}});
        let mut out = Vec::new();
        let mut hidden = OpenAiChunkEncoder::new(false);
        hidden.on_chunk(&text, &mut out);
        hidden.on_chunk(&usage, &mut out);
        hidden.finish(&mut out);
        hidden.finish(&mut out);
        hidden.fail("late", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Bytes::from_static(b"data: [DONE]\n\n"));
        let mut out = Vec::new();
        let mut shown = OpenAiChunkEncoder::new(true);
        shown.on_chunk(&usage, &mut out);
        shown.fail("boom", &mut out);
        assert_eq!(out.len(), 2);
        assert!(std::str::from_utf8(&out[1]).unwrap().contains("\"message\":\"boom\""));
    }

    #[test]
    fn named_events_are_framed_as_anthropic_frames_them() {
        let frame = encode_named_json("ping", &serde_json::json!({"type": "ping"}));
        assert_eq!(frame, Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n"));
        let parsed = &events(std::str::from_utf8(&frame).unwrap())[0];
        assert_eq!(parsed.event_name(), Some("ping"));
    }
}
