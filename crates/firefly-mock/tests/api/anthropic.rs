//! Anthropic's Messages API: shapes, the exact event sequence, usage by the documented
//! formula, tool use, thinking, errors and cut streams.

use firefly_mock::MockConfig;
use serde_json::{json, Value};

use crate::{named_events, read_until_end, Harness, KEY};

const VERSION: &str = "2023-06-01";

fn messages(h: &Harness) -> reqwest::RequestBuilder {
    h.client.post(h.url("/messages")).header("x-api-key", KEY).header("anthropic-version", VERSION)
}

/// A request whose input characters are: system 12 ("You are mock") + "Hello there!" 12
/// + text block "abcd" 4 + tool_result "0123456789" 10 + tool_result blocks "xyz" 3 = 41.
fn body() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are mock",
        "messages": [
            {"role": "user", "content": "Hello there!"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "ignored"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "abcd"},
                {"type": "tool_result", "tool_use_id": "t1", "content": "0123456789"},
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "xyz"}]},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
            ]}
        ]
    })
}

/// 41 characters → floor(41 / 4) = 10 input tokens.
const INPUT_TOKENS: u64 = 10;

fn stream_body() -> Value {
    let mut body = body();
    body["stream"] = json!(true);
    body
}

/// Asserts Anthropic's error body and returns its `error` object.
pub async fn anthropic_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["request-id"].to_str().unwrap().to_owned();
    assert!(request_id.starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["request_id"], request_id.as_str());
    let error = body["error"].clone();
    assert_eq!(error.as_object().unwrap().len(), 2, "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}

#[tokio::test]
async fn message_has_anthropic_shape_and_formula_usage() {
    let h = Harness::start().await;
    let response = messages(&h).json(&body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let message: Value = response.json().await.unwrap();
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-sonnet-4-5");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Firefly mock says hello from the local upstream."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(
        message["usage"],
        json!({"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 8})
    );
    in_snapshots!(insta::assert_json_snapshot!("anthropic_message", message, {".id" => "[id]"}));
    assert_eq!(h.mock.stats().messages, 1);
    assert_eq!(h.mock.chat_requests(), 0, "the OpenAI counter does not count Anthropic");
}

#[tokio::test]
async fn system_as_text_blocks_counts_too() {
    let h = Harness::start().await;
    let mut request = body();
    request["system"] = json!([{"type": "text", "text": "You are mock"}, {"type": "text", "text": "1234"}]);
    let message: Value = messages(&h).json(&request).send().await.unwrap().json().await.unwrap();
    // 41 + 4 = 45 characters.
    assert_eq!(message["usage"]["input_tokens"], 11);
}

#[tokio::test]
async fn stream_is_anthropics_exact_event_sequence() {
    let h = Harness::start().await;
    let response = messages(&h).header("x-mock-chunks", "4").json(&stream_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    let transcript = response.text().await.unwrap();
    let events = named_events(&transcript);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let text: String = events[3..7]
        .iter()
        .map(|(_, e)| {
            assert_eq!(e["index"], 0);
            assert_eq!(e["delta"]["type"], "text_delta");
            e["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Firefly mock says hello");
    assert_eq!(
        events[8].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}})
    );
    let id = start["id"].as_str().unwrap();
    in_snapshots!(insta::assert_snapshot!("anthropic_stream_raw", transcript.replace(id, "[id]")));
}

#[tokio::test]
async fn tool_call_is_a_tool_use_block_named_after_the_first_tool() {
    let h = Harness::start().await;
    let mut request = body();
    request["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}, {"name": "other"}]);
    let message: Value =
        messages(&h).header("x-mock-tool-call", "1").json(&request).send().await.unwrap().json().await.unwrap();
    let block = &message["content"][0];
    assert_eq!(message["content"].as_array().unwrap().len(), 1);
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"text": "Firefly mock says hello from the local upstream."}));
    assert_eq!(message["stop_reason"], "tool_use");

    // Streamed: input_json_delta fragments that join into the same input.
    request["stream"] = json!(true);
    let response = messages(&h).header("x-mock-tool-call", "1").header("x-mock-chunks", "3").json(&request);
    let events = named_events(&response.send().await.unwrap().text().await.unwrap());
    let start = &events[1].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["name"], "get_weather");
    assert_eq!(start["input"], json!({}));
    let json: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"], "input_json_delta");
            e["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"text": "Firefly mock says"}));
    let delta = &events.iter().find(|(name, _)| name == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn tool_call_without_tools_uses_mock_tool() {
    let h = Harness::start().await;
    let message: Value =
        messages(&h).header("x-mock-tool-call", "1").json(&body()).send().await.unwrap().json().await.unwrap();
    assert_eq!(message["content"][0]["name"], "mock_tool");
}

#[tokio::test]
async fn thinking_block_comes_first_and_doubles_output_tokens() {
    let h = Harness::start().await;
    let message: Value = messages(&h)
        .header("x-mock-thinking", "1")
        .header("x-mock-chunks", "3")
        .json(&body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(content[0]["thinking"], "Firefly mock says");
    assert!(content[0]["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(content[1], json!({"type": "text", "text": "Firefly mock says"}));
    assert_eq!(message["usage"]["output_tokens"], 6);

    let response = messages(&h).header("x-mock-thinking", "1").header("x-mock-chunks", "2").json(&stream_body());
    let transcript = response.send().await.unwrap().text().await.unwrap();
    let events = named_events(&transcript);
    let sequence: Vec<String> = events
        .iter()
        .map(|(name, e)| match e["delta"]["type"].as_str() {
            Some(delta) => format!("{name}:{delta}"),
            None => match e["content_block"]["type"].as_str() {
                Some(block) => format!("{name}:{block}"),
                None => name.clone(),
            },
        })
        .collect();
    assert_eq!(
        sequence,
        [
            "message_start",
            "content_block_start:thinking",
            "ping",
            "content_block_delta:thinking_delta",
            "content_block_delta:thinking_delta",
            "content_block_delta:signature_delta",
            "content_block_stop",
            "content_block_start:text",
            "content_block_delta:text_delta",
            "content_block_delta:text_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[6].1["index"], 0);
    assert_eq!(events[7].1["index"], 1);
    assert_eq!(events[8].1["index"], 1);
    assert_eq!(events[11].1["usage"]["output_tokens"], 4);
    let id = events[0].1["message"]["id"].as_str().unwrap();
    in_snapshots!(insta::assert_snapshot!("anthropic_stream_thinking_raw", transcript.replace(id, "[id]")));
}

#[tokio::test]
async fn max_tokens_caps_the_answer() {
    let h = Harness::start().await;
    let mut request = body();
    request["max_tokens"] = json!(3);
    let message: Value = messages(&h).json(&request).send().await.unwrap().json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "Firefly mock says");
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn count_tokens_uses_the_same_formula() {
    let h = Harness::start().await;
    let mut request = body();
    request.as_object_mut().unwrap().remove("max_tokens");
    let response = h
        .client
        .post(h.url("/messages/count_tokens"))
        .header("x-api-key", KEY)
        .header("anthropic-version", VERSION)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": INPUT_TOKENS}));
    assert_eq!(h.mock.stats().count_tokens, 1);
    assert_eq!(h.mock.stats().messages, 0);
}

#[tokio::test]
async fn missing_key_is_401_and_missing_version_is_400() {
    let h = Harness::start().await;
    let no_key = h.client.post(h.url("/messages")).header("anthropic-version", VERSION).json(&body());
    let error = anthropic_error(no_key.send().await.unwrap(), 401).await;
    assert_eq!(error["type"], "authentication_error");

    let no_version = h.client.post(h.url("/messages")).header("x-api-key", KEY).json(&body());
    let error = anthropic_error(no_version.send().await.unwrap(), 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"].as_str().unwrap().contains("anthropic-version"));

    // A Bearer token (OAuth) is a key too.
    let bearer = h.client.post(h.url("/messages")).bearer_auth(KEY).header("anthropic-version", VERSION);
    assert_eq!(bearer.json(&body()).send().await.unwrap().status(), 200);
    assert_eq!(h.mock.error_responses(), 2);
}

#[tokio::test]
async fn every_status_gets_its_documented_error_type() {
    let h = Harness::start().await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
        (503, "api_error"),
        (422, "invalid_request_error"),
    ] {
        let response = messages(&h).header("x-mock-status", status.to_string()).json(&body()).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        let error = anthropic_error(response, status).await;
        assert_eq!(error["type"], kind, "status {status}");
        assert_eq!(retry_after.is_some(), status == 429 || status == 529, "status {status}");
    }
    // The error code knob replaces the type; metadata works like the header.
    let response = messages(&h).header("x-mock-status", "400").header("x-mock-error-code", "billing_error");
    let error = anthropic_error(response.json(&body()).send().await.unwrap(), 400).await;
    assert_eq!(error["type"], "billing_error");
    let mut request = body();
    request["metadata"] = json!({"user_id": "u", "x-mock-status": "529"});
    let error = anthropic_error(messages(&h).json(&request).send().await.unwrap(), 529).await;
    assert_eq!(error["type"], "overloaded_error");
}

#[tokio::test]
async fn bad_bodies_are_invalid_request_errors() {
    let h = Harness::start().await;
    let mut no_max_tokens = body();
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    let mut no_model = body();
    no_model.as_object_mut().unwrap().remove("model");
    let mut empty = body();
    empty["messages"] = json!([]);
    for (request, needle) in [
        (messages(&h).json(&no_max_tokens), "max_tokens"),
        (messages(&h).json(&no_model), "model"),
        (messages(&h).json(&empty), "messages"),
        (messages(&h).json(&json!({"model": "m", "max_tokens": 1, "messages": "hi"})), "messages"),
        (messages(&h).json(&json!({"model": "m", "max_tokens": "many", "messages": []})), "invalid type"),
        (messages(&h).json(&json!({"model": "m", "max_tokens": 1, "messages": [{"content": [{"text": 5}]}]})), ""),
        (messages(&h).header("content-type", "application/json").body("{\"model\":"), "JSON"),
        (messages(&h).json(&json!([1, 2])), ""),
    ] {
        let error = anthropic_error(request.send().await.unwrap(), 400).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().unwrap().contains(needle), "{error}");
    }
}

#[tokio::test]
async fn fail_keys_answer_with_their_status() {
    let mut config = MockConfig::default();
    config.fail_keys.insert("sk-bad".into(), 401);
    let h = Harness::with(config).await;
    let request = h.client.post(h.url("/messages")).header("x-api-key", "sk-bad").header("anthropic-version", VERSION);
    let error = anthropic_error(request.json(&body()).send().await.unwrap(), 401).await;
    assert_eq!(error["type"], "authentication_error");
}

#[tokio::test]
async fn stream_error_after_k_sends_an_overloaded_error_event() {
    let h = Harness::start().await;
    let response = messages(&h).header("x-mock-stream-error-after", "2").json(&stream_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (text, broke) = read_until_end(response).await;
    assert!(!broke, "the stream ends cleanly after the error event");
    let events = named_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"]
    );
    assert_eq!(events[5].1, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
}

#[tokio::test]
async fn disconnect_after_k_breaks_the_stream_after_k_deltas() {
    let h = Harness::start().await;
    for k in [0usize, 3] {
        let response = messages(&h).header("x-mock-disconnect-after", k.to_string()).json(&stream_body());
        let (text, broke) = read_until_end(response.send().await.unwrap()).await;
        assert!(broke, "k={k}");
        let events = named_events(&text);
        assert_eq!(events.len(), 3 + k, "message_start, content_block_start, ping and k deltas: {text}");
        assert!(events[3..].iter().all(|(name, _)| name == "content_block_delta"));
    }
}

#[tokio::test]
async fn models_list_in_anthropic_shape_with_anthropic_version() {
    let h = Harness::start().await;
    let response = h.client.get(h.url("/models")).header("x-api-key", KEY).header("anthropic-version", VERSION);
    let page: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(page["has_more"], false);
    assert_eq!(page["first_id"], "gpt-4o-mini");
    assert_eq!(page["last_id"], "text-embedding-3-small");
    assert_eq!(
        page["data"][0],
        json!({"type": "model", "id": "gpt-4o-mini", "display_name": "gpt-4o-mini", "created_at": "2025-02-19T00:00:00Z"})
    );
    let one = h.client.get(h.url("/models/gpt-4o")).header("x-api-key", KEY).header("anthropic-version", VERSION);
    let model: Value = one.send().await.unwrap().json().await.unwrap();
    assert_eq!(model["type"], "model");
    let missing = h.client.get(h.url("/models/nope")).header("x-api-key", KEY).header("anthropic-version", VERSION);
    let error = anthropic_error(missing.send().await.unwrap(), 404).await;
    assert_eq!(error["type"], "not_found_error");
    assert_eq!(h.mock.models_requests(), 3);
}

#[tokio::test]
async fn knobs_ride_in_the_api_key_for_requests_that_pass_a_relay() {
    let h = Harness::start().await;
    let knob_key = "x-mock:tool-call=1;chunks=3";
    let response = h
        .client
        .post(h.url("/messages"))
        .header("x-api-key", knob_key)
        .header("anthropic-version", VERSION)
        .json(&json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
                      "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use", "{message}");
    assert_eq!(message["content"][0]["name"], "lookup");
    assert_eq!(message["usage"]["output_tokens"], 3);
    // A header still wins over the key's knob; an unknown knob name is ignored.
    let response = h
        .client
        .post(h.url("/chat/completions"))
        .bearer_auth("x-mock:chunks=3;bogus=1")
        .header("x-mock-chunks", "2")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["usage"]["completion_tokens"], 2, "{completion}");
}
