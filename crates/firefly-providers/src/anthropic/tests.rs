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
// Anthropic client request → hub
// ---------------------------------------------------------------------------------------

fn full_anthropic_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are a weather assistant."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these pictures, and the weather in SF?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAh"},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "A cat. Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": true, "content": [
                    {"type": "text", "text": "clock unavailable"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/clock.png"}}
                ]},
                {"type": "text", "text": "Thanks!"}
            ]},
            {"role": "assistant", "content": "You're welcome."}
        ],
        "tools": [{
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
        }, {
            "name": "get_time",
            "input_schema": {"type": "object", "properties": {}}
        }],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "user-42"},
        "stream": true
    })
}

#[test]
fn anthropic_request_becomes_a_hub_request_block_by_block() {
    let body = serde_json::to_vec(&full_anthropic_request()).unwrap();
    let hub = request_to_openai(&body).unwrap();
    let roles: Vec<&str> = hub["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    // Two tool results → two tool messages, in order; the tool result's image and the
    // user's text follow them.
    assert_eq!(roles, ["system", "user", "assistant", "tool", "tool", "user", "assistant"]);
    assert_eq!(hub["messages"][0]["content"], "You are a weather assistant.\n\nBe brief.");
    assert_eq!(hub["messages"][1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(hub["messages"][2]["tool_calls"][0]["function"]["arguments"], r#"{"location":"San Francisco, CA"}"#);
    assert_eq!(hub["messages"][4]["tool_call_id"], "toolu_01B");
    assert_eq!(hub["tool_choice"], "required");
    assert_eq!(hub["parallel_tool_calls"], false);
    assert_eq!(hub["stream_options"]["include_usage"], true);
    assert!(hub.get("top_k").is_none() && hub.get("thinking").is_none());
    insta::assert_json_snapshot!(hub);
}

#[test]
fn anthropic_string_content_and_minimal_requests() {
    let hub = request_to_openai(
        br#"{"model":"claude-haiku-4-5","max_tokens":1,"messages":[{"role":"user","content":"Hi"}],"stream":false}"#,
    )
    .unwrap();
    assert_eq!(
        hub,
        json!({"model": "claude-haiku-4-5", "max_tokens": 1, "stream": false,
               "messages": [{"role": "user", "content": "Hi"}]})
    );
    // An empty system string adds no message; a lone text block is a string.
    let hub = request_to_openai(
        br#"{"model":"m","max_tokens":5,"system":"","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}"#,
    )
    .unwrap();
    assert_eq!(hub["messages"], json!([{"role": "user", "content": "x"}]));
}

#[test]
fn anthropic_tool_choice_maps_to_openai() {
    let cases = [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (
            json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
            json!({"type": "function", "function": {"name": "get_weather"}}),
            Some(false),
        ),
    ];
    for (choice, expected, parallel) in cases {
        let mut request = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
        request["tool_choice"] = choice.clone();
        let hub = request_to_openai(&serde_json::to_vec(&request).unwrap()).unwrap();
        assert_eq!(hub["tool_choice"], expected, "{choice}");
        assert_eq!(hub.get("parallel_tool_calls").and_then(Value::as_bool), parallel, "{choice}");
    }
}

#[test]
fn anthropic_requests_are_validated_at_the_edge() {
    let ok_messages = r#"[{"role":"user","content":"x"}]"#;
    let cases: Vec<(String, Option<&str>)> = vec![
        ("not json".into(), None),
        ("[1]".into(), None),
        (format!(r#"{{"max_tokens":1,"messages":{ok_messages}}}"#), Some("model")),
        (format!(r#"{{"model":"","max_tokens":1,"messages":{ok_messages}}}"#), Some("model")),
        (format!(r#"{{"model":7,"max_tokens":1,"messages":{ok_messages}}}"#), Some("model")),
        (format!(r#"{{"model":"m","messages":{ok_messages}}}"#), Some("max_tokens")),
        (format!(r#"{{"model":"m","max_tokens":0,"messages":{ok_messages}}}"#), Some("max_tokens")),
        (format!(r#"{{"model":"m","max_tokens":-5,"messages":{ok_messages}}}"#), Some("max_tokens")),
        (format!(r#"{{"model":"m","max_tokens":1.5,"messages":{ok_messages}}}"#), Some("max_tokens")),
        (format!(r#"{{"model":"m","max_tokens":"10","messages":{ok_messages}}}"#), Some("max_tokens")),
        (
            format!(r#"{{"model":"m","max_tokens":1e400,"messages":{ok_messages}}}"#),
            None, // serde_json refuses the number: not JSON we can read
        ),
        (r#"{"model":"m","max_tokens":1}"#.into(), Some("messages")),
        (r#"{"model":"m","max_tokens":1,"messages":[]}"#.into(), Some("messages")),
        (r#"{"model":"m","max_tokens":1,"messages":{}}"#.into(), Some("messages")),
        (r#"{"model":"m","max_tokens":1,"messages":[3]}"#.into(), Some("messages[0]")),
        (r#"{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}"#.into(), Some("messages[0].role")),
        (r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":5}]}"#.into(), Some("messages[0].content")),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}"#.into(),
            Some("messages[0].content[0].type"),
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"no type"}]}]}"#.into(),
            Some("messages[0].content[0].type"),
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"image","source":{}}]}]}"#
                .into(),
            Some("messages[0].content[0].type"),
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#.into(),
            Some("messages[0].content[0].source.type"),
        ),
        (
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#.into(),
            Some("messages[0].content[0]"),
        ),
        (
            format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"tools":[{{"type":"web_search_20250305","name":"web_search"}}]}}"#),
            Some("tools[0].type"),
        ),
        (
            format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"tools":[{{"name":"f"}}]}}"#),
            Some("tools[0].input_schema"),
        ),
        (
            format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"tool_choice":{{"type":"tool"}}}}"#),
            Some("tool_choice.name"),
        ),
        (format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"stream":"yes"}}"#), Some("stream")),
        (format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"system":[{{"type":"image"}}]}}"#), Some("system[0]")),
        (format!(r#"{{"model":"m","max_tokens":1,"messages":{ok_messages},"stop_sequences":[1]}}"#), Some("stop_sequences")),
    ];
    for (body, param) in cases {
        let error = request_to_openai(body.as_bytes()).expect_err(&body);
        assert!(!error.to_string().is_empty());
        assert_eq!(param_of(error).as_deref(), param, "{body}");
    }
}

#[test]
fn huge_numbers_do_not_panic() {
    let body = format!(r#"{{"model":"m","max_tokens":{},"messages":[{{"role":"user","content":"x"}}]}}"#, u64::MAX);
    assert_eq!(request_to_openai(body.as_bytes()).unwrap()["max_tokens"], u64::MAX);
    let response = format!(
        r#"{{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","stop_reason":"end_turn","usage":{{"input_tokens":{m},"output_tokens":{m},"cache_read_input_tokens":{m},"cache_creation_input_tokens":{m}}}}}"#,
        m = u64::MAX
    );
    let hub = response_to_openai(response.as_bytes()).unwrap();
    assert_eq!(hub["usage"]["total_tokens"], u64::MAX);
}

// ---------------------------------------------------------------------------------------
// Hub → Anthropic upstream request
// ---------------------------------------------------------------------------------------

fn full_hub_request() -> Value {
    json!({
        "model": "claude-via-openai",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe these."},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg==", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}}
            ]},
            {"role": "user", "content": "And the weather in Paris?"},
            {"role": "assistant", "content": null, "reasoning_content": "thinking...", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:00"}]},
            {"role": "user", "content": "Summarize."}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}, {"type": "function", "function": {"name": "get_time"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
        "max_completion_tokens": 700,
        "max_tokens": 5,
        "stop": "END",
        "temperature": 1.5,
        "top_p": 0.8,
        "user": "u-1",
        "n": 1,
        "seed": 7,
        "presence_penalty": 0.2,
        "stream": true,
        "stream_options": {"include_usage": true}
    })
}

#[test]
fn hub_request_becomes_an_anthropic_request() {
    let body = request_from_openai(&full_hub_request(), "claude-sonnet-4-5", 4096).unwrap();
    let request = to_value(&body);
    assert_eq!(request["model"], "claude-sonnet-4-5");
    assert_eq!(request["max_tokens"], 700);
    assert_eq!(request["temperature"], 1.0);
    assert_eq!(request["stop_sequences"], json!(["END"]));
    assert_eq!(request["metadata"]["user_id"], "u-1");
    assert_eq!(request["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
    assert!(request.get("stream_options").is_none() && request.get("n").is_none());
    // Alternation: the two user messages merge; the tool results and the last user text
    // are one user turn.
    let roles: Vec<&str> =
        request["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(request["messages"][1]["content"][1]["input"], json!({}));
    assert_eq!(request["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(request["messages"][2]["content"][2], json!({"type": "text", "text": "Summarize."}));
    assert_eq!(request["system"].as_array().map(Vec::len), Some(3));
    insta::assert_json_snapshot!(request);
}

#[test]
fn hub_request_defaults_and_simple_shapes() {
    let hub = json!({"model": "x", "messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b"],
                     "max_tokens": 9, "tool_choice": "required", "tools": [], "stream": false});
    let request = to_value(&request_from_openai(&hub, "claude-haiku-4-5", 4096).unwrap());
    assert_eq!(
        request,
        json!({"model": "claude-haiku-4-5", "max_tokens": 9, "stream": false, "stop_sequences": ["a", "b"],
               "tool_choice": {"type": "any"},
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})
    );
    let hub = json!({"model": "x", "messages": [{"role": "user", "content": "Hi"}],
                     "response_format": {"type": "json_object"},
                     "tool_choice": {"type": "function", "function": {"name": "f"}}});
    let request = to_value(&request_from_openai(&hub, "c", 4096).unwrap());
    assert_eq!(request["max_tokens"], 4096);
    assert_eq!(request["tool_choice"], json!({"type": "tool", "name": "f"}));
    assert!(request["system"][0]["text"].as_str().unwrap().contains("JSON object"));
    // A tool result with no output has no content; an empty assistant turn is left out.
    let hub = json!({"model": "x", "messages": [
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
        {"role": "assistant", "content": ""}
    ]});
    let request = to_value(&request_from_openai(&hub, "c", 10).unwrap());
    assert_eq!(request["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(request["messages"][1]["content"], json!([{"type": "tool_result", "tool_use_id": "c1"}]));
}

#[test]
fn hub_requests_anthropic_cannot_take_are_rejected() {
    let user = json!([{"role": "user", "content": "x"}]);
    let with = |key: &str, value: Value| {
        let mut hub = json!({"model": "m", "messages": user});
        hub[key] = value;
        hub
    };
    let call = |arguments: &str| {
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}]})
    };
    let cases = [
        (json!([]), None),
        (with("n", json!(2)), Some("n")),
        (with("max_completion_tokens", json!(0)), Some("max_completion_tokens")),
        (with("max_tokens", json!("lots")), Some("max_tokens")),
        (with("stop", json!(5)), Some("stop")),
        (with("temperature", json!("hot")), Some("temperature")),
        (with("tool_choice", json!("sometimes")), Some("tool_choice")),
        (with("tools", json!([{"type": "custom", "custom": {"name": "x"}}])), Some("tools[0].type")),
        (with("response_format", json!({"type": "yaml"})), Some("response_format.type")),
        (json!({"model": "m"}), Some("messages")),
        (json!({"model": "m", "messages": []}), Some("messages")),
        (json!({"model": "m", "messages": [{"role": "system", "content": "only system"}]}), Some("messages")),
        (json!({"model": "m", "messages": [{"role": "function", "content": "x"}]}), Some("messages[0].role")),
        (call("{not json"), Some("messages[0].tool_calls[0].function.arguments")),
        (call("[1,2]"), Some("messages[0].tool_calls[0].function.arguments")),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            Some("messages[0].content[0].type"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
            Some("messages[0].content[0].image_url.url"),
        ),
        (json!({"model": "m", "messages": [{"role": "tool", "content": "orphan"}]}), Some("messages[0].tool_call_id")),
    ];
    for (hub, param) in cases {
        let error = request_from_openai(&hub, "claude", 100).expect_err(&hub.to_string());
        assert_eq!(param_of(error).as_deref(), param, "{hub}");
    }
}

#[test]
fn tool_round_trip_keeps_ids_inputs_and_results() {
    let body = serde_json::to_vec(&full_anthropic_request()).unwrap();
    let hub = request_to_openai(&body).unwrap();
    let back = to_value(&request_from_openai(&hub, "claude-sonnet-4-5", 4096).unwrap());
    let original = full_anthropic_request();
    // Thinking is dropped; text and tool_use blocks come back as they were.
    let assistant = &back["messages"][1]["content"];
    assert_eq!(assistant[0], json!({"type": "text", "text": "A cat. Let me check."}));
    assert_eq!(assistant[1], original["messages"][1]["content"][3]);
    assert_eq!(assistant[2], original["messages"][1]["content"][4]);
    let results = &back["messages"][2]["content"];
    assert_eq!(results[0], json!({"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 degrees"}));
    assert_eq!(results[1]["tool_use_id"], "toolu_01B");
    assert_eq!(results[2]["type"], "image");
    assert_eq!(results[2]["source"], json!({"type": "url", "url": "https://example.com/clock.png"}));
    assert_eq!(results[3], json!({"type": "text", "text": "Thanks!"}));
    assert_eq!(back["tools"][0]["input_schema"], original["tools"][0]["input_schema"]);
    assert_eq!(back["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(back["system"][0]["text"], "You are a weather assistant.\n\nBe brief.");
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
    let image = &back["messages"][0]["content"][1];
    assert_eq!(image["source"], original["messages"][0]["content"][1]["source"]);
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

fn anthropic_message(content: Value, stop_reason: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": "claude-sonnet-4-5-20250929",
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
    }))
    .unwrap()
}

#[test]
fn anthropic_response_becomes_a_chat_completion() {
    let body = anthropic_message(
        json!([
            {"type": "thinking", "thinking": "The user asks about weather.", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "EmwK"},
            {"type": "text", "text": "I'll check "},
            {"type": "text", "text": "the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
        ]),
        json!("tool_use"),
    );
    let mut hub = response_to_openai(&body).unwrap();
    assert!(hub["created"].as_u64().unwrap() > 1_600_000_000);
    hub["created"] = 0.into();
    assert_eq!(
        crate::openai::Usage::from_response(&serde_json::to_vec(&hub).unwrap()),
        Some(Usage { prompt_tokens: 3195, completion_tokens: 503, total_tokens: 3698, cached_tokens: 1000 })
    );
    assert_eq!(hub["choices"][0]["message"]["tool_calls"].as_array().map(Vec::len), Some(1));
    insta::assert_json_snapshot!(hub);
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    let cases = [
        (json!("end_turn"), "stop"),
        (json!("stop_sequence"), "stop"),
        (json!("pause_turn"), "stop"),
        (json!("max_tokens"), "length"),
        (json!("tool_use"), "tool_calls"),
        (json!("refusal"), "content_filter"),
        (json!(null), "stop"),
    ];
    for (reason, finish) in cases {
        let body = anthropic_message(json!([{"type": "text", "text": "x"}]), reason.clone());
        let hub = response_to_openai(&body).unwrap();
        assert_eq!(hub["choices"][0]["finish_reason"], finish, "{reason}");
        assert_eq!(hub["choices"][0]["message"]["content"], "x");
    }
}

#[test]
fn invalid_anthropic_responses_are_upstream_errors() {
    let cases: [&[u8]; 5] = [
        b"<html>bad gateway</html>",
        b"[]",
        br#"{"type":"message","content":"text"}"#,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        br#"{"type":"message","content":[{"type":"tool_use","input":{}}]}"#,
    ];
    for body in cases {
        let error = response_to_openai(body).expect_err(&String::from_utf8_lossy(body));
        assert!(matches!(error, TranscodeError::Upstream(_)), "{error:?}");
    }
    assert_eq!(
        response_to_openai(cases[3]).unwrap_err(),
        TranscodeError::Upstream("Overloaded".into()),
        "the upstream's message is kept"
    );
}

fn hub_completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0}}
    })
}

#[test]
fn chat_completion_becomes_an_anthropic_message() {
    let hub = hub_completion(
        json!({"role": "assistant", "content": "Checking.", "reasoning_content": "Need the weather tool.",
               "tool_calls": [{"id": "call_abc", "type": "function",
                               "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston\"}"}}]}),
        "tool_calls",
    );
    let message = to_value(&response_from_openai(&hub).unwrap());
    assert_eq!(message["id"], "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(message["usage"]["input_tokens"], 93);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 1024);
    insta::assert_json_snapshot!(message);
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ] {
        let hub = hub_completion(json!({"role": "assistant", "content": "x"}), finish);
        let message = to_value(&response_from_openai(&hub).unwrap());
        assert_eq!(message["stop_reason"], stop, "{finish}");
        assert_eq!(message["content"], json!([{"type": "text", "text": "x"}]));
    }
}

#[test]
fn invalid_chat_completions_are_upstream_errors() {
    let bad_arguments = hub_completion(
        json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}),
        "tool_calls",
    );
    for hub in [json!([]), json!({"choices": []}), json!({"id": "x"}), bad_arguments] {
        assert!(matches!(response_from_openai(&hub), Err(TranscodeError::Upstream(_))), "{hub}");
    }
}

#[test]
fn response_round_trip_keeps_text_tools_and_usage() {
    let body = serde_json::to_vec(&json!({
        "id": "msg_01RT", "type": "message", "role": "assistant", "model": "claude-opus-4-1",
        "content": [{"type": "text", "text": "Sure."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "rust", "n": 3}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 0}
    }))
    .unwrap();
    let original = to_value(&body);
    let back = to_value(&response_from_openai(&response_to_openai(&body).unwrap()).unwrap());
    for key in ["id", "model", "content", "stop_reason", "stop_sequence", "usage"] {
        assert_eq!(back[key], original[key], "{key}");
    }
}

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
    insta::assert_json_snapshot!(decoded.chunks);
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
    insta::assert_json_snapshot!(decoded.chunks);
}

#[test]
fn decoder_converts_a_thinking_stream() {
    let decoded = decode(THINKING_STREAM);
    assert!(decoded.error.is_none() && decoded.decoder.is_complete());
    let reasoning: String =
        decoded.chunks.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "Let me solve this step by step:\n\n1. 27 * 453 = 12231");
    insta::assert_json_snapshot!(decoded.chunks);
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
    insta::assert_snapshot!(stream);
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
    insta::assert_snapshot!(stream);
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
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn error_bodies_and_types() {
    assert_eq!(
        to_value(&error_body("invalid_request_error", "max_tokens: Field required")),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
    );
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(error_type_for_status(status), kind, "{status}");
    }
}

#[test]
fn errors_pass_between_formats_with_their_message() {
    let openai = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    assert_eq!(
        to_value(&openai_error_to_anthropic(400, openai)),
        json!({"type": "error", "error": {"type": "invalid_request_error",
               "message": "This model's maximum context length is 128000 tokens."}})
    );
    assert_eq!(to_value(&openai_error_to_anthropic(429, b"slow down"))["error"]["message"], "slow down");
    assert_eq!(to_value(&openai_error_to_anthropic(429, b"slow down"))["error"]["type"], "rate_limit_error");
    let empty = to_value(&openai_error_to_anthropic(502, b""));
    assert_eq!(empty["error"]["type"], "api_error");
    assert!(empty["error"]["message"].as_str().unwrap().contains("502"));
    let long = vec![b'x'; 5000];
    assert!(to_value(&openai_error_to_anthropic(500, &long))["error"]["message"].as_str().unwrap().len() < 600);

    let anthropic = br#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#;
    assert_eq!(
        to_value(&anthropic_error_to_openai(404, anthropic)),
        json!({"error": {"message": "model: claude-9", "type": "not_found_error", "param": null, "code": null}})
    );
    assert_eq!(to_value(&anthropic_error_to_openai(529, b"\xff\xfe"))["error"]["type"], "overloaded_error");
}

// ---------------------------------------------------------------------------------------
// Adapter
// ---------------------------------------------------------------------------------------

fn ctx<'a>(base_url: &'a str, api_version: Option<&'a str>, key: &'a str) -> RequestContext<'a> {
    RequestContext { base_url, api_version, key, model: Some("claude-sonnet-4-5"), stream: true }
}

#[test]
fn adapter_builds_anthropic_urls_and_headers() {
    let adapter = AnthropicAdapter;
    assert_eq!(adapter.name(), "anthropic");
    assert_eq!(adapter.wire_format(), WireFormat::Anthropic);
    for base in [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
        "https://api.anthropic.com/v1/",
    ] {
        let request = adapter.build(Operation::ChatCompletions, &ctx(base, None, "sk-ant-test")).unwrap();
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.url.as_str(), "https://api.anthropic.com/v1/messages", "{base}");
        assert_eq!(request.headers["x-api-key"], "sk-ant-test");
        assert!(request.headers["x-api-key"].is_sensitive());
        assert_eq!(request.headers["anthropic-version"], ANTHROPIC_VERSION);
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(request.headers.get("authorization").is_none());
    }
    let count =
        adapter.build(Operation::CountTokens, &ctx("https://proxy.example/anthropic", Some("2024-01-01"), "")).unwrap();
    assert_eq!(count.url.as_str(), "https://proxy.example/anthropic/v1/messages/count_tokens");
    assert_eq!(count.headers["anthropic-version"], "2024-01-01");
    assert!(count.headers.get("x-api-key").is_none());
    let models = adapter.build(Operation::ListModels, &ctx("https://api.anthropic.com", Some(" "), "k")).unwrap();
    assert_eq!((models.method, models.url.as_str()), (http::Method::GET, "https://api.anthropic.com/v1/models"));
    assert!(models.headers.get("content-type").is_none());
    assert_eq!(models.headers["anthropic-version"], ANTHROPIC_VERSION);

    for op in
        [Operation::Embeddings, Operation::ImageGenerations, Operation::AudioSpeech, Operation::AudioTranscriptions]
    {
        assert_eq!(
            adapter.build(op, &ctx("https://api.anthropic.com", None, "k")).unwrap_err(),
            BuildError::Unsupported { provider: "anthropic", operation: op }
        );
    }
    assert_eq!(
        adapter.build(Operation::ChatCompletions, &ctx("https://a.b", None, "bad\nkey")).unwrap_err(),
        BuildError::InvalidKey
    );
    assert!(matches!(
        adapter.build(Operation::ChatCompletions, &ctx("ftp://a.b", None, "k")),
        Err(BuildError::InvalidBaseUrl { .. })
    ));
    assert!(crate::Registry::default().get("anthropic").is_some());
}

#[test]
fn adapter_classifies_anthropic_errors() {
    let body = |kind: &str, message: &str| error_body(kind, message);
    let mut retry = HeaderMap::new();
    retry.insert("retry-after", "7".parse().unwrap());
    let seven = UpstreamFailure::Retryable { retry_after: Some(std::time::Duration::from_secs(7)) };
    let none = HeaderMap::new();
    let cases = [
        (400, body("invalid_request_error", "max_tokens: Field required"), &none, UpstreamFailure::Fatal),
        (
            400,
            body(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            ),
            &none,
            UpstreamFailure::OutOfBalance,
        ),
        (402, body("billing_error", "payment required"), &none, UpstreamFailure::OutOfBalance),
        (401, body("authentication_error", "invalid x-api-key"), &none, UpstreamFailure::AuthFailed),
        (403, body("permission_error", "no access"), &none, UpstreamFailure::AuthFailed),
        (404, body("not_found_error", "model: claude-x"), &none, UpstreamFailure::Fatal),
        (413, body("request_too_large", "too large"), &none, UpstreamFailure::Fatal),
        (429, body("rate_limit_error", "slow down"), &retry, seven),
        (500, body("api_error", "internal"), &none, UpstreamFailure::Retryable { retry_after: None }),
        (529, body("overloaded_error", "Overloaded"), &retry, seven),
        (503, b"<html>".to_vec(), &none, UpstreamFailure::Retryable { retry_after: None }),
        (418, body("overloaded_error", "Overloaded"), &none, UpstreamFailure::Retryable { retry_after: None }),
        (400, b"not json".to_vec(), &none, UpstreamFailure::Fatal),
        (400, body("invalid_request_error", "This organization has been disabled."), &none, UpstreamFailure::AuthFailed),
    ];
    for (status, body, headers, expected) in cases {
        assert_eq!(
            AnthropicAdapter.classify(status, headers, &body),
            expected,
            "{status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}
