//! OpenAI-compatible streams through the hub decoder and back out through both client
//! encoders: no input panics, and the OpenAI encoder always ends with one closing event.
#![no_main]

use bytes::Bytes;
use firefly_providers::sse::SseParser;
use firefly_providers::transcode::{ChunkDecoder, ChunkEncoder, OpenAiChunkDecoder, OpenAiChunkEncoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parser = SseParser::with_max_event_size(4096);
    parser.push_bytes(Bytes::copy_from_slice(data));
    let mut decoder = OpenAiChunkDecoder::new();
    let mut encoder = OpenAiChunkEncoder::new(data.first().is_some_and(|b| b & 1 == 1));
    let (mut chunks, mut out) = (Vec::new(), Vec::new());
    let mut failed = false;
    while let Ok(Some(event)) = parser.next_event() {
        chunks.clear();
        if decoder.on_event(&event, &mut chunks).is_err() {
            failed = true;
            break;
        }
        for chunk in &chunks {
            encoder.on_chunk(chunk, &mut out);
        }
    }
    let before = out.len();
    if failed || !decoder.is_complete() {
        encoder.fail("broken", &mut out);
    } else {
        encoder.finish(&mut out);
    }
    assert_eq!(out.len(), before + 1);
    let _ = decoder.usage();
});
