//! Bodies of the wrong shape get each provider's 400, never a panic or a hang.

use serde_json::{json, Value};

use crate::{Harness, KEY};

/// How each provider's error body is recognized.
#[derive(Clone, Copy, Debug)]
enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
    DashScope,
}

fn is_error_body(dialect: Dialect, body: &Value) -> bool {
    match dialect {
        Dialect::OpenAi => body["error"]["message"].is_string() && body["error"]["type"].is_string(),
        Dialect::Anthropic => body["type"] == "error" && body["error"]["type"] == "invalid_request_error",
        Dialect::Gemini => body["error"]["code"] == 400 && body["error"]["status"] == "INVALID_ARGUMENT",
        Dialect::DashScope => body["code"] == "InvalidParameter" && body["request_id"].is_string(),
    }
}

#[tokio::test]
async fn wrong_shapes_get_the_providers_400() {
    let h = Harness::start().await;
    let origin = h.mock.origin();
    let endpoints: Vec<(Dialect, reqwest::RequestBuilder)> = vec![
        (
            Dialect::Anthropic,
            h.client.post(h.url("/messages")).header("x-api-key", KEY).header("anthropic-version", "1"),
        ),
        (
            Dialect::Anthropic,
            h.client.post(h.url("/messages/count_tokens")).header("x-api-key", KEY).header("anthropic-version", "1"),
        ),
        (
            Dialect::Gemini,
            h.client.post(format!("{origin}/v1beta/models/g:generateContent")).header("x-goog-api-key", KEY),
        ),
        (
            Dialect::Gemini,
            h.client
                .post(format!("{origin}/v1beta/models/g:streamGenerateContent?alt=sse"))
                .header("x-goog-api-key", KEY),
        ),
        (Dialect::OpenAi, h.client.post(h.url("/images/generations")).bearer_auth(KEY)),
        (Dialect::OpenAi, h.client.post(h.url("/audio/speech")).bearer_auth(KEY)),
        (
            Dialect::DashScope,
            h.client
                .post(format!("{origin}/api/v1/services/aigc/text2image/image-synthesis"))
                .bearer_auth(KEY)
                .header("x-dashscope-async", "enable"),
        ),
        (
            Dialect::DashScope,
            h.client.post(format!("{origin}/api/v1/services/aigc/multimodal-generation/generation")).bearer_auth(KEY),
        ),
    ];
    let bodies = [
        "",
        "null",
        "[]",
        "\"text\"",
        "42",
        "{}",
        "{\"model\":",
        "{\"model\": 7, \"messages\": {}, \"contents\": 1, \"prompt\": [], \"input\": 3}",
        "{\"model\": \"m\", \"max_tokens\": -1, \"messages\": [{\"content\": {\"text\": 1}}], \"contents\": [{\"parts\": 1}]}",
    ];
    for (dialect, request) in endpoints {
        for body in bodies {
            let request = request.try_clone().unwrap().header("content-type", "application/json").body(body);
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 400, "{dialect:?} {body}");
            let error: Value = response.json().await.unwrap();
            assert!(is_error_body(dialect, &error), "{dialect:?} {body}: {error}");
        }
    }
    // Anthropic messages that are fine but for their max_tokens.
    let error: Value = h
        .client
        .post(h.url("/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "1")
        .json(&json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(error["error"]["message"].as_str().unwrap().starts_with("max_tokens"));
}
