use bytes::Bytes;

use super::*;

const TRANSCRIPT: &[u8] = include_bytes!("../../tests/data/openai_stream.sse");

/// What a parser made of a whole stream: its events until the first error, the error, and
/// what `finish` said.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<SseEvent>,
    error: Option<SseError>,
    finish: Result<(), SseError>,
}

fn drain(parser: &mut SseParser, outcome: &mut Outcome) {
    if outcome.error.is_some() {
        return;
    }
    loop {
        match parser.next_event() {
            Ok(Some(event)) => outcome.events.push(event),
            Ok(None) => return,
            Err(error) => {
                outcome.error = Some(error);
                return;
            }
        }
    }
}

/// Pushes `input` cut at `cuts` (sorted offsets), alternating `push` and `push_bytes`.
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
        drain(&mut parser, &mut outcome);
        start = cut;
    }
    outcome.finish = parser.finish();
    outcome
}

fn whole(input: &[u8]) -> Outcome {
    run(input, &[], DEFAULT_MAX_EVENT_SIZE)
}

/// Split invariance: the same events, errors and end, except that an event whose blank line
/// was `\r\n` cut after the `\r` ends at the `\r`.
fn assert_same(expected: &Outcome, got: &Outcome, context: &dyn Fn() -> String) {
    assert_eq!(expected.events.len(), got.events.len(), "event count, {}", context());
    for (e, g) in expected.events.iter().zip(&got.events) {
        assert_eq!((&e.event, &e.data), (&g.event, &g.data), "{}", context());
        let cut_crlf = g.raw.ends_with(b"\r") && e.raw.len() == g.raw.len() + 1 && e.raw.starts_with(&g.raw);
        assert!(e.raw == g.raw || cut_crlf, "raw {:?} vs {:?}, {}", e.raw, g.raw, context());
    }
    assert_eq!(expected.error, got.error, "{}", context());
    assert_eq!(expected.finish, got.finish, "{}", context());
}

fn events(input: &[u8]) -> Vec<SseEvent> {
    let outcome = whole(input);
    assert_eq!(outcome.error, None);
    outcome.events
}

fn data_of(input: &[u8]) -> Vec<Bytes> {
    events(input).into_iter().map(|e| e.data).collect()
}

#[test]
fn parses_the_recorded_openai_transcript() {
    let outcome = whole(TRANSCRIPT);
    assert_eq!(outcome.finish, Ok(()));
    assert_eq!(outcome.events.len(), 12);
    assert!(outcome.events.iter().all(|e| e.event.is_none()));
    assert!(outcome.events[0].data.starts_with(b"{\"id\":\"chatcmpl-"));
    assert!(outcome.events[10].data.windows(13).any(|w| w == b"\"choices\":[],"));
    assert!(outcome.events[11].is_done());
    // Forwarding every event's raw bytes reproduces the stream exactly.
    let forwarded: Vec<u8> = outcome.events.iter().flat_map(|e| e.raw.iter().copied()).collect();
    assert_eq!(forwarded, TRANSCRIPT);
}

#[test]
fn every_split_point_of_the_transcript_gives_the_same_events() {
    let expected = whole(TRANSCRIPT);
    for cut in 0..=TRANSCRIPT.len() {
        assert_same(&expected, &run(TRANSCRIPT, &[cut], DEFAULT_MAX_EVENT_SIZE), &|| format!("cut at {cut}"));
    }
}

#[test]
fn every_split_point_of_crlf_and_cr_transcripts_gives_the_same_events() {
    for ending in ["\r\n", "\r"] {
        let text = std::str::from_utf8(TRANSCRIPT).unwrap().replace('\n', ending);
        let input = text.as_bytes();
        let expected = whole(input);
        assert_eq!(expected.events.len(), 12);
        let data: Vec<Bytes> = expected.events.iter().map(|e| e.data.clone()).collect();
        assert_eq!(data, data_of(TRANSCRIPT));
        for cut in 0..=input.len() {
            assert_same(&expected, &run(input, &[cut], DEFAULT_MAX_EVENT_SIZE), &|| format!("{ending:?} cut at {cut}"));
        }
    }
}

#[test]
fn every_pair_of_split_points_of_a_mixed_stream_gives_the_same_events() {
    let input: &[u8] =
        b"\xEF\xBB\xBF: hi\r\nevent: a\rdata: 1\r\ndata:2\n\r\n:c\n\ndata\r\rid: 7\nretry: 5\ndata:  x\n\ndata: [DONE]\r\n\r\n";
    let expected = whole(input);
    assert_eq!(expected.events.len(), 4);
    for a in 0..=input.len() {
        for b in a..=input.len() {
            assert_same(&expected, &run(input, &[a, b], DEFAULT_MAX_EVENT_SIZE), &|| format!("cuts {a}, {b}"));
        }
    }
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    let cuts: Vec<usize> = (1..TRANSCRIPT.len()).collect();
    assert_same(&whole(TRANSCRIPT), &run(TRANSCRIPT, &cuts, DEFAULT_MAX_EVENT_SIZE), &|| "byte by byte".into());
}

#[test]
fn line_endings_lf_crlf_and_cr() {
    for input in [&b"data: a\n\ndata: b\n\n"[..], b"data: a\r\n\r\ndata: b\r\n\r\n", b"data: a\r\rdata: b\r\r"] {
        assert_eq!(data_of(input), [Bytes::from_static(b"a"), Bytes::from_static(b"b")], "{input:?}");
    }
    // Mixed within one event.
    assert_eq!(data_of(b"data: a\rdata: b\r\ndata: c\n\r\n"), [Bytes::from_static(b"a\nb\nc")]);
}

#[test]
fn field_values_lose_one_leading_space_only() {
    assert_eq!(data_of(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\n\n"), ["x", "x", " x", ""].map(Bytes::from));
    // Only the first colon separates; the value may hold more.
    assert_eq!(data_of(b"data: {\"a\":1}\n\n"), [Bytes::from_static(b"{\"a\":1}")]);
}

#[test]
fn multi_line_data_is_joined_with_newlines() {
    let all = events(b"data: first\ndata: second\ndata:\ndata: fourth\n\n");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].data, Bytes::from_static(b"first\nsecond\n\nfourth"));
}

#[test]
fn a_line_without_colon_is_a_field_with_empty_value() {
    assert_eq!(data_of(b"data\n\n"), [Bytes::new()]);
    assert_eq!(data_of(b"data\ndata\n\n"), [Bytes::from_static(b"\n")]);
}

#[test]
fn comments_and_unknown_fields_are_skipped_and_kept_in_raw() {
    let input = b": keep-alive\n\n: note\nid: 42\nretry: 3000\nfoo: bar\ndata: x\n\n";
    let all = events(input);
    assert_eq!(all.len(), 1, "a comment-only block is not an event");
    assert_eq!(all[0].data, Bytes::from_static(b"x"));
    assert_eq!(all[0].raw, Bytes::from_static(b": note\nid: 42\nretry: 3000\nfoo: bar\ndata: x\n\n"));
}

#[test]
fn event_names() {
    let all = events(b"event: message_start\ndata: {}\n\nevent:\ndata: y\n\nevent: a\nevent: b\ndata: z\n\n");
    assert_eq!(all[0].event_name(), Some("message_start"));
    assert_eq!(all[1].event, None, "an empty event name is the default");
    assert_eq!(all[2].event_name(), Some("b"), "the last event line wins");
    // A block with an event name but no data is not dispatched.
    assert!(events(b"event: ping\n\n").is_empty());
}

#[test]
fn blank_lines_between_events_dispatch_nothing() {
    assert_eq!(data_of(b"\n\n\r\n\rdata: a\n\n\n\ndata: b\n\n"), ["a", "b"].map(Bytes::from));
}

#[test]
fn byte_order_mark_is_skipped_once_even_when_split() {
    let input = b"\xEF\xBB\xBFdata: a\n\n";
    for cut in 0..=3 {
        let outcome = run(input, &[cut], DEFAULT_MAX_EVENT_SIZE);
        assert_eq!(outcome.events[0].data, Bytes::from_static(b"a"), "cut at {cut}");
        assert_eq!(outcome.events[0].raw, Bytes::from_static(b"data: a\n\n"));
    }
    // Only at the stream's start: later it is part of a field name.
    assert!(events(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n").len() == 1);
    // A partial mark at the end is not a truncated event.
    let mut parser = SseParser::new();
    parser.push(b"\xEF\xBB");
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.finish(), Ok(()));
}

#[test]
fn crlf_blank_line_cut_after_cr_dispatches_at_once() {
    let mut parser = SseParser::new();
    parser.push(b"data: a\r\n\r");
    let first = parser.next_event().unwrap().expect("dispatched without waiting for the \\n");
    assert_eq!((first.data.as_ref(), first.raw.as_ref()), (&b"a"[..], &b"data: a\r\n\r"[..]));
    parser.push(b"\ndata: b\r\n\r\n");
    let second = parser.next_event().unwrap().unwrap();
    assert_eq!(second.raw, Bytes::from_static(b"data: b\r\n\r\n"), "the dangling \\n is not a blank line");
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.finish(), Ok(()));
}

#[test]
fn push_bytes_slices_the_chunk_without_copying() {
    let chunk = Bytes::from_static(b"data: one\n\ndata: two\n\ndata: thr");
    let mut parser = SseParser::new();
    parser.push_bytes(chunk.clone());
    let one = parser.next_event().unwrap().unwrap();
    let two = parser.next_event().unwrap().unwrap();
    assert_eq!(one.raw.as_ptr(), chunk.as_ptr());
    assert_eq!(one.data.as_ptr(), chunk[6..].as_ptr());
    assert_eq!(two.raw.as_ptr(), chunk[11..].as_ptr());
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.buffered(), 9, "the partial event is kept");
    parser.push_bytes(Bytes::from_static(b"ee\n\n"));
    assert_eq!(parser.next_event().unwrap().unwrap().data, Bytes::from_static(b"three"));
    assert_eq!(parser.buffered(), 0);
}

#[test]
fn pushing_several_chunks_before_draining_is_fine() {
    let mut parser = SseParser::new();
    parser.push_bytes(Bytes::from_static(b"data: a\n"));
    parser.push_bytes(Bytes::from_static(b"\ndata: b\n\n"));
    parser.push(b"data: c\n\n");
    let got: Vec<_> = std::iter::from_fn(|| parser.next_event().unwrap()).map(|e| e.data).collect();
    assert_eq!(got, ["a", "b", "c"].map(Bytes::from));
}

#[test]
fn an_event_over_the_limit_fails_while_it_is_still_arriving() {
    let mut parser = SseParser::with_max_event_size(16);
    parser.push(b"data: 0123456789");
    assert_eq!(parser.next_event(), Ok(None), "16 bytes are within the limit");
    parser.push(b"a");
    assert_eq!(parser.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
    assert_eq!(parser.buffered(), 0, "the buffer is freed");
    parser.push(b"\n\ndata: ok\n\n");
    assert_eq!(parser.buffered(), 0, "a failed parser takes nothing more");
    assert_eq!(parser.next_event(), Err(SseError::EventTooLarge { limit: 16 }), "the error is sticky");
    assert_eq!(parser.finish(), Err(SseError::EventTooLarge { limit: 16 }));
}

#[test]
fn an_event_over_the_limit_fails_when_received_whole() {
    let mut parser = SseParser::with_max_event_size(16);
    parser.push(b"data: ok\n\ndata: 0123456789abcdef\n\ndata: later\n\n");
    assert_eq!(parser.next_event().unwrap().unwrap().data, Bytes::from_static(b"ok"));
    assert_eq!(parser.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
}

#[test]
fn the_limit_counts_the_event_up_to_its_blank_line() {
    // 14 bytes of field line and its \n, then the blank line's \n as the 16th byte.
    let mut parser = SseParser::with_max_event_size(16);
    parser.push(b"data: 01234567\n\n");
    assert_eq!(parser.next_event().unwrap().unwrap().data, Bytes::from_static(b"01234567"));
    parser.push(b"data: 012345678\n\n");
    assert_eq!(parser.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
}

#[test]
fn default_limit_stops_an_endless_event() {
    let mut parser = SseParser::new();
    let chunk = vec![b'x'; 64 * 1024];
    parser.push(b"data: ");
    let mut failed = false;
    for _ in 0..32 {
        parser.push(&chunk);
        if parser.next_event().is_err() {
            failed = true;
            break;
        }
        assert!(parser.buffered() <= DEFAULT_MAX_EVENT_SIZE);
    }
    assert!(failed);
}

#[test]
fn finish_reports_a_truncated_event() {
    let mut parser = SseParser::new();
    parser.push(b"data: a\n\ndata: {\"partial\"");
    assert_eq!(parser.next_event().unwrap().unwrap().data, Bytes::from_static(b"a"));
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.finish(), Err(SseError::Truncated { bytes: 16 }));
    // The parser is ready for another stream.
    parser.push(b"data: b\n\n");
    assert_eq!(parser.next_event().unwrap().unwrap().data, Bytes::from_static(b"b"));
    assert_eq!(parser.finish(), Ok(()));

    // Complete field lines without the blank line are an event never dispatched.
    parser.push(b"data: [DONE]\n");
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.finish(), Err(SseError::Truncated { bytes: 13 }));

    // Comments left over lose nothing.
    parser.push(b": ping\n: pong");
    assert_eq!(parser.next_event(), Ok(None));
    assert_eq!(parser.finish(), Ok(()));
    assert_eq!(SseParser::new().finish(), Ok(()));
}

#[test]
fn encode_event_frames_data() {
    assert_eq!(encode_event(b"{\"a\":1}"), Bytes::from_static(b"data: {\"a\":1}\n\n"));
    assert_eq!(encode_event(b"[DONE]"), Bytes::from_static(b"data: [DONE]\n\n"));
    assert_eq!(encode_event(b""), Bytes::from_static(b"data: \n\n"));
    assert_eq!(encode_event(b"a\nb"), Bytes::from_static(b"data: a\ndata: b\n\n"));
    assert_eq!(encode_event(b"a\r\nb\rc\n"), Bytes::from_static(b"data: a\ndata: b\ndata: c\ndata: \n\n"));
}

#[test]
fn encode_event_round_trips_through_the_parser() {
    for data in
        [&b""[..], b"x", b" leading space", b"\n", b"a\n", b"\nb", b"a\n\nb", b"a\r\nb", b"\r", b": not a comment"]
    {
        let got = events(&encode_event(data));
        assert_eq!(got.len(), 1, "{data:?}");
        let normalized = String::from_utf8_lossy(data).replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(got[0].data, Bytes::from(normalized), "{data:?}");
    }
}

/// A tiny deterministic generator (xorshift64*), so the property runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A stream of field lines, comments, blank lines and some arbitrary bytes, with every kind
/// of line end, sometimes cut short.
fn random_stream(rng: &mut Rng) -> Vec<u8> {
    const LINES: &[&[u8]] = &[
        b"data: {\"usage\":null}",
        b"data:x",
        b"data",
        b"data:  two",
        b"event: x",
        b"event:",
        b": c",
        b":",
        b"id: 1",
        b"retry: 9",
        b"[DONE]",
        b"data: [DONE]",
        b"\xEF\xBB\xBFdata: y",
        b"dat",
        b"data\xFF: z",
    ];
    const ENDS: &[&[u8]] = &[b"\n", b"\r\n", b"\r"];
    let mut out = Vec::new();
    for _ in 0..rng.below(16) {
        match rng.below(10) {
            0..=3 => {}
            4 => out.extend((0..rng.below(6)).map(|_| rng.next() as u8)),
            _ => out.extend_from_slice(LINES[rng.below(LINES.len())]),
        }
        out.extend_from_slice(ENDS[rng.below(ENDS.len())]);
    }
    if rng.below(4) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    out
}

#[test]
fn random_streams_give_the_same_events_in_any_split() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut events, mut too_large, mut truncated) = (0, 0, 0);
    for round in 0..20_000 {
        let input = random_stream(&mut rng);
        let max = if rng.below(8) == 0 { 1 + rng.below(24) } else { DEFAULT_MAX_EVENT_SIZE };
        let mut cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(input.len() + 1)).collect();
        cuts.sort_unstable();
        let expected = run(&input, &[], max);
        let got = run(&input, &cuts, max);
        assert_same(&expected, &got, &|| format!("round {round}, input {input:?}, cuts {cuts:?}, max {max}"));
        events += expected.events.len();
        too_large += usize::from(expected.error.is_some());
        truncated += usize::from(matches!(expected.finish, Err(SseError::Truncated { .. })));
        // Without a cut `\r\n`, forwarding the raw bytes of the events loses only comment-only
        // blocks and what follows an error or a truncation.
        if expected.error.is_none() && expected.finish.is_ok() {
            let forwarded: usize = expected.events.iter().map(|e| e.raw.len()).sum();
            assert!(forwarded <= input.len());
        }
    }
    // The generator exercises every outcome.
    eprintln!("{events} events, {too_large} too large, {truncated} truncated");
    assert!(events > 8000 && too_large > 1000 && truncated > 4000);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(200);
        let input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let cuts = [rng.below(len + 1)];
        let expected = run(&input, &[], DEFAULT_MAX_EVENT_SIZE);
        assert_same(&expected, &run(&input, &cuts, DEFAULT_MAX_EVENT_SIZE), &|| format!("{input:?}"));
    }
}
