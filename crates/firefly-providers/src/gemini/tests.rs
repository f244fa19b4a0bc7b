use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use super::*;
use crate::adapter::{Adapter, BuildError, Operation, Registry, RequestContext, UpstreamFailure, WireFormat};
use crate::openai::Usage;
use crate::sse::{SseEvent, SseParser};
use crate::transcode::{hub_usage, ChunkDecoder, TranscodeError};

// ---------------------------------------------------------------- helpers

fn gemini_request(hub: Value) -> Value {
    let body = request_from_openai(&hub).unwrap_or_else(|e| panic!("{e:?} for {hub}"));
    serde_json::from_slice(&body).unwrap()
}

fn invalid_param(hub: &Value) -> Option<String> {
    match request_from_openai(hub) {
        Err(TranscodeError::InvalidRequest { param, .. }) => param,
        other => panic!("expected InvalidRequest for {hub}, got {other:?}"),
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// `created` is the clock's: zeroed for snapshots and comparisons.
fn stable(mut value: Value) -> Value {
    if value.get("created").is_some() {
        value["created"] = json!(0);
    }
    value
}

fn events(bytes: &[u8], split: Option<usize>) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = match split {
        Some(at) => vec![&bytes[..at], &bytes[at..]],
        None => vec![bytes],
    };
    for piece in pieces {
        parser.push_bytes(Bytes::copy_from_slice(piece));
        while let Some(event) = parser.next_event().unwrap() {
            out.push(event);
        }
    }
    parser.finish().unwrap();
    out
}

/// Runs a whole transcript through a fresh decoder.
fn decode_with(decoder: &mut StreamDecoder, transcript: &str, split: Option<usize>) -> Vec<Value> {
    let mut chunks = Vec::new();
    for event in events(transcript.as_bytes(), split) {
        decoder.on_event(&event, &mut chunks).unwrap();
    }
    chunks.into_iter().map(stable).collect()
}

fn decoder() -> StreamDecoder {
    StreamDecoder::new("chatcmpl-test".to_owned(), "gemini-2.5-flash".to_owned())
}

fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect()
}

fn ctx<'a>(base_url: &'a str, key: &'a str, model: Option<&'a str>, stream: bool) -> RequestContext<'a> {
    RequestContext { base_url, api_version: None, key, model, stream }
}

// ---------------------------------------------------------------- requests

#[test]
fn request_maps_every_message_and_part_type() {
    let hub = json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=large"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
            ]},
            {"role": "assistant", "content": "Let me check the weather.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\":21}"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot."}]}
        ],
        "max_completion_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "n": 1,
        "seed": 7,
        "stream": true,
        "stream_options": {"include_usage": true},
        "reasoning_effort": "low",
        "user": "u-1"
    });
    insta::assert_json_snapshot!(gemini_request(hub));
}

#[test]
fn consecutive_turns_of_one_role_are_merged() {
    let body = gemini_request(json!({"messages": [
        user("a"),
        user("b"),
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d", "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "x", "content": "ok"},
        user("e"),
    ]}));
    let contents = body["contents"].as_array().unwrap();
    let shape: Vec<(&str, usize)> =
        contents.iter().map(|c| (c["role"].as_str().unwrap(), c["parts"].as_array().unwrap().len())).collect();
    assert_eq!(shape, [("user", 2), ("model", 3), ("user", 2)]);
    assert_eq!(contents[2]["parts"][0]["functionResponse"]["name"], "f");
    assert_eq!(contents[2]["parts"][1]["text"], "e");
    // Empty messages add nothing; a conversation with no content at all is refused.
    let body = gemini_request(json!({"messages": [user(""), user("x"), {"role": "assistant", "content": null}]}));
    assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "x"}]}]));
    assert!(body.get("systemInstruction").is_none());
}

#[test]
fn tool_results_find_their_function_by_call_id() {
    let call = |id: &str, name: &str| {
        json!({"role": "assistant", "tool_calls": [
            {"id": id, "type": "function", "function": {"name": name, "arguments": "{\"q\":1}"}}
        ]})
    };
    let body = gemini_request(json!({"messages": [
        user("go"),
        call("call_0", "search"),
        {"role": "tool", "tool_call_id": "call_0", "content": "r1"},
        // The next response numbers its calls from 0 again: the latest call wins.
        call("call_0", "fetch"),
        {"role": "tool", "tool_call_id": "call_0", "content": "r2"},
    ]}));
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents[1]["parts"][0]["functionCall"], json!({"name": "search", "args": {"q": 1}}));
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "skip_thought_signature_validator");
    assert_eq!(contents[2]["parts"][0]["functionResponse"], json!({"name": "search", "response": {"result": "r1"}}));
    assert_eq!(contents[4]["parts"][0]["functionResponse"]["name"], "fetch");
    // Only the first call of a turn carries the signature.
    let body = gemini_request(json!({"messages": [user("go"), {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    ]}]}));
    let parts = body["contents"][1]["parts"].as_array().unwrap();
    assert!(parts[0].get("thoughtSignature").is_some());
    assert!(parts[1].get("thoughtSignature").is_none());
}

#[test]
fn tool_results_are_objects_for_gemini() {
    let cases = [
        ("{\"temp\":20}", json!({"temp": 20})),
        ("[1,2]", json!({"result": [1, 2]})),
        ("42", json!({"result": 42})),
        ("sunny", json!({"result": "sunny"})),
        ("", json!({"result": ""})),
    ];
    for (content, expected) in cases {
        let body = gemini_request(json!({"messages": [
            user("go"),
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": content},
        ]}));
        assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["response"], expected, "{content:?}");
    }
}

#[test]
fn invalid_requests_name_the_parameter() {
    let tool_turn = json!({"role": "assistant", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]});
    let with_args = |args: Value| {
        json!({"messages": [user("go"), {"role": "assistant", "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "f", "arguments": args}}
        ]}]})
    };
    let with = |key: &str, value: Value| {
        let mut hub = json!({"messages": [user("hi")]});
        hub[key] = value;
        hub
    };
    let image = |url: &str| json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]});
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!([1]), None),
        (json!({}), Some("messages")),
        (json!({"messages": null}), Some("messages")),
        (json!({"messages": "hi"}), Some("messages")),
        (json!({"messages": []}), Some("messages")),
        (json!({"messages": [{"role": "system", "content": "only a system prompt"}]}), Some("messages")),
        (json!({"messages": [1]}), Some("messages[0]")),
        (json!({"messages": [{"content": "x"}]}), Some("messages[0].role")),
        (json!({"messages": [{"role": "robot", "content": "x"}]}), Some("messages[0].role")),
        (json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}), Some("messages[0].role")),
        (json!({"messages": [{"role": "user", "content": 5}]}), Some("messages[0].content")),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}),
            Some("messages[0].content[0].type"),
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}),
            Some("messages[0].content[0].type"),
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}),
            Some("messages[0].content[0].text"),
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url"}]}]}),
            Some("messages[0].content[0].type"),
        ),
        (image("ftp://example.com/a.png"), Some("messages[0].content[0].image_url")),
        (image("data:image/png,rawbytes"), Some("messages[0].content[0].image_url")),
        (image("data:;base64,AAAA"), Some("messages[0].content[0].image_url")),
        (image("data:image/png;base64"), Some("messages[0].content[0].image_url")),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            Some("messages[0].content[0].image_url"),
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "ogg"}}]}]}),
            Some("messages[0].content[0].input_audio.format"),
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            Some("messages[0].content[0].file"),
        ),
        (with_args(json!("{not json")), Some("messages[1].tool_calls[0].function.arguments")),
        (with_args(json!("[1,2]")), Some("messages[1].tool_calls[0].function.arguments")),
        (with_args(json!({"a": 1})), Some("messages[1].tool_calls[0].function.arguments")),
        (
            json!({"messages": [user("go"), {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}),
            Some("messages[1].tool_calls[0].id"),
        ),
        (
            json!({"messages": [user("go"), {"role": "assistant", "tool_calls": [{"id": "1", "function": {}}]}]}),
            Some("messages[1].tool_calls[0].function.name"),
        ),
        (json!({"messages": [user("go"), {"role": "assistant", "tool_calls": {}}]}), Some("messages[1].tool_calls")),
        (
            json!({"messages": [user("go"), tool_turn.clone(), {"role": "tool", "tool_call_id": "2", "content": "x"}]}),
            Some("messages[2].tool_call_id"),
        ),
        (json!({"messages": [user("go"), {"role": "tool", "content": "x"}]}), Some("messages[1].tool_call_id")),
        (with("tools", json!({})), Some("tools")),
        (with("tools", json!([{"type": "web_search"}])), Some("tools[0].type")),
        (with("tools", json!([{"type": "function"}])), Some("tools[0].function")),
        (with("tools", json!([{"type": "function", "function": {"name": ""}}])), Some("tools[0].function.name")),
        (
            with("tools", json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}])),
            Some("tools[0].function.parameters"),
        ),
        (with("tool_choice", json!("sometimes")), Some("tool_choice")),
        (with("tool_choice", json!({"type": "function"})), Some("tool_choice.function.name")),
        (with("tool_choice", json!(3)), Some("tool_choice")),
        (with("max_tokens", json!(-1)), Some("max_tokens")),
        (with("max_completion_tokens", json!("10")), Some("max_completion_tokens")),
        (with("temperature", json!("hot")), Some("temperature")),
        (with("n", json!(1.5)), Some("n")),
        (with("stop", json!(5)), Some("stop")),
        (with("stop", json!(["a", 1])), Some("stop")),
        (with("seed", json!(1.5)), Some("seed")),
        (with("response_format", json!({"type": "yaml"})), Some("response_format.type")),
        (with("response_format", json!({})), Some("response_format.type")),
        (
            with("response_format", json!({"type": "json_schema", "json_schema": {"schema": 1}})),
            Some("response_format.json_schema.schema"),
        ),
        (with("functions", json!([{"name": "f"}])), Some("functions")),
        (with("function_call", json!("auto")), Some("function_call")),
    ];
    for (hub, param) in cases {
        assert_eq!(invalid_param(&hub).as_deref(), param, "{hub}");
    }
}

#[test]
fn tools_become_function_declarations_with_schemas_gemini_accepts() {
    let body = gemini_request(json!({
        "messages": [user("hi")],
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "strict": true,
                "parameters": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "city": {"type": "string", "description": "City", "examples": ["Paris"]},
                        "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                        "days": {"type": "integer", "minimum": 1, "exclusiveMaximum": 15},
                        "additionalProperties": {"type": "boolean"},
                        "tags": {"type": "array", "items": {"type": "string", "const": "x", "$comment": "c"}},
                        "place": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"lat": {"type": "number"}}, "additionalProperties": false}]}
                    },
                    "required": ["city"]
                }
            }},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "ping"}}
        ],
        "tool_choice": "required"
    }));
    insta::assert_json_snapshot!(body["tools"]);
    assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
    let text = body["tools"].to_string();
    for gone in
        ["$schema", "additionalProperties\":false", "examples", "exclusiveMaximum", "$comment", "strict", "oneOf"]
    {
        assert!(!text.contains(gone), "{gone} left in {text}");
    }
}

#[test]
fn tool_choice_modes() {
    let cases = [
        (json!("none"), json!({"mode": "NONE"})),
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("required"), json!({"mode": "ANY"})),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
        ),
    ];
    for (choice, expected) in cases {
        let body = gemini_request(json!({"messages": [user("hi")], "tool_choice": choice}));
        assert_eq!(body["toolConfig"]["functionCallingConfig"], expected, "{choice}");
    }
    let body = gemini_request(json!({"messages": [user("hi")], "tool_choice": null}));
    assert!(body.get("toolConfig").is_none());
}

#[test]
fn generation_config_mapping() {
    let config = |extra: Value| {
        let mut hub = json!({"messages": [user("hi")]});
        for (key, value) in extra.as_object().unwrap() {
            hub[key] = value.clone();
        }
        gemini_request(hub).get("generationConfig").cloned().unwrap_or(Value::Null)
    };
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
    let cases = [
        (json!({}), Value::Null),
        (json!({"max_tokens": 100}), json!({"maxOutputTokens": 100})),
        (json!({"max_tokens": 100, "max_completion_tokens": 50}), json!({"maxOutputTokens": 50})),
        (json!({"stop": "END"}), json!({"stopSequences": ["END"]})),
        (json!({"stop": ["a", "b"], "n": 2}), json!({"stopSequences": ["a", "b"], "candidateCount": 2})),
        (json!({"temperature": 0.7, "top_p": 1, "top_k": 40}), json!({"temperature": 0.7, "topP": 1, "topK": 40})),
        (json!({"presence_penalty": 0, "frequency_penalty": 0.5}), json!({"frequencyPenalty": 0.5})),
        (json!({"response_format": {"type": "text"}}), Value::Null),
        (json!({"response_format": {"type": "json_object"}}), json!({"responseMimeType": "application/json"})),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": schema}}}),
            json!({"responseMimeType": "application/json", "responseSchema": {"type": "object", "properties": {"a": {"type": "string"}}}}),
        ),
        (
            json!({"reasoning_effort": "high", "parallel_tool_calls": false, "logprobs": true, "functions": null}),
            Value::Null,
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(config(extra.clone()), expected, "{extra}");
    }
}

#[test]
fn remote_media_types_are_guessed_from_the_extension() {
    let cases = [
        ("https://x.test/a.PNG", "image/png"),
        ("https://x.test/a.jpeg", "image/jpeg"),
        ("https://x.test/a.gif?v=1#top", "image/gif"),
        ("http://x.test/doc.pdf", "application/pdf"),
        ("https://x.test/clip.mp4", "video/mp4"),
        ("https://x.test/a.dir/photo", "image/jpeg"),
        ("https://generativelanguage.googleapis.com/v1beta/files/abc-123", "image/jpeg"),
    ];
    for (url, mime) in cases {
        let body = gemini_request(json!({"messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": url}]}
        ]}));
        assert_eq!(body["contents"][0]["parts"][0]["fileData"], json!({"mimeType": mime, "fileUri": url}), "{url}");
    }
    let body = gemini_request(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;charset=x;base64,/9j/"}}
    ]}]}));
    assert_eq!(body["contents"][0]["parts"][0]["inlineData"], json!({"mimeType": "image/jpeg", "data": "/9j/"}));
}

#[test]
fn deep_schemas_are_refused_not_overflowed() {
    let mut schema = json!({"type": "string"});
    for _ in 0..100 {
        schema = json!({"type": "object", "properties": {"x": schema}});
    }
    let hub = json!({"messages": [user("hi")], "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]});
    assert_eq!(invalid_param(&hub).as_deref(), Some("tools[0].function.parameters"));
}

#[test]
fn odd_values_anywhere_never_panic() {
    let odd = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!([null]),
        json!({}),
        json!({"type": null}),
    ];
    let keys = ["messages", "tools", "tool_choice", "response_format", "stop", "n", "max_tokens", "temperature"];
    for key in keys {
        for value in &odd {
            let mut hub = json!({"messages": [user("hi")]});
            hub[key] = value.clone();
            let _ = request_from_openai(&hub);
            let mut hub = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]});
            hub["messages"][0]["content"][0][key] = value.clone();
            hub["messages"][0][key] = value.clone();
            let _ = request_from_openai(&hub);
        }
    }
}

// ---------------------------------------------------------------- responses

#[test]
fn response_with_text_thoughts_and_usage() {
    let body = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "The user wants a greeting.", "thought": true},
                {"text": "Bonjour"},
                {"text": " !"}
            ]},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": []
        }],
        "usageMetadata": {
            "promptTokenCount": 120, "candidatesTokenCount": 3, "totalTokenCount": 173,
            "cachedContentTokenCount": 100, "thoughtsTokenCount": 50,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}]
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abc123"
    });
    let completion = response_to_openai(body.to_string().as_bytes(), "my-gemini").unwrap();
    assert_eq!(
        hub_usage(&completion),
        Some(Usage { prompt_tokens: 120, completion_tokens: 53, total_tokens: 173, cached_tokens: 100 })
    );
    insta::assert_json_snapshot!(stable(completion));
}

#[test]
fn response_with_function_calls() {
    let body = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "get_time"}},
                {"functionCall": {"id": "fc-9", "name": "ping", "args": {}}}
            ]},
            "finishReason": "STOP"
        }],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}
    });
    let completion = response_to_openai(body.to_string().as_bytes(), "g").unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            {"id": "fc-9", "type": "function", "function": {"name": "ping", "arguments": "{}"}}
        ])
    );
    // No totalTokenCount: the sum.
    assert_eq!(completion["usage"]["total_tokens"], 15);
    assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
}

#[test]
fn finish_reasons() {
    let cases = [
        ("STOP", false, "stop"),
        ("STOP", true, "tool_calls"),
        ("MAX_TOKENS", false, "length"),
        ("MAX_TOKENS", true, "length"),
        ("SAFETY", false, "content_filter"),
        ("RECITATION", false, "content_filter"),
        ("BLOCKLIST", false, "content_filter"),
        ("PROHIBITED_CONTENT", false, "content_filter"),
        ("SPII", false, "content_filter"),
        ("IMAGE_SAFETY", false, "content_filter"),
        ("OTHER", false, "stop"),
        ("LANGUAGE", false, "stop"),
        ("MALFORMED_FUNCTION_CALL", false, "stop"),
        ("FINISH_REASON_UNSPECIFIED", false, "stop"),
        ("SOMETHING_NEW", false, "stop"),
    ];
    for (reason, call, expected) in cases {
        let part = if call { json!({"functionCall": {"name": "f", "args": {}}}) } else { json!({"text": "x"}) };
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": reason}]});
        let completion = response_to_openai(body.to_string().as_bytes(), "g").unwrap();
        assert_eq!(completion["choices"][0]["finish_reason"], expected, "{reason} call={call}");
        // The stream maps them the same way.
        let mut chunks = Vec::new();
        decoder().on_event(&events(sse(&[body]).as_bytes(), None)[0], &mut chunks).unwrap();
        let finish = chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
        assert_eq!(finish.as_deref(), Some(expected), "stream {reason} call={call}");
    }
}

#[test]
fn blocked_prompt_is_a_content_filter_choice() {
    let body = json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}
    });
    let completion = response_to_openai(body.to_string().as_bytes(), "g").unwrap();
    assert_eq!(
        completion["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "content_filter"}])
    );
    assert_eq!(completion["usage"]["prompt_tokens"], 8);
    assert_eq!(completion["usage"]["completion_tokens"], 0);
}

#[test]
fn every_candidate_is_a_choice() {
    let body = json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "one"}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "two"}]}, "finishReason": "MAX_TOKENS", "index": 1},
        {"finishReason": "SAFETY", "index": 2}
    ]});
    let completion = response_to_openai(body.to_string().as_bytes(), "g").unwrap();
    let summary: Vec<(u64, &str, &str)> = completion["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["index"].as_u64().unwrap(),
                c["message"]["content"].as_str().unwrap(),
                c["finish_reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(0, "one", "stop"), (1, "two", "length"), (2, "", "content_filter")]);
    assert!(completion.get("usage").is_none());
}

#[test]
fn invalid_responses_are_upstream_errors() {
    let cases: [&[u8]; 8] = [
        b"",
        b"not json",
        b"[{\"candidates\":[]}]",
        b"\"text\"",
        b"{\"candidates\": 5}",
        b"{\"candidates\": [{\"index\": -1}]}",
        b"{\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"f\", \"args\": [1]}}]}}]}",
        b"{\"error\": {\"code\": 500, \"message\": \"Internal error\", \"status\": \"INTERNAL\"}}",
    ];
    for body in cases {
        let result = response_to_openai(body, "g");
        assert!(matches!(result, Err(TranscodeError::Upstream(_))), "{:?}: {result:?}", String::from_utf8_lossy(body));
    }
    let Err(TranscodeError::Upstream(message)) = response_to_openai(cases[7], "g") else { unreachable!() };
    assert_eq!(message, "Internal error");
    // `null` where a list or object is expected reads as absent.
    let completion = response_to_openai(b"{\"candidates\": null, \"usageMetadata\": null}", "g").unwrap();
    assert_eq!(completion["choices"], json!([]));
}

// ---------------------------------------------------------------- streams

fn text_transcript() -> String {
    sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Planning a haiku.", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Autumn moonlight"}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 33, "thoughtsTokenCount": 20}}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "—\na worm digs silently"}, {"text": ""}]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 12, "totalTokenCount": 41, "cachedContentTokenCount": 4, "thoughtsTokenCount": 20}}),
    ])
}

fn function_call_transcript() -> String {
    sse(&[
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking."}]}, "index": 0}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "c"}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 18, "totalTokenCount": 48}}),
    ])
}

fn multi_candidate_transcript() -> String {
    sse(&[
        json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "Red"}]}, "index": 0},
            {"content": {"role": "model", "parts": [{"text": "Blue"}]}, "index": 1}
        ], "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}),
        json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": " sky"}]}, "finishReason": "STOP", "index": 0}
        ], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}}),
        json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": " sea"}]}, "finishReason": "MAX_TOKENS", "index": 1}
        ], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 6, "totalTokenCount": 11}}),
    ])
}

#[test]
fn text_stream_transcript() {
    let mut decoder = decoder();
    let chunks = decode_with(&mut decoder, &text_transcript(), None);
    assert!(decoder.is_complete());
    assert_eq!(
        decoder.usage(),
        Some(Usage { prompt_tokens: 9, completion_tokens: 32, total_tokens: 41, cached_tokens: 4 })
    );
    assert_eq!(chunks.last().and_then(hub_usage), decoder.usage());
    insta::assert_json_snapshot!(chunks);
}

#[test]
fn function_call_stream_transcript() {
    let mut decoder = decoder();
    let chunks = decode_with(&mut decoder, &function_call_transcript(), None);
    assert!(decoder.is_complete());
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"]);
    insta::assert_json_snapshot!(chunks);
}

#[test]
fn multi_candidate_stream_transcript() {
    let mut decoder = decoder().with_candidate_count(2);
    let mut chunks = Vec::new();
    let all = events(multi_candidate_transcript().as_bytes(), None);
    for (i, event) in all.iter().enumerate() {
        decoder.on_event(event, &mut chunks).unwrap();
        // One candidate finished is not the end of a two-candidate stream.
        assert_eq!(decoder.is_complete(), i == 2, "after event {i}");
    }
    let usage_chunks = chunks.iter().filter(|c| c["choices"] == json!([])).count();
    assert_eq!(usage_chunks, 1);
    insta::assert_json_snapshot!(chunks.into_iter().map(stable).collect::<Vec<_>>());
}

#[test]
fn streams_split_at_every_byte_give_the_same_chunks() {
    for transcript in [text_transcript(), function_call_transcript(), multi_candidate_transcript()] {
        let whole = decode_with(&mut decoder().with_candidate_count(2), &transcript, None);
        for at in 0..=transcript.len() {
            let split = decode_with(&mut decoder().with_candidate_count(2), &transcript, Some(at));
            assert_eq!(split, whole, "split at {at}");
        }
    }
}

#[test]
fn every_chunk_has_the_envelope() {
    let mut all = Vec::new();
    for transcript in [text_transcript(), function_call_transcript(), multi_candidate_transcript()] {
        all.extend(decode_with(&mut decoder(), &transcript, None));
    }
    for chunk in all {
        assert_eq!(chunk["id"], "chatcmpl-test", "{chunk}");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gemini-2.5-flash");
        assert!(chunk["created"].is_u64() && chunk["choices"].is_array(), "{chunk}");
    }
}

#[test]
fn truncated_streams_keep_usage_and_are_not_complete() {
    let transcript = text_transcript();
    let first_two: String = transcript.split_inclusive("\r\n\r\n").take(2).collect();
    let mut decoder = decoder();
    let chunks = decode_with(&mut decoder, &first_two, None);
    assert!(!decoder.is_complete());
    assert_eq!(decoder.usage().map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)), Some((9, 24, 33)));
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && c["choices"] != json!([])));
    // Nothing at all: no usage, not complete.
    let decoder = StreamDecoder::new(String::new(), String::new());
    assert_eq!((decoder.is_complete(), decoder.usage()), (false, None));
}

#[test]
fn usage_chunk_waits_for_usage_and_comes_last() {
    let transcript = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}),
        json!({"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}}),
        json!({"candidates": [{"content": {"parts": [{"text": "late"}]}, "index": 1, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}),
    ]);
    let mut decoder = decoder();
    let mut per_event = Vec::new();
    for event in events(transcript.as_bytes(), None) {
        let mut chunks = Vec::new();
        decoder.on_event(&event, &mut chunks).unwrap();
        per_event.push(chunks);
    }
    assert_eq!(per_event.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 0]);
    assert_eq!(per_event[1][0]["usage"]["total_tokens"], 4);
    // The later event still counts for billing.
    assert_eq!(decoder.usage().map(|u| u.total_tokens), Some(5));
}

#[test]
fn blocked_prompt_stream() {
    let transcript = sse(&[json!({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}
    })]);
    let mut decoder = decoder().with_candidate_count(3);
    let chunks = decode_with(&mut decoder, &transcript, None);
    assert!(decoder.is_complete());
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "content_filter"}])
    );
    assert_eq!(chunks[1]["usage"]["prompt_tokens"], 7);
}

#[test]
fn closed_choices_take_no_more_content() {
    let transcript = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}),
    ]);
    let chunks = decode_with(&mut decoder(), &transcript, None);
    assert_eq!(chunks.len(), 2, "{chunks:?}");
}

#[test]
fn bad_events_are_upstream_errors() {
    let cases = [
        ("data: {not json\n\n", None),
        ("data: [1,2]\n\n", None),
        ("data: 42\n\n", None),
        ("data: {\"candidates\": {}}\n\n", None),
        (
            "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\n\n",
            Some("The model is overloaded."),
        ),
        ("data: {\"error\": \"quota\"}\n\n", Some("quota")),
    ];
    for (text, message) in cases {
        let mut decoder = decoder();
        let mut chunks = Vec::new();
        let result = decoder.on_event(&events(text.as_bytes(), None)[0], &mut chunks);
        match (result, message) {
            (Err(TranscodeError::Upstream(got)), Some(expected)) => assert_eq!(got, expected),
            (Err(TranscodeError::Upstream(_)), None) => {}
            (other, _) => panic!("{text}: {other:?}"),
        }
        assert!(chunks.is_empty());
        assert!(!decoder.is_complete());
    }
    // A proxy's `[DONE]` is not an error.
    let mut chunks = Vec::new();
    decoder().on_event(&events(b"data: [DONE]\n\n", None)[0], &mut chunks).unwrap();
    assert!(chunks.is_empty());
}

// ---------------------------------------------------------------- errors

#[test]
fn errors_in_openai_shape() {
    let key_invalid = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
    let quota =
        json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}});
    let not_found = json!([{"error": {"code": 404, "message": "models/nope is not found", "status": "NOT_FOUND"}}]);
    let cases = [
        (
            400,
            key_invalid.to_string(),
            "API key not valid. Please pass a valid API key.",
            "invalid_request_error",
            json!("API_KEY_INVALID"),
        ),
        (429, quota.to_string(), "You exceeded your current quota.", "rate_limit_error", json!("RESOURCE_EXHAUSTED")),
        (404, not_found.to_string(), "models/nope is not found", "not_found_error", json!("NOT_FOUND")),
        (
            403,
            "<html>Forbidden</html>".to_owned(),
            "the upstream answered HTTP 403: <html>Forbidden</html>",
            "permission_error",
            Value::Null,
        ),
        (400, String::new(), "the upstream answered HTTP 400", "invalid_request_error", Value::Null),
    ];
    for (status, body, message, kind, code) in cases {
        let out: Value = serde_json::from_slice(&error_to_openai(status, body.as_bytes())).unwrap();
        assert_eq!(out, json!({"error": {"message": message, "type": kind, "param": null, "code": code}}), "{body}");
    }
}

// ---------------------------------------------------------------- adapter

#[test]
fn urls_for_both_base_spellings_and_streams() {
    let adapter = GeminiAdapter;
    let bases = [
        "https://generativelanguage.googleapis.com",
        "https://generativelanguage.googleapis.com/",
        "https://generativelanguage.googleapis.com/v1beta",
        " https://generativelanguage.googleapis.com/v1beta/ ",
    ];
    for base in bases {
        for model in ["gemini-2.0-flash", "models/gemini-2.0-flash"] {
            let plain = adapter.build(Operation::ChatCompletions, &ctx(base, "k", Some(model), false)).unwrap();
            assert_eq!(plain.method, Method::POST);
            assert_eq!(plain.url.path(), "/v1beta/models/gemini-2.0-flash:generateContent", "{base} {model}");
            assert_eq!(plain.url.query(), None);
            let stream = adapter.build(Operation::ChatCompletions, &ctx(base, "k", Some(model), true)).unwrap();
            assert_eq!(
                stream.url.as_str(),
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
            );
            assert_eq!(stream.uri().path(), "/v1beta/models/gemini-2.0-flash:streamGenerateContent");
        }
        let models = adapter.build(Operation::ListModels, &ctx(base, "k", None, false)).unwrap();
        assert_eq!(models.method, Method::GET);
        assert_eq!(models.url.as_str(), "https://generativelanguage.googleapis.com/v1beta/models");
        assert!(models.headers.get("content-type").is_none());
    }
    let v1 =
        adapter.build(Operation::ChatCompletions, &ctx("https://proxy.test/gemini/v1", "", Some("m"), false)).unwrap();
    assert_eq!(v1.url.as_str(), "https://proxy.test/gemini/v1/models/m:generateContent");
}

#[test]
fn key_header_present_or_absent() {
    let base = "https://generativelanguage.googleapis.com";
    let with_key = GeminiAdapter.build(Operation::ChatCompletions, &ctx(base, "AIza-test", Some("m"), false)).unwrap();
    assert_eq!(with_key.headers["x-goog-api-key"], "AIza-test");
    assert!(with_key.headers["x-goog-api-key"].is_sensitive());
    assert_eq!(with_key.headers["content-type"], "application/json");
    assert!(with_key.headers.get("authorization").is_none());
    let without = GeminiAdapter.build(Operation::ChatCompletions, &ctx(base, "", Some("m"), false)).unwrap();
    assert!(without.headers.get("x-goog-api-key").is_none());
    let bad_key = GeminiAdapter.build(Operation::ChatCompletions, &ctx(base, "a\nb", Some("m"), false));
    assert_eq!(bad_key.unwrap_err(), BuildError::InvalidKey);
}

#[test]
fn build_errors() {
    let base = "https://generativelanguage.googleapis.com";
    for model in [None, Some(""), Some("models/")] {
        let result = GeminiAdapter.build(Operation::ChatCompletions, &ctx(base, "k", model, false));
        assert!(matches!(result, Err(BuildError::MissingModel { provider: "gemini", .. })), "{model:?}");
    }
    for op in [Operation::Embeddings, Operation::CountTokens, Operation::ImageGenerations, Operation::AudioSpeech] {
        let result = GeminiAdapter.build(op, &ctx(base, "k", Some("m"), false));
        assert!(matches!(result, Err(BuildError::Unsupported { provider: "gemini", .. })), "{op}");
    }
    for bad in ["not a url", "ftp://x.test", "mailto:a@b.c"] {
        let result = GeminiAdapter.build(Operation::ChatCompletions, &ctx(bad, "k", Some("m"), false));
        assert!(matches!(result, Err(BuildError::InvalidBaseUrl { .. })), "{bad}");
    }
}

#[test]
fn classification_table() {
    let google = |code: u16, status: &str, details: Value| {
        json!({"error": {"code": code, "message": "m", "status": status, "details": details}}).to_string()
    };
    let retry_info = json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"}]);
    let key_invalid = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]);
    let mut retry_header = HeaderMap::new();
    retry_header.insert("retry-after", HeaderValue::from_static("3"));
    let none = HeaderMap::new();
    let retry = |secs: Option<f64>| UpstreamFailure::Retryable { retry_after: secs.map(Duration::from_secs_f64) };
    let cases = [
        (400, google(400, "INVALID_ARGUMENT", key_invalid.clone()), &none, UpstreamFailure::AuthFailed),
        (400, google(400, "INVALID_ARGUMENT", json!([])), &none, UpstreamFailure::Fatal),
        (400, google(400, "FAILED_PRECONDITION", json!([])), &none, UpstreamFailure::Fatal),
        (401, String::new(), &none, UpstreamFailure::AuthFailed),
        (403, google(403, "PERMISSION_DENIED", json!([])), &none, UpstreamFailure::AuthFailed),
        (404, google(404, "NOT_FOUND", json!([])), &none, UpstreamFailure::Fatal),
        (429, google(429, "RESOURCE_EXHAUSTED", retry_info.clone()), &none, retry(Some(22.0))),
        (429, google(429, "RESOURCE_EXHAUSTED", retry_info.clone()), &retry_header, retry(Some(3.0))),
        (429, google(429, "RESOURCE_EXHAUSTED", json!([{"retryDelay": "0.5s"}])), &none, retry(Some(0.5))),
        (429, google(429, "RESOURCE_EXHAUSTED", json!([{"retryDelay": "soon"}])), &none, retry(None)),
        (500, google(500, "INTERNAL", json!([])), &none, retry(None)),
        (503, google(503, "UNAVAILABLE", json!([])), &none, retry(None)),
        (504, "upstream timeout".to_owned(), &none, retry(None)),
        (408, String::new(), &none, retry(None)),
        (302, String::new(), &none, retry(None)),
    ];
    for (status, body, headers, expected) in cases {
        assert_eq!(GeminiAdapter.classify(status, headers, body.as_bytes()), expected, "{status} {body}");
    }
}

#[test]
fn registered_by_default() {
    let registry = Registry::default();
    let adapter = registry.get("gemini").expect("gemini is registered");
    assert_eq!(adapter.wire_format(), WireFormat::Gemini);
    assert_eq!(adapter.name(), "gemini");
}
