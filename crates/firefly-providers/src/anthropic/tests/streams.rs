use super::*;

// ---------------------------------------------------------------------------------------
// Realistic streams, in the shapes of Anthropic's streaming documentation
// ---------------------------------------------------------------------------------------

const TEXT_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":3,"cache_read_input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", wörld!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

const TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check the weather."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02A","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"tz\":\"PST\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

const THINKING_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Thinking","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me solve this step by step:\n\n1. "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"27 * 453 = 12231"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"27 * 453 = 12,231"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":120}}

event: message_stop
data: {"type":"message_stop"}

"#;

// ---------------------------------------------------------------------------------------
// Stream decoder
// ---------------------------------------------------------------------------------------

#[test]
fn decoder_converts_a_text_stream() {
    let decoded = decode(TEXT_STREAM);
    assert!(decoded.error.is_none());
    assert!(decoded.decoder.is_complete());
    assert_eq!(
        decoded.decoder.usage(),
        Some(Usage { prompt_tokens: 38, completion_tokens: 15, total_tokens: 53, cached_tokens: 10 })
    );
    for chunk in &decoded.chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
        assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        assert!(chunk["choices"].is_array());
    }
    assert_eq!(crate::transcode::hub_usage(decoded.chunks.last().unwrap()), decoded.decoder.usage());
    in_snapshots(|| insta::assert_json_snapshot!(decoded.chunks));
}

#[test]
fn decoder_converts_a_tool_stream() {
    let decoded = decode(TOOL_STREAM);
    assert!(decoded.error.is_none() && decoded.decoder.is_complete());
    let arguments: String = decoded
        .chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0].as_object())
        .filter(|call| call["index"] == 0)
        .map(|call| call["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(to_value(arguments.as_bytes()), json!({"location": "San Francisco, CA"}));
    in_snapshots(|| insta::assert_json_snapshot!(decoded.chunks));
}

#[test]
fn decoder_converts_a_thinking_stream() {
    let decoded = decode(THINKING_STREAM);
    assert!(decoded.error.is_none() && decoded.decoder.is_complete());
    let reasoning: String =
        decoded.chunks.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "Let me solve this step by step:\n\n1. 27 * 453 = 12231");
    in_snapshots(|| insta::assert_json_snapshot!(decoded.chunks));
}

#[test]
fn decoder_gives_the_same_chunks_however_the_stream_is_split() {
    for stream in [TEXT_STREAM, TOOL_STREAM, THINKING_STREAM] {
        let whole = decode(stream).chunks;
        let bytes = stream.as_bytes();
        for at in 0..=bytes.len() {
            let split = decode_events(&events_of(&[&bytes[..at], &bytes[at..]]));
            assert_eq!(split.chunks, whole, "split at {at}");
            assert!(split.decoder.is_complete());
        }
        let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_events(&events_of(&pieces)).chunks, whole);
    }
}

#[test]
fn truncated_streams_still_report_usage() {
    // Cut before message_stop: output tokens known, not complete.
    let cut = TEXT_STREAM.find("event: message_stop").unwrap();
    let decoded = decode(&TEXT_STREAM[..cut]);
    assert!(decoded.error.is_none());
    assert!(!decoded.decoder.is_complete());
    assert_eq!(decoded.decoder.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((38, 15)));
    assert!(decoded.chunks.iter().all(|c| c.get("usage").is_none()), "no usage chunk before message_stop");
    // Cut before message_delta: only message_start's count.
    let cut = TEXT_STREAM.find("event: message_delta").unwrap();
    let decoded = decode(&TEXT_STREAM[..cut]);
    assert_eq!(decoded.decoder.usage().map(|u| (u.prompt_tokens, u.completion_tokens)), Some((38, 1)));
    assert!(!decoded.decoder.is_complete());
    // Nothing reported at all.
    let decoded = decode("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    assert_eq!(decoded.decoder.usage(), None);
    assert!(decoded.chunks.is_empty());
}

#[test]
fn decoder_reports_errors_and_skips_what_it_does_not_know() {
    let start = TEXT_STREAM.split("\n\n").next().unwrap().to_owned() + "\n\n";
    let cases = [
        ("event: content_block_delta\ndata: {not json\n\n", "not JSON"),
        ("event: content_block_delta\ndata: [1]\n\n", "not a JSON object"),
        (
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
            "Overloaded",
        ),
        ("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", "never started"),
        ("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", "index"),
        ("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"input\":{}}}\n\n", "tool_use"),
        ("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":5}}\n\n", "stop_reason"),
        ("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":\"many\"}}\n\n", "usage"),
        ("event: message_start\ndata: {\"type\":\"message_start\"}\n\n", "message"),
    ];
    for (event, expected) in cases {
        let decoded = decode(&(start.clone() + event));
        match decoded.error {
            Some(TranscodeError::Upstream(message)) => assert!(message.contains(expected), "{message} / {event}"),
            other => panic!("{event}: {other:?}"),
        }
    }
    // A text delta on a tool block is not the documented shape.
    let tool_start = TOOL_STREAM.split("\n\n").take(6).collect::<Vec<_>>().join("\n\n") + "\n\n";
    let wrong = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n";
    assert!(decode(&(tool_start + wrong)).error.is_some());
    // Unknown events and deltas are skipped.
    let future = start
        + "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n"
        + "event: brand_new_event\ndata: {\"type\":\"brand_new_event\",\"x\":1}\n\n";
    let decoded = decode(&future);
    assert!(decoded.error.is_none());
    assert_eq!(decoded.chunks.len(), 1, "only the role chunk");
}

// ---------------------------------------------------------------------------------------

// Stream encoder
// ---------------------------------------------------------------------------------------

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
           "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                     "prompt_tokens_details": {"cached_tokens": 8}}})
}

#[test]
fn encoder_writes_a_text_stream() {
    let chunks = [
        hub_chunk(json!({"role": "assistant", "content": ""}), None),
        hub_chunk(json!({"content": "Hello"}), None),
        hub_chunk(json!({"content": " there"}), None),
        hub_chunk(json!({}), Some("stop")),
        usage_chunk(),
    ];
    let stream = encode(&chunks, None);
    in_snapshots(|| insta::assert_snapshot!(stream));
    let decoded = decode(&stream);
    assert!(decoded.error.is_none() && decoded.decoder.is_complete());
    assert_eq!(
        decoded.decoder.usage(),
        Some(Usage { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42, cached_tokens: 8 })
    );
}

#[test]
fn encoder_writes_tool_calls_and_thinking() {
    let chunks = [
        hub_chunk(json!({"role": "assistant", "reasoning_content": "Weather "}), None),
        hub_chunk(json!({"reasoning_content": "needed."}), None),
        hub_chunk(json!({"content": "Checking."}), None),
        hub_chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        hub_chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None),
        hub_chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None),
        hub_chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
            None,
        ),
        hub_chunk(json!({}), Some("tool_calls")),
    ];
    let stream = encode(&chunks, None);
    in_snapshots(|| insta::assert_snapshot!(stream));
    // Reading it back gives the same reasoning, text and calls.
    let decoded = decode(&stream);
    assert!(decoded.error.is_none() && decoded.decoder.is_complete());
    let delta_text = |key: &str| -> String {
        decoded.chunks.iter().filter_map(|c| c["choices"][0]["delta"][key].as_str()).collect()
    };
    assert_eq!(delta_text("reasoning_content"), "Weather needed.");
    assert_eq!(delta_text("content"), "Checking.");
    let finish: Vec<&Value> =
        decoded.chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    let names: Vec<&str> = decoded
        .chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["get_weather", "get_time"]);
}

#[test]
fn decoder_then_encoder_reproduces_anthropic_streams() {
    for stream in [TEXT_STREAM, TOOL_STREAM, THINKING_STREAM] {
        let decoded = decode(stream);
        let again = decode(&encode(&decoded.chunks, None));
        assert!(again.error.is_none() && again.decoder.is_complete());
        let strip =
            |chunks: &[Value]| -> Vec<Value> { chunks.iter().map(|c| json!([c["choices"], c["usage"]])).collect() };
        assert_eq!(strip(&again.chunks), strip(&decoded.chunks));
        assert_eq!(again.decoder.usage(), decoded.decoder.usage());
    }
}

#[test]
fn encoder_ends_correctly_without_a_finish_reason_or_usage() {
    let stream = encode(&[hub_chunk(json!({"content": "partial"}), None)], None);
    let events = events_of(&[stream.as_bytes()]);
    let names: Vec<&str> = events.iter().map(|e| e.event_name().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let delta = to_value(&events[4].data);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"], json!({"output_tokens": 0}));
    // With nothing at all, still a whole (empty) message.
    let names: Vec<String> =
        events_of(&[encode(&[], None).as_bytes()]).iter().map(|e| e.event_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
}

#[test]
fn encoder_fail_closes_the_block_and_sends_an_error_once() {
    let mut encoder = StreamEncoder::new("gpt-4o", "msg_x");
    let mut out = Vec::new();
    encoder.on_chunk(&hub_chunk(json!({"content": "Hel"}), None), &mut out);
    encoder.fail("upstream connection reset", &mut out);
    encoder.fail("again", &mut out);
    encoder.finish(&mut out);
    encoder.on_chunk(&hub_chunk(json!({"content": "late"}), None), &mut out);
    let text: String = out.iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
    let events = events_of(&[text.as_bytes()]);
    let names: Vec<&str> = events.iter().map(|e| e.event_name().unwrap()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "error"]);
    assert_eq!(
        to_value(&events[4].data),
        json!({"type": "error", "error": {"type": "api_error", "message": "upstream connection reset"}})
    );
    assert_eq!(to_value(&events[0].data)["message"]["id"], "msg_x");
    // The decoder reads the error event as the upstream's error.
    assert_eq!(decode(&text).error, Some(TranscodeError::Upstream("upstream connection reset".into())));
}

// ---------------------------------------------------------------------------------------
