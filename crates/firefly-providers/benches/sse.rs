//! The relay's per-chunk streaming cost: SSE parsing plus the usage filter over a recorded
//! 100-chunk OpenAI stream, delivered one event per network chunk (as upstreams write) and
//! in 1460-byte segments that cut events anywhere; and the per-request body rewrite.
//!
//! `cargo bench -p firefly-providers --bench sse`

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use firefly_providers::openai::{ChatRequest, StreamUsageFilter, Verdict};
use firefly_providers::sse::SseParser;

const CONTENT_CHUNKS: usize = 98;

/// One event per element: a role chunk, 98 content chunks, a finish chunk (100 chunks), the
/// usage chunk and `[DONE]`, shaped as api.openai.com sends them with `include_usage`.
fn recorded_stream() -> Vec<Bytes> {
    let head = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":"#;
    let event = |choices: &str, usage: &str| Bytes::from(format!("data: {head}{choices},\"usage\":{usage}}}\n\n"));
    let mut events = vec![event(
        r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
        "null",
    )];
    for i in 0..CONTENT_CHUNKS {
        let choices =
            format!(r#"[{{"index":0,"delta":{{"content":" word{i}"}},"logprobs":null,"finish_reason":null}}]"#);
        events.push(event(&choices, "null"));
    }
    events.push(event(r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#, "null"));
    events.push(event(
        "[]",
        r#"{"prompt_tokens":19,"completion_tokens":98,"total_tokens":117,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
    ));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Parses and filters `chunks` as the relay does; returns the bytes it would forward.
fn relay(chunks: &[Bytes], client_wants_usage: bool) -> usize {
    let mut parser = SseParser::new();
    let mut filter = StreamUsageFilter::new(client_wants_usage);
    let mut forwarded = 0;
    for chunk in chunks {
        parser.push_bytes(chunk.clone());
        while let Some(event) = parser.next_event().expect("well formed") {
            forwarded += match filter.on_event(&event) {
                Verdict::Forward => event.raw.len(),
                Verdict::Replace(bytes) => bytes.len(),
                Verdict::Drop => 0,
            };
        }
    }
    parser.finish().expect("complete");
    assert_eq!(filter.usage().map(|u| u.completion_tokens), Some(CONTENT_CHUNKS as u64));
    forwarded
}

fn stream(c: &mut Criterion) {
    let events = recorded_stream();
    let whole: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
    let segments: Vec<Bytes> = whole.chunks(1460).map(Bytes::copy_from_slice).collect();

    let mut group = c.benchmark_group("sse+usage (per event)");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("event per chunk, usage hidden", |b| b.iter(|| relay(black_box(&events), false)));
    group.bench_function("event per chunk, usage shown", |b| b.iter(|| relay(black_box(&events), true)));
    group.bench_function("1460-byte segments", |b| b.iter(|| relay(black_box(&segments), false)));
    group.finish();

    let body = Bytes::from_static(
        br#"{"model":"house-alias","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about fireflies over a summer river, then explain the imagery in two sentences."}],"temperature":0.7,"max_tokens":512,"stream":true}"#,
    );
    let mut group = c.benchmark_group("chat request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse + upstream body", |b| {
        b.iter_batched(
            || body.clone(),
            |body| ChatRequest::parse(body).expect("valid").upstream_body(Some("gpt-4o-mini")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = stream
}
criterion_main!(benches);
