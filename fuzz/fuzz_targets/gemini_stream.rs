//! Gemini streams (arbitrary bytes, pushed in arbitrary pieces) through the SSE parser and
//! the Gemini decoder: no input panics, and the hub chunks always form a valid OpenAI
//! stream: the envelope on every chunk, `role` on each choice's first chunk only, one
//! `finish_reason` per choice with nothing after it, tool call fragments numbered from 0
//! with JSON arguments, and at most one usage chunk, last, matching `usage()`. The same
//! bytes also go through the non-stream response and request converters.
#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use firefly_providers::gemini::{request_from_openai, response_to_openai, StreamDecoder};
use firefly_providers::sse::SseParser;
use firefly_providers::transcode::{hub_usage, ChunkDecoder};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Default)]
struct Choice {
    chunks: usize,
    finished: bool,
    tool_calls: u64,
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the push size and the expected candidate count.
    let Some((&control, body)) = data.split_first() else { return };
    let step = usize::from(control % 17) + 1;
    let candidates = u32::from(control >> 6);

    let _ = response_to_openai(body, "m");
    if let Ok(hub) = serde_json::from_slice::<Value>(body) {
        if let Ok(request) = request_from_openai(&hub) {
            assert!(serde_json::from_slice::<Value>(&request).is_ok_and(|r| r["contents"].is_array()));
        }
    }

    let mut parser = SseParser::with_max_event_size(4096);
    let mut decoder = StreamDecoder::new("id-1".to_owned(), "m".to_owned()).with_candidate_count(candidates);
    let mut choices: HashMap<u64, Choice> = HashMap::new();
    let mut usage_chunk_seen = false;
    let mut chunks = Vec::new();
    'stream: for piece in body.chunks(step) {
        parser.push_bytes(Bytes::copy_from_slice(piece));
        while let Ok(Some(event)) = parser.next_event() {
            chunks.clear();
            if decoder.on_event(&event, &mut chunks).is_err() {
                assert!(chunks.is_empty(), "an error emits nothing");
                break 'stream;
            }
            for chunk in &chunks {
                assert!(!usage_chunk_seen, "nothing follows the usage chunk");
                assert_eq!(chunk["id"], "id-1");
                assert_eq!(chunk["object"], "chat.completion.chunk");
                assert_eq!(chunk["model"], "m");
                assert!(chunk["created"].is_u64());
                let list = chunk["choices"].as_array().expect("choices is an array");
                if list.is_empty() {
                    usage_chunk_seen = true;
                    assert!(decoder.is_complete(), "usage is sent once the stream is complete");
                    assert_eq!(hub_usage(chunk), decoder.usage());
                    continue;
                }
                assert_eq!(list.len(), 1);
                let choice = &list[0];
                let index = choice["index"].as_u64().expect("a choice index");
                let state = choices.entry(index).or_default();
                assert!(!state.finished, "nothing after a choice's finish_reason");
                let delta = &choice["delta"];
                assert_eq!(delta.get("role").is_some(), state.chunks == 0, "role on the first chunk only");
                state.chunks += 1;
                if let Some(reason) = choice["finish_reason"].as_str() {
                    assert!(["stop", "length", "tool_calls", "content_filter"].contains(&reason));
                    state.finished = true;
                }
                for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    assert_eq!(call["index"].as_u64(), Some(state.tool_calls));
                    state.tool_calls += 1;
                    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()));
                    let arguments = call["function"]["arguments"].as_str().expect("arguments are text");
                    assert!(serde_json::from_str::<Value>(arguments).is_ok_and(|a| a.is_object()));
                }
            }
        }
    }
    if usage_chunk_seen {
        assert!(decoder.usage().is_some());
    }
});
