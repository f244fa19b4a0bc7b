use super::*;

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
    in_snapshots(|| insta::assert_json_snapshot!(hub));
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
    in_snapshots(|| insta::assert_json_snapshot!(message));
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
