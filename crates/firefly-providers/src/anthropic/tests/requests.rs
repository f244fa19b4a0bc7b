use super::*;

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
    in_snapshots(|| insta::assert_json_snapshot!(hub));
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
    in_snapshots(|| insta::assert_json_snapshot!(request));
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
