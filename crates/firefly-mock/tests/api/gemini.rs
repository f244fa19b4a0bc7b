//! Gemini's generateContent / streamGenerateContent / countTokens.

use firefly_mock::MockConfig;
use serde_json::{json, Value};

use crate::{read_until_end, Harness, KEY};

fn url(h: &Harness, call: &str) -> String {
    format!("{}/v1beta/models/gemini-2.5-flash:{call}", h.mock.origin())
}

fn generate(h: &Harness) -> reqwest::RequestBuilder {
    h.client.post(url(h, "generateContent")).header("x-goog-api-key", KEY)
}

fn stream(h: &Harness) -> reqwest::RequestBuilder {
    h.client.post(format!("{}?alt=sse", url(h, "streamGenerateContent"))).header("x-goog-api-key", KEY)
}

/// Characters: system "Be brief." 9 + "Hello Gemini" 12 + "ok" 2 + "four" 4 = 27 → 6 tokens.
fn body() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hello Gemini"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"role": "user", "parts": [{"text": "four"}]}
        ]
    })
}

const PROMPT_TOKENS: u64 = 6;

/// Splits Gemini's CRLF-framed SSE body into its JSON events.
fn gemini_events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\r\n\r\n"), "events end with CRLF CRLF: {body:?}");
    body.strip_suffix("\r\n\r\n")
        .unwrap()
        .split("\r\n\r\n")
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:?}"));
            assert!(!data.contains('\n'), "{event:?}");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

async fn gemini_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json; charset=UTF-8");
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert_eq!(error["code"], status);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["status"].is_string());
    error
}

#[tokio::test]
async fn generate_content_has_gemini_shape_and_formula_usage() {
    let h = Harness::start().await;
    let response = generate(&h).json(&body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["candidates"],
        json!([{
            "content": {"parts": [{"text": "Firefly mock says hello from the local upstream."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }])
    );
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], PROMPT_TOKENS);
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 8);
    assert_eq!(answer["usageMetadata"]["totalTokenCount"], PROMPT_TOKENS + 8);
    assert_eq!(answer["modelVersion"], "gemini-2.5-flash");
    assert!(answer["responseId"].as_str().is_some_and(|id| !id.is_empty()));
    in_snapshots!(insta::assert_json_snapshot!("gemini_generate", answer, {".responseId" => "[id]"}));
    assert_eq!(h.mock.stats().gemini, 1);
    assert_eq!(h.mock.chat_requests(), 0);
}

#[tokio::test]
async fn key_in_query_and_snake_case_fields_work() {
    let h = Harness::start().await;
    let request = json!({
        "system_instruction": {"parts": [{"text": "12345678"}]},
        "contents": [{"parts": [{"text": "abcd"}]}],
        "generation_config": {"max_output_tokens": 2}
    });
    let response = h.client.post(format!("{}?key={KEY}", url(&h, "generateContent"))).json(&request);
    let answer: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], 3);
    assert_eq!(answer["candidates"][0]["content"]["parts"][0]["text"], "Firefly mock");
    assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[tokio::test]
async fn stream_sends_one_event_per_chunk_with_cumulative_usage() {
    let h = Harness::start().await;
    let response = stream(&h).header("x-mock-chunks", "3").json(&body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let transcript = response.text().await.unwrap();
    let events = gemini_events(&transcript);
    assert_eq!(events.len(), 3);
    let mut text = String::new();
    for (i, event) in events.iter().enumerate() {
        let candidate = &event["candidates"][0];
        text.push_str(candidate["content"]["parts"][0]["text"].as_str().unwrap());
        assert_eq!(candidate["content"]["role"], "model");
        let last = i == 2;
        assert_eq!(candidate.get("finishReason").is_some(), last, "finishReason only on the last chunk");
        assert_eq!(event["usageMetadata"]["promptTokenCount"], PROMPT_TOKENS);
        assert_eq!(event["usageMetadata"]["candidatesTokenCount"], i + 1);
        assert_eq!(event["responseId"], events[0]["responseId"]);
    }
    assert_eq!(text, "Firefly mock says");
    assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(events[2]["usageMetadata"]["totalTokenCount"], PROMPT_TOKENS + 3);
    let id = events[0]["responseId"].as_str().unwrap();
    in_snapshots!(insta::assert_snapshot!("gemini_stream_raw", transcript.replace(id, "[id]")));
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let h = Harness::start().await;
    let response = h.client.post(url(&h, "streamGenerateContent")).header("x-goog-api-key", KEY);
    let response = response.header("x-mock-chunks", "2").json(&body()).send().await.unwrap();
    let chunks: Vec<Value> = response.json().await.unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn candidate_count_gives_several_candidates() {
    let h = Harness::start().await;
    let mut request = body();
    request["generationConfig"] = json!({"candidateCount": 2});
    let answer: Value =
        generate(&h).header("x-mock-chunks", "2").json(&request).send().await.unwrap().json().await.unwrap();
    let candidates = answer["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[1]["index"], 1);
    assert_eq!(candidates[1]["content"]["parts"][0]["text"], "Firefly mock");
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 4);

    let events = gemini_events(
        &stream(&h).header("x-mock-chunks", "2").json(&request).send().await.unwrap().text().await.unwrap(),
    );
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(events[1]["usageMetadata"]["candidatesTokenCount"], 4);
}

#[tokio::test]
async fn tool_call_is_a_function_call_part() {
    let h = Harness::start().await;
    let mut request = body();
    request["tools"] = json!([{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "object"}}]}]);
    let answer: Value =
        generate(&h).header("x-mock-tool-call", "1").json(&request).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        answer["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "lookup", "args": {"text": "Firefly mock says hello from the local upstream."}}}])
    );
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");

    let response = stream(&h).header("x-mock-tool-call", "1").json(&body()).send().await.unwrap();
    let events = gemini_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 1, "Gemini sends a function call whole");
    assert_eq!(events[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"], "mock_tool");
}

#[tokio::test]
async fn no_usage_drops_usage_metadata() {
    let h = Harness::start().await;
    let answer: Value =
        generate(&h).header("x-mock-no-usage", "1").json(&body()).send().await.unwrap().json().await.unwrap();
    assert!(answer.get("usageMetadata").is_none());
}

#[tokio::test]
async fn count_tokens_uses_the_same_formula() {
    let h = Harness::start().await;
    let response = h.client.post(url(&h, "countTokens")).header("x-goog-api-key", KEY).json(&body());
    let count: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(count["totalTokens"], PROMPT_TOKENS);
}

#[tokio::test]
async fn auth_failures_follow_google() {
    let h = Harness::start().await;
    let error = gemini_error(h.client.post(url(&h, "generateContent")).json(&body()).send().await.unwrap(), 403).await;
    assert_eq!(error["status"], "PERMISSION_DENIED");

    let mut config = MockConfig::default();
    config.fail_keys.insert("bad-key".into(), 400);
    let h = Harness::with(config).await;
    let response = h.client.post(url(&h, "generateContent")).header("x-goog-api-key", "bad-key").json(&body());
    let error = gemini_error(response.send().await.unwrap(), 400).await;
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    assert_eq!(error["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(error["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
}

#[tokio::test]
async fn every_status_gets_its_canonical_name() {
    let h = Harness::start().await;
    for (status, name) in [
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ] {
        let response = generate(&h).header("x-mock-status", status.to_string()).json(&body()).send().await.unwrap();
        let error = gemini_error(response, status).await;
        assert_eq!(error["status"], name, "status {status}");
    }
    let response = generate(&h).header("x-mock-status", "400").header("x-mock-error-code", "FAILED_PRECONDITION");
    let error = gemini_error(response.json(&body()).send().await.unwrap(), 400).await;
    assert_eq!(error["status"], "FAILED_PRECONDITION");
}

#[tokio::test]
async fn bad_requests_are_invalid_argument() {
    let h = Harness::start().await;
    for request in [
        generate(&h).header("content-type", "application/json").body("{nope"),
        generate(&h).json(&json!({"contents": []})),
        generate(&h).json(&json!({"contents": "text"})),
        generate(&h).json(&json!({"contents": [{"parts": [{"text": 1}]}]})),
        generate(&h).json(&json!({"contents": [{"parts": []}], "generationConfig": {"candidateCount": 9}})),
    ] {
        let error = gemini_error(request.send().await.unwrap(), 400).await;
        assert_eq!(error["status"], "INVALID_ARGUMENT");
    }
    let unknown = h.client.post(url(&h, "embedSomething")).header("x-goog-api-key", KEY).json(&body());
    let error = gemini_error(unknown.send().await.unwrap(), 404).await;
    assert_eq!(error["status"], "NOT_FOUND");
}

#[tokio::test]
async fn stream_error_after_k_sends_an_error_event() {
    let h = Harness::start().await;
    let response = stream(&h).header("x-mock-stream-error-after", "2").json(&body()).send().await.unwrap();
    let (text, broke) = read_until_end(response).await;
    assert!(!broke);
    let events = gemini_events(&text);
    assert_eq!(events.len(), 3);
    assert!(events[1]["candidates"][0].get("finishReason").is_none());
    assert_eq!(
        events[2],
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
    );
}

#[tokio::test]
async fn disconnect_after_k_breaks_the_stream() {
    let h = Harness::start().await;
    let response = stream(&h).header("x-mock-disconnect-after", "3").json(&body()).send().await.unwrap();
    let (text, broke) = read_until_end(response).await;
    assert!(broke);
    let events = gemini_events(&text);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["candidates"][0].get("finishReason").is_none()));
}

#[tokio::test]
async fn v1_path_answers_too() {
    let h = Harness::start().await;
    let response = h
        .client
        .post(format!("{}/v1/models/gemini-2.5-flash:generateContent", h.mock.origin()))
        .header("x-goog-api-key", KEY)
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
