//! Split invariance of the SSE parser: pushing a stream in pieces (cut anywhere, with
//! `push` and `push_bytes` alternating) yields the same events, errors and end as pushing it
//! whole, and nothing panics.
//!
//! Input: one header byte (bits 0–2: number of cuts; bit 7: a 64-byte event limit instead
//! of 1 MiB), two little-endian bytes per cut (taken modulo the stream's length), then the
//! stream.

#![no_main]

use bytes::Bytes;
use firefly_providers::sse::{SseError, SseEvent, SseParser, DEFAULT_MAX_EVENT_SIZE};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<SseEvent>,
    error: Option<SseError>,
    finish: Result<(), SseError>,
}

fn run(input: &[u8], cuts: &[usize], max: usize) -> Outcome {
    let mut parser = SseParser::with_max_event_size(max);
    let mut outcome = Outcome { events: Vec::new(), error: None, finish: Ok(()) };
    let mut start = 0;
    for (i, &cut) in cuts.iter().chain(std::iter::once(&input.len())).enumerate() {
        let cut = cut.clamp(start, input.len());
        if i % 2 == 0 {
            parser.push(&input[start..cut]);
        } else {
            parser.push_bytes(Bytes::copy_from_slice(&input[start..cut]));
        }
        while outcome.error.is_none() {
            match parser.next_event() {
                Ok(Some(event)) => outcome.events.push(event),
                Ok(None) => break,
                Err(error) => outcome.error = Some(error),
            }
        }
        start = cut;
    }
    outcome.finish = parser.finish();
    outcome
}

fuzz_target!(|data: &[u8]| {
    let Some((&header, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(header & 0x07);
    if rest.len() < cut_count * 2 {
        return;
    }
    let (cut_bytes, input) = rest.split_at(cut_count * 2);
    let mut cuts: Vec<usize> =
        cut_bytes.chunks_exact(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let max = if header & 0x80 != 0 { 64 } else { DEFAULT_MAX_EVENT_SIZE };

    let whole = run(input, &[], max);
    let pieces = run(input, &cuts, max);
    assert_eq!(whole.events.len(), pieces.events.len());
    for (w, p) in whole.events.iter().zip(&pieces.events) {
        assert_eq!((&w.event, &w.data), (&p.event, &p.data));
        // A `\r\n` blank line cut after its `\r` ends the event at the `\r`.
        let cut_crlf = p.raw.ends_with(b"\r") && w.raw.len() == p.raw.len() + 1 && w.raw.starts_with(&p.raw);
        assert!(w.raw == p.raw || cut_crlf);
    }
    assert_eq!(whole.error, pieces.error);
    assert_eq!(whole.finish, pieces.finish);
});
