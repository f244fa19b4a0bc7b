use std::collections::HashMap;
use std::time::{Duration, Instant};

use firefly_mock::MockConfig;
use serde_json::{json, Value};

use crate::{openai_error, Harness, KEY};

#[tokio::test]
async fn missing_or_malformed_key_is_401() {
    let h = Harness::start().await;
    let url = h.url("/chat/completions");
    let body = Harness::body("x");
    for request in [
        h.client.post(&url).json(&body),
        h.client.post(&url).header("authorization", "Bearer ").json(&body),
        h.client.post(&url).header("authorization", "Basic abc").json(&body),
        // `api-key` is Azure's header; the OpenAI routes want Bearer.
        h.client.post(&url).header("api-key", KEY).json(&body),
    ] {
        let error = openai_error(request.send().await.unwrap(), 401).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert!(error["message"].as_str().unwrap().contains("API key"));
    }
    assert_eq!(h.mock.error_responses(), 4);
}

#[tokio::test]
async fn invalid_json_is_400() {
    let h = Harness::start().await;
    let response = h.chat().header("content-type", "application/json").body("{\"model\": ").send().await.unwrap();
    let error = openai_error(response, 400).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], Value::Null);
    assert!(error["message"].as_str().unwrap().starts_with("We could not parse the JSON body"));

    // Well-formed JSON of the wrong shape is a 400 too, with the reason.
    let response = h.chat().json(&json!({"model": "m", "messages": "hello"})).send().await.unwrap();
    let error = openai_error(response, 400).await;
    assert!(error["message"].as_str().unwrap().starts_with("Invalid request body"), "{error}");
}

#[tokio::test]
async fn missing_parameters_are_400_with_param() {
    let h = Harness::start().await;
    let error = openai_error(h.chat().json(&json!({"model": "m"})).send().await.unwrap(), 400).await;
    assert_eq!(error["param"], "messages");
    assert_eq!(error["code"], "missing_required_parameter");

    let error = openai_error(h.chat().json(&json!({"messages": []})).send().await.unwrap(), 400).await;
    assert_eq!(error["message"], "you must provide a model parameter");

    let error = openai_error(h.chat().json(&json!({"model": "m", "messages": []})).send().await.unwrap(), 400).await;
    assert_eq!(error["param"], "messages");

    let mut body = Harness::body("x");
    body["n"] = json!(0);
    let error = openai_error(h.chat().json(&body).send().await.unwrap(), 400).await;
    assert_eq!(error["param"], "n");
}

#[tokio::test]
async fn injected_statuses_answer_openai_error_bodies() {
    let h = Harness::start().await;
    let expected = [
        (400, "invalid_request_error", Value::Null),
        (401, "invalid_request_error", json!("invalid_api_key")),
        (403, "invalid_request_error", json!("model_not_found")),
        (404, "invalid_request_error", json!("model_not_found")),
        (429, "requests", json!("rate_limit_exceeded")),
        (500, "server_error", Value::Null),
        (502, "server_error", Value::Null),
        (503, "server_error", Value::Null),
    ];
    for (status, kind, code) in expected {
        for stream in [false, true] {
            let response = h
                .chat()
                .header("x-mock-status", status.to_string())
                .json(&Harness::stream_body("x", stream))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            let error = openai_error(response, status).await;
            assert_eq!(error["type"], kind, "{status}");
            assert_eq!(error["code"], code, "{status}");
            assert_eq!(error["param"], Value::Null, "{status}");
            if status == 429 {
                assert_eq!(retry_after.unwrap(), "1");
            } else {
                assert!(retry_after.is_none());
            }
        }
    }
    assert_eq!(h.mock.error_responses(), 16);
}

#[tokio::test]
async fn injected_status_wins_over_a_bad_body_and_statuses_below_400_are_ignored() {
    let h = Harness::start().await;
    let response = h.chat().header("x-mock-status", "503").body("not json").send().await.unwrap();
    openai_error(response, 503).await;

    let response = h.chat().header("x-mock-status", "302").json(&Harness::body("x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn error_code_header_selects_insufficient_quota() {
    let h = Harness::start().await;
    let response = h
        .chat()
        .header("x-mock-status", "429")
        .header("x-mock-error-code", "insufficient_quota")
        .json(&Harness::body("x"))
        .send()
        .await
        .unwrap();
    let error = openai_error(response, 429).await;
    assert_eq!(error["type"], "insufficient_quota");
    assert_eq!(error["code"], "insufficient_quota");
    assert!(error["message"].as_str().unwrap().contains("quota"));
}

#[tokio::test]
async fn status_in_metadata_reaches_through_a_relay() {
    let h = Harness::start().await;
    let mut body = Harness::body("x");
    body["metadata"] = json!({"x-mock-status": "500"});
    let error = openai_error(h.chat().json(&body).send().await.unwrap(), 500).await;
    assert_eq!(error["type"], "server_error");
}

#[tokio::test]
async fn fail_keys_from_config_and_at_runtime() {
    let h = Harness::with(MockConfig {
        fail_keys: HashMap::from([("sk-broken".to_owned(), 401), ("sk-busy".to_owned(), 429)]),
        ..MockConfig::default()
    })
    .await;
    let url = h.url("/chat/completions");
    let body = Harness::body("x");
    let send = |key: &'static str| h.client.post(&url).bearer_auth(key).json(&body).send();

    let error = openai_error(send("sk-broken").await.unwrap(), 401).await;
    assert_eq!(error["code"], "invalid_api_key");
    let busy = send("sk-busy").await.unwrap();
    assert_eq!(busy.headers()["retry-after"], "1");
    openai_error(busy, 429).await;
    assert_eq!(send("sk-fine").await.unwrap().status(), 200);

    h.mock.set_fail_key("sk-fine", 503);
    openai_error(send("sk-fine").await.unwrap(), 503).await;
    h.mock.clear_fail_key("sk-fine");
    h.mock.clear_fail_key("sk-busy");
    assert_eq!(send("sk-fine").await.unwrap().status(), 200);
    assert_eq!(send("sk-busy").await.unwrap().status(), 200);
    // Fail keys apply to every endpoint.
    let models = h.client.get(h.url("/models")).bearer_auth("sk-broken").send().await.unwrap();
    openai_error(models, 401).await;
    assert_eq!(h.mock.error_responses(), 4);
    assert_eq!(h.mock.requests(), 7);
}

#[tokio::test]
async fn latency_header_delays_the_response_head() {
    let h = Harness::start().await;
    let started = Instant::now();
    let response =
        h.chat().header("x-mock-latency-ms", "300").json(&Harness::stream_body("x", true)).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(response.status(), 200);

    // Errors are delayed too, as a slow failing upstream's would be.
    let started = Instant::now();
    let response = h
        .chat()
        .header("x-mock-latency-ms", "200")
        .header("x-mock-status", "500")
        .json(&Harness::body("x"))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), 500);
}

#[tokio::test]
async fn configured_latency_applies_without_a_header() {
    let h = Harness::with(MockConfig { latency: Duration::from_millis(200), ..MockConfig::default() }).await;
    let started = Instant::now();
    let response = h.chat().json(&Harness::body("x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The header overrides the configuration.
    let started = Instant::now();
    h.chat().header("x-mock-latency-ms", "0").json(&Harness::body("x")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn unknown_routes_and_strict_models_are_404() {
    let h = Harness::with(MockConfig { strict_models: true, ..MockConfig::default() }).await;
    let response = h.client.post(h.url("/completions")).bearer_auth(KEY).body("{}").send().await.unwrap();
    let error = openai_error(response, 404).await;
    assert_eq!(error["message"], "Invalid URL (POST /v1/completions)");

    let mut body = Harness::body("x");
    body["model"] = json!("gpt-nonexistent");
    let error = openai_error(h.chat().json(&body).send().await.unwrap(), 404).await;
    assert_eq!(error["code"], "model_not_found");
    assert!(error["message"].as_str().unwrap().contains("gpt-nonexistent"));
    assert_eq!(h.chat().json(&Harness::body("x")).send().await.unwrap().status(), 200);
}
