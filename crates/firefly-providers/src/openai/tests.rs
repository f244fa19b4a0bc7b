use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::sse::{SseEvent, SseParser};

const TRANSCRIPT: &[u8] = include_bytes!("../../tests/data/openai_stream.sse");

fn parse(body: &str) -> Result<ChatRequest, RequestError> {
    ChatRequest::parse(Bytes::copy_from_slice(body.as_bytes()))
}

fn upstream(body: &str, model: Option<&str>) -> String {
    String::from_utf8(parse(body).unwrap().upstream_body(model).to_vec()).unwrap()
}

fn as_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

const MINIMAL: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn reads_the_fields_the_relay_needs() {
    let request = parse(
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,
            "max_tokens":100,"max_completion_tokens":50,"n":3}"#,
    )
    .unwrap();
    assert_eq!(request.model(), "gpt-4o");
    assert!(request.stream());
    assert!(!request.client_wants_usage());
    assert_eq!((request.max_tokens(), request.max_completion_tokens(), request.n()), (Some(100), Some(50), 3));
    assert_eq!(request.output_limit(), Some(50), "max_completion_tokens wins");

    let request = parse(MINIMAL).unwrap();
    assert!(!request.stream());
    assert_eq!((request.max_tokens(), request.max_completion_tokens(), request.n()), (None, None, 1));
    assert_eq!(request.output_limit(), None);

    let request = parse(r#"{"model":"m","messages":[{}],"max_tokens":7,"n":null,"stream":null}"#).unwrap();
    assert_eq!((request.output_limit(), request.n(), request.stream()), (Some(7), 1, false));
}

#[test]
fn an_unchanged_request_is_sent_as_the_same_buffer() {
    let body = Bytes::from_static(MINIMAL.as_bytes());
    let request = ChatRequest::parse(body.clone()).unwrap();
    for model in [None, Some("gpt-4o-mini")] {
        let sent = request.upstream_body(model);
        assert_eq!(sent.as_ptr(), body.as_ptr(), "no copy");
        assert_eq!(sent, body);
    }
}

#[test]
fn the_model_is_replaced_and_nothing_else_moves() {
    let body = "{ \"messages\" : [{\"role\":\"user\",\"content\":\"model: \\\"x\\\"\"}],\n  \"model\" :  \"alias\" , \"z\":1.50 }\n";
    let sent = upstream(body, Some("qwen-max"));
    assert_eq!(sent, body.replace("\"alias\"", "\"qwen-max\""));
    // A name that needs escaping is escaped.
    let sent = upstream(MINIMAL, Some("we\"ird\\name/ü"));
    assert_eq!(as_json(&sent)["model"], "we\"ird\\name/ü");
}

#[test]
fn a_stream_is_made_to_report_usage() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"}"}],"stream":true}  "#;
    let request = parse(body).unwrap();
    assert!(!request.client_wants_usage());
    let sent = upstream(body, None);
    assert_eq!(
        sent,
        r#"{"model":"m","messages":[{"role":"user","content":"}"}],"stream":true,"stream_options":{"include_usage":true}}  "#
    );
}

#[test]
fn stream_options_are_completed_in_place() {
    let cases = [
        (r#"{"include_usage":true}"#, r#"{"include_usage":true}"#, true),
        (r#"{"include_usage": false}"#, r#"{"include_usage": true}"#, false),
        (r#"{"include_usage":null}"#, r#"{"include_usage":true}"#, false),
        ("null", r#"{"include_usage":true}"#, false),
        ("{ }", r#"{"include_usage":true}"#, false),
        (r#"{"continuous_usage_stats":true}"#, r#"{"include_usage":true,"continuous_usage_stats":true}"#, false),
        (
            r#"{"include_obfuscation":false,"include_usage":true}"#,
            r#"{"include_obfuscation":false,"include_usage":true}"#,
            true,
        ),
    ];
    for (options, sent_options, wants) in cases {
        let body =
            format!(r#"{{"model":"m","stream_options":{options},"messages":[{{"role":"user"}}],"stream":true}}"#);
        let request = parse(&body).unwrap();
        assert_eq!(request.client_wants_usage(), wants, "{options}");
        let sent = upstream(&body, Some("up"));
        let expected =
            format!(r#"{{"model":"up","stream_options":{sent_options},"messages":[{{"role":"user"}}],"stream":true}}"#);
        assert_eq!(sent, expected, "{options}");
    }
}

#[test]
fn a_non_stream_request_keeps_its_stream_options() {
    let body = r#"{"model":"m","messages":[1],"stream":false,"stream_options":{"include_usage":false}}"#;
    let request = parse(body).unwrap();
    assert!(!request.client_wants_usage());
    assert_eq!(upstream(body, None), body);
}

#[test]
fn everything_else_passes_through_byte_for_byte() {
    let body = r#"{
  "model": "gpt-4o",
  "messages": [
    {"role": "system", "content": "Be brief. Use \"quotes\" and \u00e9 and }{ braces."},
    {"role": "user", "content": [
      {"type": "text", "text": "What is in this image?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    ]}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}],
  "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
  "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
  "temperature": 0.70,
  "seed": 12345678901234567890,
  "logit_bias": {"50256": -100},
  "x_vendor_extension": {"nested": [1, 2.5e10, null, true]},
  "stream": true
}"#;
    let sent = upstream(body, Some("gpt-4o-2024-08-06"));
    insta::assert_snapshot!(sent);
    // The numbers a Value round trip would change are untouched.
    assert!(sent.contains("\"temperature\": 0.70") && sent.contains("12345678901234567890") && sent.contains("2.5e10"));
    let mut expected = as_json(body);
    expected["model"] = json!("gpt-4o-2024-08-06");
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(as_json(&sent), expected);
}

#[test]
fn escaped_keys_are_the_keys_they_spell() {
    let body = r#"{"mod\u0065l":"alias","messages":[{}],"stre\u0061m":true}"#;
    let request = parse(body).unwrap();
    assert_eq!(request.model(), "alias");
    assert!(request.stream());
    let sent = upstream(body, Some("real"));
    assert_eq!(
        sent,
        r#"{"mod\u0065l":"real","messages":[{}],"stre\u0061m":true,"stream_options":{"include_usage":true}}"#
    );
    assert!(matches!(
        parse(r#"{"model":"a","mod\u0065l":"b","messages":[{}]}"#),
        Err(RequestError::Duplicate { field: "model" })
    ));
}

#[test]
fn invalid_requests_name_the_field() {
    let cases: &[(&str, RequestError)] = &[
        (r#"{"model":"m","messages":[{}],"stream":true,"max_tokens":1"#, RequestError::InvalidJson(String::new())),
        (r#"{"model":"m","messages":[{}]} trailing"#, RequestError::InvalidJson(String::new())),
        ("", RequestError::InvalidJson(String::new())),
        (r#"[{"model":"m"}]"#, RequestError::NotAnObject),
        (r#""model""#, RequestError::NotAnObject),
        (r#"{"messages":[{}]}"#, RequestError::Missing { field: "model" }),
        (r#"{"model":null,"messages":[{}]}"#, RequestError::Missing { field: "model" }),
        (r#"{"model":4,"messages":[{}]}"#, RequestError::InvalidType { field: "model", expected: "a string" }),
        (r#"{"model":"","messages":[{}]}"#, RequestError::InvalidValue { field: "model", reason: "must not be empty" }),
        (r#"{"model":"m"}"#, RequestError::Missing { field: "messages" }),
        (
            r#"{"model":"m","messages":[]}"#,
            RequestError::InvalidValue { field: "messages", reason: "expected a non-empty array" },
        ),
        (
            r#"{"model":"m","messages":{"role":"user"}}"#,
            RequestError::InvalidType { field: "messages", expected: "an array" },
        ),
        (
            r#"{"model":"m","messages":[{}],"stream":"true"}"#,
            RequestError::InvalidType { field: "stream", expected: "a boolean" },
        ),
        (
            r#"{"model":"m","messages":[{}],"max_tokens":-1}"#,
            RequestError::InvalidType { field: "max_tokens", expected: "a non-negative integer" },
        ),
        (
            r#"{"model":"m","messages":[{}],"max_completion_tokens":1.5}"#,
            RequestError::InvalidType { field: "max_completion_tokens", expected: "a non-negative integer" },
        ),
        (
            r#"{"model":"m","messages":[{}],"n":0}"#,
            RequestError::InvalidValue { field: "n", reason: "must be at least 1" },
        ),
        (
            r#"{"model":"m","messages":[{}],"n":"2"}"#,
            RequestError::InvalidType { field: "n", expected: "a non-negative integer" },
        ),
        (
            r#"{"model":"m","messages":[{}],"stream_options":[]}"#,
            RequestError::InvalidType { field: "stream_options", expected: "an object" },
        ),
        (
            r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":"yes"}}"#,
            RequestError::InvalidType { field: "stream_options.include_usage", expected: "a boolean" },
        ),
        (
            r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true,"include_usage":false}}"#,
            RequestError::Duplicate { field: "stream_options.include_usage" },
        ),
        (r#"{"model":"m","messages":[{}],"stream":true,"stream":false}"#, RequestError::Duplicate { field: "stream" }),
        (
            r#"{"model":"m","messages":[{}],"max_tokens":1,"max_tokens":9}"#,
            RequestError::Duplicate { field: "max_tokens" },
        ),
    ];
    for (body, expected) in cases {
        let error = parse(body).expect_err(body);
        match (expected, &error) {
            (RequestError::InvalidJson(_), RequestError::InvalidJson(detail)) => assert!(!detail.is_empty()),
            _ => assert_eq!(&error, expected, "{body}"),
        }
        assert_eq!(error.param(), expected.param());
    }
}

#[test]
fn errors_carry_openai_params_codes_and_messages() {
    let missing = RequestError::Missing { field: "messages" };
    assert_eq!((missing.param(), missing.code()), (Some("messages"), "missing_required_parameter"));
    assert_eq!(missing.to_string(), "Missing required parameter: 'messages'.");
    let wrong = RequestError::InvalidType { field: "stream", expected: "a boolean" };
    assert_eq!((wrong.param(), wrong.code()), (Some("stream"), "invalid_type"));
    assert_eq!(wrong.to_string(), "Invalid type for 'stream': expected a boolean.");
    assert_eq!(RequestError::InvalidJson("x".into()).param(), None);
    assert_eq!(RequestError::Duplicate { field: "n" }.code(), "duplicate_parameter");
}

#[test]
fn duplicate_unread_fields_pass_through() {
    let body = r#"{"model":"m","messages":[{}],"user":"a","user":"b"}"#;
    assert_eq!(upstream(body, None), body);
}

#[test]
fn prepare_chat_request_validates_and_rewrites() {
    let prepared = prepare_chat_request(
        br#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        Some("upstream"),
    )
    .unwrap();
    assert_eq!(prepared.request.model(), "alias");
    assert!(prepared.request.client_wants_usage());
    assert_eq!(as_json(std::str::from_utf8(&prepared.body).unwrap())["model"], "upstream");
    assert!(matches!(prepare_chat_request(b"{}", None), Err(RequestError::Missing { field: "model" })));
}

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
  "choices":[{"index":0,"message":{"role":"assistant","content":"usage: none","refusal":null},"finish_reason":"stop"}],
  "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,
    "prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},
    "completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp"}"#;

#[test]
fn usage_from_a_response() {
    let usage = Usage::from_response(COMPLETION.as_bytes()).unwrap();
    assert_eq!(usage, Usage { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29, cached_tokens: 3 });
    assert_eq!(Usage::from_response(br#"{"id":"x","usage":null}"#), None);
    assert_eq!(Usage::from_response(br#"{"id":"x","choices":[]}"#), None);
    assert_eq!(Usage::from_response(br#"{"usage":{}}"#), None);
    assert_eq!(Usage::from_response(br#"{"usage":{"prompt_tokens":"many"}}"#), None);
    assert_eq!(Usage::from_response(b"not json"), None);
    // DeepSeek: cache hits outside prompt_tokens_details; no total.
    let deepseek = br#"{"usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}}"#;
    assert_eq!(
        Usage::from_response(deepseek),
        Some(Usage { prompt_tokens: 100, completion_tokens: 5, total_tokens: 105, cached_tokens: 64 })
    );
    // Embeddings report no completion tokens.
    assert_eq!(
        Usage::from_response(br#"{"object":"list","usage":{"prompt_tokens":8,"total_tokens":8}}"#),
        Some(Usage { prompt_tokens: 8, completion_tokens: 0, total_tokens: 8, cached_tokens: 0 })
    );
}

#[test]
fn usage_from_a_chunk() {
    assert_eq!(Usage::from_chunk(br#"{"choices":[{"index":0,"delta":{}}],"usage":null}"#), None);
    assert_eq!(Usage::from_chunk(br#"{"choices":[{"index":0,"delta":{}}]}"#), None);
    assert_eq!(
        Usage::from_chunk(br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#),
        Some(Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cached_tokens: 0 })
    );
}

#[test]
fn usage_is_found_wherever_the_key_is() {
    let usage = Some(Usage { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cached_tokens: 0 });
    let totals = r#"{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}"#;
    // `"usage"` as a value before the key, spaced-out keys, a key that merely ends in usage.
    for chunk in [
        format!(r#"{{"object":"usage","choices":[],"usage":{totals}}}"#),
        format!(r#"{{"choices":[] , "usage" :  {totals}}}"#),
        format!(r#"{{"x\"usage":null,"usage":{totals}}}"#),
        format!(r#"{{"delta":{{"content":"\"usage\": null"}},"usage":{totals}}}"#),
    ] {
        assert_eq!(Usage::from_chunk(chunk.as_bytes()), usage, "{chunk}");
    }
    // Text that only looks like usage.
    for chunk in
        [r#"{"content":"\"usage\":{\"prompt_tokens\":5}"}"#, r#"{"usage" :null}"#, r#"{"usage":null,"x":"usage"}"#]
    {
        assert_eq!(Usage::from_chunk(chunk.as_bytes()), None, "{chunk}");
    }
}

fn transcript_events() -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    parser.push(TRANSCRIPT);
    let events: Vec<_> = std::iter::from_fn(|| parser.next_event().unwrap()).collect();
    parser.finish().unwrap();
    events
}

/// Runs a stream through a filter; returns the bytes the client gets.
fn filter_all(filter: &mut StreamUsageFilter, events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        match filter.on_event(event) {
            Verdict::Forward => out.extend_from_slice(&event.raw),
            Verdict::Drop => {}
            Verdict::Replace(bytes) => out.extend_from_slice(&bytes),
        }
    }
    out
}

#[test]
fn the_usage_chunk_is_dropped_when_the_client_did_not_ask() {
    let events = transcript_events();
    let mut filter = StreamUsageFilter::new(false);
    let sent = filter_all(&mut filter, &events);
    let expected: Vec<u8> =
        events.iter().enumerate().filter(|(i, _)| *i != 10).flat_map(|(_, e)| e.raw.iter().copied()).collect();
    assert_eq!(sent, expected);
    assert_eq!(
        filter.usage(),
        Some(Usage { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29, cached_tokens: 0 })
    );
    assert!(filter.saw_done());
}

#[test]
fn the_stream_is_forwarded_whole_when_the_client_asked() {
    let events = transcript_events();
    let mut filter = StreamUsageFilter::new(true);
    assert_eq!(filter_all(&mut filter, &events), TRANSCRIPT);
    assert_eq!(filter.usage().map(|u| u.total_tokens), Some(29));
}

fn event(data: &str) -> SseEvent {
    let mut parser = SseParser::new();
    parser.push(&crate::sse::encode_event(data.as_bytes()));
    parser.next_event().unwrap().unwrap()
}

#[test]
fn usage_on_a_content_chunk_is_blanked_not_dropped() {
    let totals = r#"{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}"#;
    let chunk = format!(
        r#"{{"id":"c","choices":[{{"index":0,"delta":{{"content":"!","usage":1}},"finish_reason":"stop"}}],"usage": {totals} ,"z":0}}"#
    );
    let mut filter = StreamUsageFilter::new(false);
    let Verdict::Replace(frame) = filter.on_event(&event(&chunk)) else { panic!("expected a replacement") };
    // Only the top-level usage value changes.
    let blanked = chunk.replace(totals, "null");
    assert_eq!(frame, crate::sse::encode_event(blanked.as_bytes()));
    assert_eq!(filter.usage().map(|u| u.total_tokens), Some(6));
    // The same chunk goes through untouched to a client that asked.
    assert_eq!(StreamUsageFilter::new(true).on_event(&event(&chunk)), Verdict::Forward);
}

#[test]
fn the_last_reported_usage_counts_and_odd_events_pass() {
    let mut filter = StreamUsageFilter::new(false);
    let running = |n: u64| {
        format!(r#"{{"choices":[],"usage":{{"prompt_tokens":5,"completion_tokens":{n},"total_tokens":{}}}}}"#, 5 + n)
    };
    assert_eq!(filter.on_event(&event(&running(1))), Verdict::Drop);
    assert_eq!(filter.on_event(&event(&running(7))), Verdict::Drop);
    assert_eq!(filter.usage().map(|u| u.completion_tokens), Some(7));
    for odd in [r#"{"error":{"message":"overloaded","type":"server_error"}}"#, "not json \"usage\"", r#"{"usage":{}}"#]
    {
        assert_eq!(filter.on_event(&event(odd)), Verdict::Forward, "{odd}");
    }
    assert_eq!(filter.usage().map(|u| u.completion_tokens), Some(7));
    assert!(!filter.saw_done());
    assert_eq!(filter.on_event(&event("[DONE]")), Verdict::Forward);
    assert!(filter.saw_done());
}

#[test]
fn no_usage_means_none() {
    let mut filter = StreamUsageFilter::new(false);
    assert_eq!(filter.on_event(&event(r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#)), Verdict::Forward);
    assert_eq!(filter.on_event(&event("[DONE]")), Verdict::Forward);
    assert_eq!(filter.usage(), None);
}
