//! Arbitrary bytes as an Anthropic stream, through the hub decoder and back out through the
//! Anthropic encoder (and, as bodies, through the request and response converters): no
//! input panics, every hub chunk has the fields the hub promises, usage is consistent, and
//! the encoder's output is a well-formed Anthropic stream that ends exactly once.
#![no_main]

use bytes::Bytes;
use firefly_providers::anthropic::{
    request_from_openai, request_to_openai, response_from_openai, response_to_openai, StreamDecoder, StreamEncoder,
};
use firefly_providers::sse::SseParser;
use firefly_providers::transcode::{ChunkDecoder, ChunkEncoder};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split points, so one input explores many chunkings.
    let Some((&step, body)) = data.split_first() else { return };
    let step = usize::from(step % 31) + 1;

    let mut parser = SseParser::with_max_event_size(1 << 16);
    let mut decoder = StreamDecoder::new();
    let mut encoder = StreamEncoder::new("model", "msg_fuzz");
    let (mut chunks, mut out) = (Vec::new(), Vec::new());
    let mut failed = false;
    'read: for piece in body.chunks(step) {
        parser.push_bytes(Bytes::copy_from_slice(piece));
        loop {
            match parser.next_event() {
                Ok(Some(event)) => {
                    chunks.clear();
                    if decoder.on_event(&event, &mut chunks).is_err() {
                        failed = true;
                        break 'read;
                    }
                    for chunk in &chunks {
                        check_chunk(chunk);
                        encoder.on_chunk(chunk, &mut out);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'read;
                }
            }
        }
    }
    if let Some(usage) = decoder.usage() {
        assert!(usage.cached_tokens <= usage.prompt_tokens);
        assert!(usage.total_tokens >= usage.prompt_tokens && usage.total_tokens >= usage.completion_tokens);
    }
    let ended_well = !failed && decoder.is_complete();
    if ended_well {
        encoder.finish(&mut out);
    } else {
        encoder.fail("broken", &mut out);
    }
    let before = out.len();
    encoder.finish(&mut out);
    encoder.fail("again", &mut out);
    assert_eq!(out.len(), before, "the stream ends once");
    check_anthropic_stream(&out, ended_well);

    // The same bytes as bodies: errors are fine, panics are not.
    if let Ok(hub) = request_to_openai(body) {
        let _ = request_from_openai(&hub, "claude", 1024);
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let _ = request_from_openai(&value, "claude", 1024);
        let _ = response_from_openai(&value);
    }
    if let Ok(hub) = response_to_openai(body) {
        check_completion(&hub);
        let _ = response_from_openai(&hub);
    }
});

fn check_chunk(chunk: &Value) {
    assert_eq!(chunk["object"], "chat.completion.chunk");
    assert!(chunk["id"].is_string() && chunk["model"].is_string() && chunk["created"].is_u64());
    assert!(chunk["choices"].is_array());
}

fn check_completion(hub: &Value) {
    assert_eq!(hub["object"], "chat.completion");
    assert!(hub["choices"][0]["finish_reason"].is_string());
}

/// The encoder's output read back: named JSON events whose `type` is their name, blocks
/// started and stopped in order with increasing indices, and one last event saying how it
/// ended.
fn check_anthropic_stream(out: &[Bytes], ended_well: bool) {
    let mut parser = SseParser::new();
    for frame in out {
        parser.push(frame);
    }
    let mut names = Vec::new();
    let mut open: Option<u64> = None;
    let mut next_index = 0u64;
    while let Ok(Some(event)) = parser.next_event() {
        let name = event.event_name().expect("every event is named").to_owned();
        let data: Value = serde_json::from_slice(&event.data).expect("every event is JSON");
        assert_eq!(data["type"], name.as_str());
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "a block starts while another is open");
                assert_eq!(data["index"], next_index);
                open = Some(next_index);
                next_index += 1;
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open, "a delta outside its block"),
            "content_block_stop" => assert_eq!(data["index"].as_u64(), open.take(), "a stop for another block"),
            _ => assert!(open.is_none() || name == "error", "{name} inside a block"),
        }
        names.push(name);
    }
    parser.finish().expect("whole events");
    assert!(open.is_none(), "every block is stopped");
    let last = names.last().map(String::as_str);
    if ended_well {
        assert_eq!(names.first().map(String::as_str), Some("message_start"));
        assert_eq!(last, Some("message_stop"));
        assert_eq!(names.iter().filter(|n| *n == "message_delta").count(), 1);
    } else {
        assert_eq!(last, Some("error"));
    }
}
