//! Counters, request inspection, the stats endpoint and shutdown.

use firefly_mock::MockStats;
use serde_json::json;

use crate::{Harness, KEY};

#[tokio::test]
async fn counters_and_stats_endpoint() {
    let h = Harness::start().await;
    assert_eq!(h.mock.stats(), MockStats::default());
    h.chat().json(&Harness::body("x")).send().await.unwrap();
    h.chat().json(&Harness::stream_body("x", true)).send().await.unwrap().text().await.unwrap();
    h.chat().header("x-mock-status", "500").json(&Harness::body("x")).send().await.unwrap();
    h.client
        .post(h.url("/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": "e", "input": "x"}))
        .send()
        .await
        .unwrap();
    h.client.get(h.url("/models")).bearer_auth(KEY).send().await.unwrap();
    h.client.get(h.url("/nowhere")).bearer_auth(KEY).send().await.unwrap();

    let expected =
        MockStats { requests: 6, chat_completions: 3, embeddings: 1, models: 1, errors: 2, ..MockStats::default() };
    assert_eq!(h.mock.stats(), expected);
    assert_eq!(h.mock.requests(), 6);
    assert_eq!(h.mock.chat_requests(), 3);

    // The stats endpoint needs no key and does not count itself.
    let url = format!("{}/_mock/stats", h.mock.origin());
    let stats: MockStats = h.client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats, expected);
    let stats: MockStats = h.client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats, expected);
}

#[tokio::test]
async fn last_request_is_inspectable() {
    let h = Harness::start().await;
    assert!(h.mock.last_request_body().is_none());
    let body = json!({
        "model": "upstream-model-name",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "x"}]
    });
    h.chat().header("x-custom", "1").json(&body).send().await.unwrap().text().await.unwrap();
    assert_eq!(h.mock.last_request_body().unwrap(), body);
    let headers = h.mock.last_request_headers().unwrap();
    assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(headers["x-custom"], "1");
    let (method, uri) = h.mock.last_request_target().unwrap();
    assert_eq!((method.as_str(), uri.path()), ("POST", "/v1/chat/completions"));

    // Rejected requests are recorded too; a body that is not JSON has no parsed form.
    h.client.post(h.url("/chat/completions")).body("not json").send().await.unwrap();
    assert!(h.mock.last_request_body().is_none());
    assert_eq!(h.mock.last_request_bytes().unwrap(), "not json");
    assert!(h.mock.last_request_headers().unwrap().get("authorization").is_none());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let h = Harness::start().await;
    let url = h.url("/models");
    assert_eq!(h.client.get(&url).bearer_auth(KEY).send().await.unwrap().status(), 200);
    let Harness { mock, .. } = h;
    mock.shutdown().await;
    // A fresh client: the old one's pooled connection was closed by the shutdown.
    let result = reqwest::Client::new().get(&url).bearer_auth(KEY).send().await;
    assert!(result.unwrap_err().is_connect());
}

#[tokio::test]
async fn new_endpoints_have_their_own_counters() {
    let h = Harness::start().await;
    let origin = h.mock.origin();
    let anthropic =
        |path: &str| h.client.post(h.url(path)).header("x-api-key", KEY).header("anthropic-version", "2023-06-01");
    let message = json!({"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]});
    anthropic("/messages").json(&message).send().await.unwrap();
    anthropic("/messages").header("x-mock-status", "529").json(&message).send().await.unwrap();
    anthropic("/messages/count_tokens").json(&message).send().await.unwrap();
    h.client
        .post(format!("{origin}/v1beta/models/g:generateContent"))
        .header("x-goog-api-key", KEY)
        .json(&json!({"contents": [{"parts": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    let image = h.client.post(h.url("/images/generations")).bearer_auth(KEY).json(&json!({"prompt": "x"}));
    let image: serde_json::Value = image.send().await.unwrap().json().await.unwrap();
    h.client.get(image["data"][0]["url"].as_str().unwrap()).send().await.unwrap();
    h.client
        .post(h.url("/audio/speech"))
        .bearer_auth(KEY)
        .json(&json!({"model": "tts-1", "voice": "alloy", "input": "x"}))
        .send()
        .await
        .unwrap();
    h.client.post(h.url("/audio/transcriptions")).bearer_auth(KEY).body("not multipart").send().await.unwrap();
    h.client
        .post(format!("{origin}/api/v1/services/aigc/text2image/image-synthesis"))
        .bearer_auth(KEY)
        .json(&json!({"model": "wanx-v1", "input": {"prompt": "x"}}))
        .send()
        .await
        .unwrap();
    h.client.get(format!("{origin}/api/v1/tasks/t")).bearer_auth(KEY).send().await.unwrap();
    h.client
        .post(format!("{origin}/api/v1/services/aigc/multimodal-generation/generation"))
        .bearer_auth(KEY)
        .json(&json!({"model": "qwen-tts", "input": {"text": "x"}}))
        .send()
        .await
        .unwrap();

    let expected = MockStats {
        requests: 10,
        errors: 3,
        messages: 2,
        count_tokens: 1,
        gemini: 1,
        images: 1,
        speech: 1,
        transcriptions: 1,
        image_synthesis: 1,
        tasks: 1,
        multimodal_generation: 1,
        files: 1,
        ..MockStats::default()
    };
    assert_eq!(h.mock.stats(), expected);
    let stats: serde_json::Value =
        h.client.get(format!("{origin}/_mock/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["messages"], 2);
    assert_eq!(stats["chat_completions"], 0);
    assert_eq!(serde_json::from_value::<MockStats>(stats).unwrap(), expected);
}

#[tokio::test]
async fn anthropic_stream_honours_latency_and_chunk_delay() {
    let h = Harness::start().await;
    let delay = std::time::Duration::from_millis(60);
    let started = std::time::Instant::now();
    let body = json!({"model": "m", "max_tokens": 9, "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let response = h
        .client
        .post(h.url("/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-latency-ms", "100")
        .header("x-mock-chunk-delay-ms", delay.as_millis().to_string())
        .header("x-mock-chunks", "3")
        .json(&body)
        .send()
        .await
        .unwrap();
    let head = started.elapsed();
    assert!(head >= std::time::Duration::from_millis(100), "{head:?}");
    response.text().await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(100) + delay * 3);
}
