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
