use serde_json::{json, Value};

use crate::Harness;

const EIGHT_WORDS: &str = "Firefly mock says hello from the local upstream.";

#[tokio::test]
async fn completion_has_openai_shape_and_deterministic_usage() {
    let h = Harness::start().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Count to three."}
        ]
    });
    let response = h.chat().json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let completion: Value = response.json().await.unwrap();

    assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(completion["model"], "gpt-4o-mini");
    assert!(completion["system_fingerprint"].is_string());
    let choices = completion["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert_eq!(choices[0]["message"]["content"], EIGHT_WORDS);
    assert_eq!(choices[0]["message"]["refusal"], Value::Null);
    assert_eq!(choices[0]["logprobs"], Value::Null);
    assert_eq!(choices[0]["finish_reason"], "stop");
    // 14 + 15 characters → 29 / 4 = 7 prompt tokens; 8 chunks → 8 completion tokens.
    assert_eq!(completion["usage"]["prompt_tokens"], 7);
    assert_eq!(completion["usage"]["completion_tokens"], 8);
    assert_eq!(completion["usage"]["total_tokens"], 15);

    in_snapshots!(insta::assert_json_snapshot!("completion", completion, {".id" => "[id]", ".created" => "[created]"}));
}

#[tokio::test]
async fn model_is_echoed_and_chunk_count_follows_header() {
    let h = Harness::start().await;
    let mut body = Harness::body("abc");
    body["model"] = json!("some-upstream-model");
    let completion: Value =
        h.chat().header("x-mock-chunks", "3").json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["model"], "some-upstream-model");
    assert_eq!(completion["choices"][0]["message"]["content"], "Firefly mock says");
    // Fewer than 4 characters still cost one prompt token.
    assert_eq!(completion["usage"]["prompt_tokens"], 1);
    assert_eq!(completion["usage"]["completion_tokens"], 3);
    assert_eq!(completion["usage"]["total_tokens"], 4);
}

#[tokio::test]
async fn words_cycle_past_eight_chunks() {
    let h = Harness::start().await;
    let completion: Value =
        h.chat().header("x-mock-chunks", "10").json(&Harness::body("x")).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], format!("{EIGHT_WORDS} Firefly mock"));
    assert_eq!(completion["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn n_choices_each_carry_the_text_and_multiply_completion_tokens() {
    let h = Harness::start().await;
    let mut body = Harness::body("12345678");
    body["n"] = json!(3);
    let completion: Value = h.chat().json(&body).send().await.unwrap().json().await.unwrap();
    let choices = completion["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["message"]["content"], EIGHT_WORDS);
        assert_eq!(choice["finish_reason"], "stop");
    }
    assert_eq!(completion["usage"]["prompt_tokens"], 2);
    assert_eq!(completion["usage"]["completion_tokens"], 24);
    assert_eq!(completion["usage"]["total_tokens"], 26);
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_reason_length() {
    let h = Harness::start().await;
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = Harness::body("x");
        body[field] = json!(2);
        let completion: Value = h.chat().json(&body).send().await.unwrap().json().await.unwrap();
        assert_eq!(completion["choices"][0]["message"]["content"], "Firefly mock", "{field}");
        assert_eq!(completion["choices"][0]["finish_reason"], "length", "{field}");
        assert_eq!(completion["usage"]["completion_tokens"], 2, "{field}");
    }
}

#[tokio::test]
async fn content_parts_count_their_text_only() {
    let h = Harness::start().await;
    let body = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this picture."},
                {"type": "image_url", "image_url": {"url": "https://example.com/a-very-long-url.png"}},
                {"type": "text", "text": "Briefly."}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "héllo wörld"}
        ]
    });
    let completion: Value = h.chat().json(&body).send().await.unwrap().json().await.unwrap();
    // 22 + 8 + 11 characters (not bytes: é and ö are one each) = 41 → 10.
    assert_eq!(completion["usage"]["prompt_tokens"], 10);
}

#[tokio::test]
async fn response_format_and_unknown_fields_are_accepted() {
    let h = Harness::start().await;
    let mut body = Harness::body("Reply in JSON.");
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
    body["temperature"] = json!(0.2);
    body["seed"] = json!(7);
    body["user"] = json!("end-user-1");
    let response = h.chat().json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], EIGHT_WORDS);
}

#[tokio::test]
async fn no_usage_header_removes_usage() {
    let h = Harness::start().await;
    let completion: Value =
        h.chat().header("x-mock-no-usage", "1").json(&Harness::body("x")).send().await.unwrap().json().await.unwrap();
    assert!(completion.get("usage").is_none(), "{completion}");
    assert_eq!(completion["choices"][0]["message"]["content"], EIGHT_WORDS);
}

#[tokio::test]
async fn tool_call_completion_uses_the_declared_function() {
    let h = Harness::start().await;
    let mut body = Harness::body("What's the weather in Paris?");
    body["tools"] = json!([{
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    }]);
    let completion: Value = h
        .chat()
        .header("x-mock-tool-call", "1")
        .header("x-mock-chunks", "3")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments = calls[0]["function"]["arguments"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), json!({"text": "Firefly mock says"}));
    assert_eq!(completion["usage"]["completion_tokens"], 3);

    // Without declared tools the function is called `mock_tool`.
    let completion: Value =
        h.chat().header("x-mock-tool-call", "1").json(&Harness::body("x")).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "mock_tool");
}

#[tokio::test]
async fn metadata_carries_knobs_through_a_relay() {
    let h = Harness::start().await;
    let mut body = Harness::body("x");
    body["metadata"] = json!({"x-mock-chunks": "2", "x-mock-no-usage": "1"});
    let completion: Value = h.chat().json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Firefly mock");
    assert!(completion.get("usage").is_none());

    // A header wins over metadata.
    let completion: Value =
        h.chat().header("x-mock-chunks", "1").json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Firefly");
}
