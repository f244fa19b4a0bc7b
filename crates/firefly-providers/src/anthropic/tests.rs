//! Tests of the Anthropic conversions, with payloads in the shapes of Anthropic's and
//! OpenAI's documentation.

mod adapter;
mod requests;
mod responses;
mod streams;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use super::*;
use crate::adapter::{Adapter, BuildError, Operation, RequestContext, UpstreamFailure, WireFormat};
use crate::openai::Usage;
use crate::sse::{SseEvent, SseParser};
use crate::transcode::{ChunkDecoder, ChunkEncoder, TranscodeError};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn events_of(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        parser.push(piece);
        while let Some(event) = parser.next_event().unwrap() {
            events.push(event);
        }
    }
    parser.finish().unwrap();
    events
}

/// What a decoder made of a stream: the chunks (with `created` zeroed), and the first error.
struct Decoded {
    chunks: Vec<Value>,
    error: Option<TranscodeError>,
    decoder: StreamDecoder,
}

fn decode_events(events: &[SseEvent]) -> Decoded {
    let mut decoder = StreamDecoder::new();
    let mut chunks = Vec::new();
    let mut error = None;
    for event in events {
        if let Err(e) = decoder.on_event(event, &mut chunks) {
            error = Some(e);
            break;
        }
    }
    for chunk in &mut chunks {
        chunk["created"] = 0.into();
    }
    Decoded { chunks, error, decoder }
}

fn decode(stream: &str) -> Decoded {
    decode_events(&events_of(&[stream.as_bytes()]))
}

fn encode(chunks: &[Value], end: Option<&str>) -> String {
    let mut encoder = StreamEncoder::new("gpt-4o", "chatcmpl-abc123");
    let mut out: Vec<Bytes> = Vec::new();
    for chunk in chunks {
        encoder.on_chunk(chunk, &mut out);
    }
    match end {
        None => encoder.finish(&mut out),
        Some(message) => encoder.fail(message, &mut out),
    }
    out.iter().map(|b| std::str::from_utf8(b).unwrap().to_owned()).collect()
}

/// Snapshots go to `src/anthropic/snapshots`, whichever test file takes them.
fn in_snapshots(check: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.bind(check);
}

fn param_of(error: TranscodeError) -> Option<String> {
    match error {
        TranscodeError::InvalidRequest { param, .. } => param,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

fn hub_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

fn to_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}
