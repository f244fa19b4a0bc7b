use serde_json::{json, Value};

use crate::{openai_error, stream_events, Harness, KEY};

const API_VERSION: &str = "2024-10-21";

fn azure_url(h: &Harness, deployment: &str, operation: &str, api_version: Option<&str>) -> String {
    let mut url = format!("{}/openai/deployments/{deployment}/{operation}", h.mock.origin());
    if let Some(version) = api_version {
        url.push_str(&format!("?api-version={version}"));
    }
    url
}

#[tokio::test]
async fn azure_chat_with_api_key_header() {
    let h = Harness::start().await;
    let url = azure_url(&h, "my-gpt4o", "chat/completions", Some(API_VERSION));
    // Azure bodies usually carry no model: the deployment is the model.
    let body = json!({"messages": [{"role": "user", "content": "Hello Azure"}]});
    let response = h.client.post(&url).header("api-key", KEY).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "my-gpt4o");
    assert_eq!(completion["usage"]["prompt_tokens"], 2);

    let headers = h.mock.last_request_headers().unwrap();
    assert_eq!(headers["api-key"], KEY);
    assert!(headers.get("authorization").is_none());
    let (method, uri) = h.mock.last_request_target().unwrap();
    assert_eq!(method, "POST");
    assert_eq!(uri.path(), "/openai/deployments/my-gpt4o/chat/completions");
    assert_eq!(uri.query(), Some("api-version=2024-10-21"));

    // A model in the body is echoed, as with OpenAI.
    let body = json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "x"}]});
    let completion: Value =
        h.client.post(&url).header("api-key", KEY).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(completion["model"], "gpt-4o-2024-08-06");
}

#[tokio::test]
async fn azure_stream_and_bearer_token() {
    let h = Harness::start().await;
    let url = azure_url(&h, "dep", "chat/completions", Some(API_VERSION));
    let body = json!({"stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]});
    let response =
        h.client.post(&url).bearer_auth("entra-token").header("x-mock-chunks", "2").json(&body).send().await.unwrap();
    let events = stream_events(response).await;
    assert_eq!(events.len(), 6, "role, 2 content, finish, usage, [DONE]");
    assert_eq!(events[0]["model"], "dep");
    assert_eq!(events[4]["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn azure_errors() {
    let h = Harness::start().await;
    let body = json!({"messages": [{"role": "user", "content": "x"}]});

    let no_version = azure_url(&h, "dep", "chat/completions", None);
    let error =
        openai_error(h.client.post(&no_version).header("api-key", KEY).json(&body).send().await.unwrap(), 404).await;
    assert_eq!(error["message"], "Resource not found");

    let url = azure_url(&h, "dep", "chat/completions", Some(API_VERSION));
    openai_error(h.client.post(&url).json(&body).send().await.unwrap(), 401).await;

    h.mock.set_fail_key("azure-key-1", 429);
    let response = h.client.post(&url).header("api-key", "azure-key-1").json(&body).send().await.unwrap();
    openai_error(response, 429).await;
    assert_eq!(h.mock.chat_requests(), 3);
}

#[tokio::test]
async fn azure_embeddings() {
    let h = Harness::start().await;
    let url = azure_url(&h, "embed-dep", "embeddings", Some(API_VERSION));
    let response: Value = h
        .client
        .post(&url)
        .header("api-key", KEY)
        .json(&json!({"input": ["a", "b"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["object"], "list");
    assert_eq!(response["model"], "embed-dep");
    assert_eq!(response["data"].as_array().unwrap().len(), 2);
}
