//! Drives the mock over HTTP and checks OpenAI's wire shapes.

/// Runs insta assertions with the snapshots kept in `tests/snapshots/`.
macro_rules! in_snapshots {
    ($($assertion:tt)*) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            $($assertion)*
        })
    };
}

mod anthropic;
mod azure;
mod chat;
mod dashscope;
mod embeddings;
mod errors;
mod garbage;
mod gemini;
mod media;
mod models;
mod ops;
mod stream;

use firefly_mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

pub const KEY: &str = "sk-test-key";

pub struct Harness {
    pub mock: MockUpstream,
    pub client: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(MockConfig::default()).await
    }

    pub async fn with(config: MockConfig) -> Harness {
        let mock = MockUpstream::start(config).await.expect("mock starts");
        Harness { mock, client: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.mock.base_url())
    }

    pub fn chat(&self) -> reqwest::RequestBuilder {
        self.client.post(self.url("/chat/completions")).bearer_auth(KEY)
    }

    /// A chat completion request's JSON for `content` as the one user message.
    pub fn body(content: &str) -> Value {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
    }

    pub fn stream_body(content: &str, include_usage: bool) -> Value {
        let mut body = Harness::body(content);
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

/// Splits a complete SSE body into its events: each `data: <json>` parsed, `data: [DONE]` as
/// the string `"[DONE]"`. Fails on anything that is not a `data:` line followed by a blank line.
pub fn sse_events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\n\n"), "an SSE body ends with a blank line: {body:?}");
    body.strip_suffix("\n\n")
        .expect("checked above")
        .split("\n\n")
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {event:?}"));
            assert!(!data.contains('\n'), "one line per event: {event:?}");
            if data == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("event is not JSON ({e}): {data}"))
            }
        })
        .collect()
}

pub async fn stream_events(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    sse_events(&response.text().await.expect("stream body"))
}

/// Asserts an OpenAI error response: status, `{"error": {message, type, param, code}}` with
/// all four keys, and returns the `error` object.
pub async fn openai_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    let keys: Vec<&str> = error.as_object().expect("error is an object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{error}");
    for key in ["message", "type", "param", "code"] {
        assert!(keys.contains(&key), "{key} missing in {error}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["type"].is_string());
    error
}

/// Splits an SSE body whose events are `event: <name>` + `data: <json>` (Anthropic's) into
/// (name, data) pairs. Fails on any other framing.
pub fn named_events(body: &str) -> Vec<(String, Value)> {
    assert!(body.ends_with("\n\n"), "an SSE body ends with a blank line: {body:?}");
    body.strip_suffix("\n\n")
        .expect("checked above")
        .split("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap_or_else(|| panic!("two lines per event: {event:?}"));
            let name = name.strip_prefix("event: ").unwrap_or_else(|| panic!("no event name: {event:?}"));
            let data = data.strip_prefix("data: ").unwrap_or_else(|| panic!("no data: {event:?}"));
            assert!(!data.contains('\n'), "one data line per event: {event:?}");
            let value: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"));
            assert_eq!(value["type"], name, "the event name repeats the data's type");
            (name.to_owned(), value)
        })
        .collect()
}

/// Reads a body frame by frame until it ends or breaks; returns the text read and whether
/// the connection broke.
pub async fn read_until_end(mut response: reqwest::Response) -> (String, bool) {
    let mut text = String::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => return (text, false),
            Err(_) => return (text, true),
        }
    }
}
