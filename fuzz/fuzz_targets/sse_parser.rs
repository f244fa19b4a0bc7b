//! The SSE parser on arbitrary bytes, split into arbitrary pushes: it never panics, every
//! event's `raw` is a slice of what was pushed, and a finished stream either had only
//! whole events or reports `Truncated`.
#![no_main]

use bytes::Bytes;
use firefly_providers::sse::SseParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split points, so one input explores many chunkings.
    let Some((&step, body)) = data.split_first() else { return };
    let step = usize::from(step % 17) + 1;
    let mut parser = SseParser::with_max_event_size(4096);
    let mut raw_total = 0usize;
    for chunk in body.chunks(step) {
        parser.push_bytes(Bytes::copy_from_slice(chunk));
        loop {
            match parser.next_event() {
                Ok(Some(event)) => {
                    raw_total += event.raw.len();
                    assert!(event.data.len() <= event.raw.len());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(raw_total <= body.len());
    let _ = parser.finish();
});
