//! The transcoding matrix end to end: each client format (OpenAI's chat completions,
//! Anthropic's messages) against each upstream format (OpenAI, Anthropic, Gemini), streamed
//! and not, through the real server and the mock upstream speaking each format. Content,
//! stop reasons, usage and billing are checked in every cell; the transcripts are
//! snapshotted.

mod common;

use common::{Session, TestApp};
use firefly_mock::{MockConfig, MockUpstream};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// 1 credit per input token, 2 per output token.
const PRICE: (i64, i64) = (1_000_000, 2_000_000);
const SENTENCE: &str = "Firefly mock says hello from the local upstream.";
const PROMPT: &str = "Hello there, how are you today?";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    OpenAi,
    Anthropic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Upstream {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Upstream {
    const ALL: [Upstream; 3] = [Upstream::OpenAi, Upstream::Anthropic, Upstream::Gemini];

    fn provider(self) -> &'static str {
        match self {
            Upstream::OpenAi => "openai",
            Upstream::Anthropic => "anthropic",
            Upstream::Gemini => "gemini",
        }
    }

    /// The model clients ask for; each is served by one channel of this format.
    fn model(self) -> &'static str {
        match self {
            Upstream::OpenAi => "via-openai",
            Upstream::Anthropic => "via-anthropic",
            Upstream::Gemini => "via-gemini",
        }
    }

    /// The model name the upstream is sent.
    fn upstream_model(self) -> &'static str {
        match self {
            Upstream::OpenAi => "gpt-4o-mini",
            Upstream::Anthropic => "claude-sonnet-4-5",
            Upstream::Gemini => "gemini-2.0-flash",
        }
    }
}

struct Matrix {
    app: TestApp,
    mock: MockUpstream,
    admin: Session,
    user: Session,
    key: String,
}

impl Matrix {
    async fn start() -> Matrix {
        let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
        let app = TestApp::spawn().await;
        let admin = app.admin("admin@example.com").await;
        let user = app.register("user@example.com").await;
        let m = Matrix { app, mock, admin, user, key: String::new() };
        for upstream in Upstream::ALL {
            m.channel(upstream, upstream.model(), "sk-upstream").await;
            m.price(upstream.model()).await;
        }
        m.grant(1_000_000).await;
        let (_, key) = m.app.create_key(&m.user, json!({"name": "matrix"})).await;
        Matrix { key, ..m }
    }

    fn base_url(&self, upstream: Upstream) -> String {
        let openai = self.mock.base_url(); // http://127.0.0.1:PORT/v1
        match upstream {
            Upstream::OpenAi => openai,
            _ => openai.trim_end_matches("/v1").to_owned(),
        }
    }

    async fn channel(&self, upstream: Upstream, model: &str, key: &str) -> i64 {
        let body = json!({
            "name": format!("{}-{model}", upstream.provider()),
            "provider": upstream.provider(),
            "base_url": self.base_url(upstream),
            "keys": [key],
            "models": [model],
            "model_map": {model: upstream.upstream_model()},
        });
        let res =
            self.app.post("/api/admin/channels").bearer_auth(&self.admin.access).json(&body).send().await.unwrap();
        let status = res.status();
        let answer: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_i64().unwrap()
    }

    async fn price(&self, model: &str) {
        let res = self
            .app
            .req(reqwest::Method::PUT, &format!("/api/admin/models/{model}"))
            .bearer_auth(&self.admin.access)
            .json(&json!({"input_per_mtok": PRICE.0, "output_per_mtok": PRICE.1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    async fn grant(&self, amount: i64) {
        let res = self
            .app
            .post(&format!("/api/admin/users/{}/credits", self.user.user_id))
            .bearer_auth(&self.admin.access)
            .json(&json!({"kind": "grant", "amount": amount}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    async fn send(&self, client: Client, model: &str, stream: bool, extra: Value) -> reqwest::Response {
        let mut body = match client {
            Client::OpenAi => json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]}),
            Client::Anthropic => {
                json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]})
            }
        };
        if stream {
            body["stream"] = json!(true);
        }
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        match client {
            Client::OpenAi => self.app.post("/v1/chat/completions").bearer_auth(&self.key).json(&body),
            Client::Anthropic => self
                .app
                .post("/v1/messages")
                .header("x-api-key", &self.key)
                .header("anthropic-version", "2023-06-01")
                .json(&body),
        }
        .send()
        .await
        .unwrap()
    }

    /// The user's call log, newest first, once it has `n` rows.
    async fn logs(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let res = self.app.get("/api/usage/logs?limit=200").bearer_auth(&self.user.access).send().await.unwrap();
            let items = res.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone();
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the call log never reached {n} rows");
    }

    async fn ledger_matches_balance(&self) {
        self.app.assert_settled(self.user.user_id).await;
    }
}

fn prompt_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 / 4).max(1)
}

fn cost(prompt: i64, completion: i64) -> i64 {
    prompt * PRICE.0 / 1_000_000 + completion * PRICE.1 / 1_000_000
}

/// A stream's events as `(event name, data)`, ids and timestamps masked for snapshots.
fn events(text: &str) -> Vec<(Option<String>, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let value = if data == "[DONE]" { json!("[DONE]") } else { mask(serde_json::from_str(&data).unwrap()) };
            (name, value)
        })
        .collect()
}

/// Replaces ids and timestamps, which differ per run, with placeholders.
fn mask(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match k.as_str() {
                        "id" if child.is_string() => *child = json!("<id>"),
                        "created" | "created_at" if child.is_number() => *child = json!(0),
                        "system_fingerprint" => *child = json!("<fp>"),
                        _ => walk(child),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The text a client got, whatever its format.
fn text_of(client: Client, stream: bool, body: &str) -> String {
    match (client, stream) {
        (Client::OpenAi, false) => {
            let v: Value = serde_json::from_str(body).unwrap();
            v["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
        }
        (Client::Anthropic, false) => {
            let v: Value = serde_json::from_str(body).unwrap();
            v["content"].as_array().unwrap().iter().filter_map(|b| b["text"].as_str()).collect()
        }
        (Client::OpenAi, true) => events(body)
            .iter()
            .filter_map(|(_, v)| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect(),
        (Client::Anthropic, true) => events(body)
            .iter()
            .filter(|(name, _)| name.as_deref() == Some("content_block_delta"))
            .filter_map(|(_, v)| v["delta"]["text"].as_str().map(str::to_owned))
            .collect(),
    }
}

/// The stream's framing is the client's format: OpenAI chunks ending in `[DONE]` with a
/// `stop` finish; Anthropic's event sequence from `message_start` to `message_stop`.
fn assert_well_formed(client: Client, body: &str, label: &str) {
    let events = events(body);
    match client {
        Client::OpenAi => {
            assert_eq!(events.last().map(|(_, v)| v.clone()), Some(json!("[DONE]")), "{label}");
            let finishes: Vec<&Value> = events
                .iter()
                .filter_map(|(_, v)| v["choices"][0].get("finish_reason"))
                .filter(|f| !f.is_null())
                .collect();
            assert_eq!(finishes, vec![&json!("stop")], "{label}");
            assert!(events.iter().all(|(name, _)| name.is_none()), "{label}");
        }
        Client::Anthropic => {
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap_or("-")).collect();
            assert_eq!(names.first(), Some(&"message_start"), "{label}: {names:?}");
            assert_eq!(names.last(), Some(&"message_stop"), "{label}: {names:?}");
            let starts = names.iter().filter(|n| **n == "content_block_start").count();
            let stops = names.iter().filter(|n| **n == "content_block_stop").count();
            assert_eq!((starts, stops), (1, 1), "{label}: {names:?}");
            let delta = events.iter().find(|(n, _)| n.as_deref() == Some("message_delta")).expect(label);
            assert_eq!(delta.1["delta"]["stop_reason"], "end_turn", "{label}");
            for (name, data) in &events {
                assert_eq!(data["type"].as_str(), name.as_deref(), "{label}: the type names the event");
            }
        }
    }
}

#[tokio::test]
async fn every_client_format_reaches_every_upstream_format_and_is_billed_exactly() {
    let m = Matrix::start().await;
    let prompt = prompt_tokens(PROMPT);
    let mut done = 0;
    for client in [Client::OpenAi, Client::Anthropic] {
        for upstream in Upstream::ALL {
            for stream in [false, true] {
                let label = format!("{client:?} client, {upstream:?} upstream, stream {stream}");
                let res = m.send(client, upstream.model(), stream, json!({})).await;
                let status = res.status();
                let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
                let body = res.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "{label}: {body}");
                assert_eq!(text_of(client, stream, &body), SENTENCE, "{label}");
                let name =
                    format!("{client:?}_{upstream:?}_{}", if stream { "stream" } else { "whole" }).to_lowercase();
                if stream {
                    assert_eq!(content_type, "text/event-stream", "{label}");
                    assert_well_formed(client, &body, &label);
                    insta::assert_json_snapshot!(name, events(&body));
                } else {
                    let value = mask(serde_json::from_str(&body).unwrap());
                    match client {
                        Client::OpenAi => {
                            assert_eq!(value["choices"][0]["finish_reason"], "stop", "{label}");
                            assert_eq!(value["usage"]["prompt_tokens"], prompt, "{label}");
                            assert_eq!(value["usage"]["completion_tokens"], 8, "{label}");
                        }
                        Client::Anthropic => {
                            assert_eq!(value["type"], "message", "{label}");
                            assert_eq!(value["stop_reason"], "end_turn", "{label}");
                            assert_eq!(value["usage"]["input_tokens"], prompt, "{label}");
                            assert_eq!(value["usage"]["output_tokens"], 8, "{label}");
                        }
                    }
                    insta::assert_json_snapshot!(name, value);
                }
                done += 1;
                let logs = m.logs(done).await;
                let row = &logs[0];
                assert_eq!(row["model"], upstream.model(), "{label}");
                assert_eq!(row["status"], 200, "{label}");
                assert_eq!(
                    (row["input_tokens"].as_i64(), row["output_tokens"].as_i64()),
                    (Some(prompt), Some(8)),
                    "{label}"
                );
                assert_eq!(row["credits"], cost(prompt, 8), "{label}");
            }
        }
    }
    m.ledger_matches_balance().await;
    let stats = m.mock.stats();
    assert_eq!(stats.chat_completions, 4, "two clients × stream or not reached the OpenAI upstream");
}

#[tokio::test]
async fn anthropic_errors_and_validation_are_in_anthropics_shape() {
    let m = Matrix::start().await;
    let res = m
        .app
        .post("/v1/messages")
        .header("x-api-key", &m.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": Upstream::OpenAi.model(), "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_tokens"), "{body}");

    let res = m.app.post("/v1/messages").header("x-api-key", "sk-ff-wrong").json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");

    let res = m.send(Client::Anthropic, "no-such-model", false, json!({})).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    assert_eq!(m.mock.stats().requests, 0, "nothing reached an upstream");
}

#[tokio::test]
async fn count_tokens_asks_an_anthropic_channel_or_estimates() {
    let m = Matrix::start().await;
    let count = |model: &'static str| {
        m.app
            .post("/v1/messages/count_tokens")
            .header("x-api-key", &m.key)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]}))
            .send()
    };
    let upstream = count(Upstream::Anthropic.model()).await.unwrap();
    assert_eq!(upstream.status(), StatusCode::OK);
    assert!(upstream.headers().get("x-firefly-estimate").is_none());
    let body: Value = upstream.json().await.unwrap();
    assert_eq!(body["input_tokens"], prompt_tokens(PROMPT));

    let estimated = count(Upstream::Gemini.model()).await.unwrap();
    assert_eq!(estimated.status(), StatusCode::OK);
    assert_eq!(estimated.headers()["x-firefly-estimate"], "true");
    let body: Value = estimated.json().await.unwrap();
    assert_eq!(body["input_tokens"], prompt_tokens(PROMPT));
    // Counting is free and leaves no call-log row.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs: Value =
        m.app.get("/api/usage/logs").bearer_auth(&m.user.access).send().await.unwrap().json().await.unwrap();
    assert_eq!(logs["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_upstream_refusal_reaches_the_client_in_its_own_format() {
    let m = Matrix::start().await;
    // A 400 from each upstream format, passed to each client format.
    for upstream in Upstream::ALL {
        let model = format!("refuse-{}", upstream.provider());
        m.channel(upstream, &model, "x-mock:status=400").await;
        m.price(&model).await;
    }
    for client in [Client::OpenAi, Client::Anthropic] {
        for upstream in Upstream::ALL {
            let label = format!("{client:?} client, {upstream:?} upstream");
            let model = format!("refuse-{}", upstream.provider());
            let res = m.send(client, &model, false, json!({})).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{label}");
            let body: Value = res.json().await.unwrap();
            match client {
                Client::OpenAi => assert!(body["error"]["message"].is_string(), "{label}: {body}"),
                Client::Anthropic => {
                    assert_eq!(body["type"], "error", "{label}: {body}");
                    assert_eq!(body["error"]["type"], "invalid_request_error", "{label}: {body}");
                }
            }
        }
    }
    m.ledger_matches_balance().await;
}

/// What a broken upstream sends after one good text event.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// An event whose data is not JSON.
    InvalidJson,
    /// The connection closes inside an event.
    Truncated,
    /// The connection closes between events, before the stream's documented end.
    EarlyClose,
}

/// One good event in `upstream`'s format carrying the text "Hello", then `fault`.
fn broken_stream(upstream: Upstream, fault: Fault) -> String {
    let good = match upstream {
        Upstream::OpenAi => "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n".to_owned(),
        Upstream::Anthropic => concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        )
        .to_owned(),
        Upstream::Gemini => "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hello\"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1,\"totalTokenCount\":6}}\r\n\r\n".to_owned(),
    };
    let tail = match (fault, upstream) {
        (Fault::InvalidJson, Upstream::Anthropic) => "event: content_block_delta\ndata: {oops\n\n",
        (Fault::InvalidJson, _) => "data: {oops\n\n",
        (Fault::Truncated, Upstream::Anthropic) => "event: content_block_delta\ndata: {\"type\":\"content_blo",
        (Fault::Truncated, _) => "data: {\"candid",
        (Fault::EarlyClose, _) => "",
    };
    good + tail
}

/// A local upstream that answers every request with a 200 event stream of `body`, then
/// closes the connection. Returns its origin.
async fn broken_upstream(body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                // Read the request head and its body (small JSON) before answering.
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn a_malformed_upstream_stream_ends_the_clients_stream_with_an_error_and_bills_what_came() {
    let m = Matrix::start().await;
    let mut rows = 0;
    for upstream in Upstream::ALL {
        for fault in [Fault::InvalidJson, Fault::Truncated, Fault::EarlyClose] {
            let origin = broken_upstream(broken_stream(upstream, fault)).await;
            let model = format!("broken-{}-{fault:?}", upstream.provider()).to_lowercase();
            let base = if upstream == Upstream::OpenAi { format!("{origin}/v1") } else { origin };
            let body = json!({"name": model, "provider": upstream.provider(), "base_url": base, "keys": ["k"],
                              "models": [model]});
            let res = m.app.post("/api/admin/channels").bearer_auth(&m.admin.access).json(&body).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            m.price(&model).await;
            for client in [Client::OpenAi, Client::Anthropic] {
                let label = format!("{client:?} client, {upstream:?} upstream, {fault:?}");
                let res = m.send(client, &model, true, json!({})).await;
                assert_eq!(res.status(), StatusCode::OK, "{label}: the stream had started");
                let text = res.text().await.unwrap();
                assert!(text.contains("Hello"), "{label}: what came was delivered: {text}");
                let last = text.trim_end().rsplit("\n\n").next().unwrap();
                match client {
                    Client::OpenAi => {
                        assert!(!text.contains("data: [DONE]"), "{label}: {text}");
                        let data = last.strip_prefix("data: ").unwrap_or_else(|| panic!("{label}: {last}"));
                        let error: Value = serde_json::from_str(data).unwrap();
                        assert!(error["error"]["message"].is_string(), "{label}: {last}");
                    }
                    Client::Anthropic => {
                        assert!(last.starts_with("event: error\n"), "{label}: {text}");
                        assert!(!text.contains("event: message_stop"), "{label}: {text}");
                        let data: Value = serde_json::from_str(last.split_once("data: ").unwrap().1).unwrap();
                        assert_eq!(data["type"], "error", "{label}");
                    }
                }
                rows += 1;
                let logs = m.logs(rows).await;
                let row = &logs[0];
                assert_eq!(row["status"], 502, "{label}: {row}");
                assert!(row["error_code"].is_string(), "{label}: {row}");
                assert!(row["output_tokens"].as_i64().unwrap() >= 1, "{label}: the delivered text is billed: {row}");
                assert!(row["credits"].as_i64().unwrap() >= 1, "{label}: {row}");
            }
        }
    }
    let health = m.app.get("/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "nothing panicked the server");
    m.ledger_matches_balance().await;
}

#[tokio::test]
async fn tool_calls_cross_every_format_pair() {
    let m = Matrix::start().await;
    for upstream in Upstream::ALL {
        let model = format!("tools-{}", upstream.provider());
        m.channel(upstream, &model, "x-mock:tool-call=1;chunks=3").await;
        m.price(&model).await;
    }
    let openai_tools = json!([{"type": "function", "function": {"name": "lookup", "description": "Look a thing up",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]);
    let anthropic_tools = json!([{"name": "lookup", "description": "Look a thing up",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}]);
    for client in [Client::OpenAi, Client::Anthropic] {
        for upstream in Upstream::ALL {
            for stream in [false, true] {
                let label = format!("{client:?} client, {upstream:?} upstream, stream {stream}");
                let model = format!("tools-{}", upstream.provider());
                let tools = if client == Client::OpenAi { &openai_tools } else { &anthropic_tools };
                let res = m.send(client, &model, stream, json!({"tools": tools})).await;
                let status = res.status();
                let body = res.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "{label}: {body}");
                let (name, arguments, stop) = tool_call_of(client, stream, &body);
                assert_eq!(name, "lookup", "{label}: {body}");
                let arguments: Value =
                    serde_json::from_str(&arguments).unwrap_or_else(|e| panic!("{label}: {e}: {arguments}"));
                assert!(
                    arguments["text"].as_str().is_some_and(|t| t.starts_with("Firefly mock")),
                    "{label}: {arguments}"
                );
                let expected = if client == Client::OpenAi { "tool_calls" } else { "tool_use" };
                assert_eq!(stop, expected, "{label}");
            }
        }
    }
    m.ledger_matches_balance().await;
}

/// The one tool call in an answer: its name, its arguments as JSON text, and the stop reason.
fn tool_call_of(client: Client, stream: bool, body: &str) -> (String, String, String) {
    match (client, stream) {
        (Client::OpenAi, false) => {
            let v: Value = serde_json::from_str(body).unwrap();
            let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
            (s(&call["name"]), s(&call["arguments"]), s(&v["choices"][0]["finish_reason"]))
        }
        (Client::Anthropic, false) => {
            let v: Value = serde_json::from_str(body).unwrap();
            let block = v["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
            (s(&block["name"]), block["input"].to_string(), s(&v["stop_reason"]))
        }
        (Client::OpenAi, true) => {
            let (mut name, mut arguments, mut stop) = (String::new(), String::new(), String::new());
            for (_, v) in events(body) {
                let choice = &v["choices"][0];
                if let Some(call) = choice["delta"]["tool_calls"].get(0) {
                    name.push_str(call["function"]["name"].as_str().unwrap_or(""));
                    arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                }
                if let Some(reason) = choice["finish_reason"].as_str() {
                    stop = reason.to_owned();
                }
            }
            (name, arguments, stop)
        }
        (Client::Anthropic, true) => {
            let (mut name, mut arguments, mut stop) = (String::new(), String::new(), String::new());
            for (event, v) in events(body) {
                match event.as_deref() {
                    Some("content_block_start") if v["content_block"]["type"] == "tool_use" => {
                        name = s(&v["content_block"]["name"]);
                    }
                    Some("content_block_delta") => {
                        arguments.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
                    }
                    Some("message_delta") => stop = s(&v["delta"]["stop_reason"]),
                    _ => {}
                }
            }
            (name, arguments, stop)
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn models_are_listed_in_anthropics_shape_for_anthropic_clients() {
    let m = Matrix::start().await;
    let list = |anthropic: bool| {
        let request = m.app.get("/v1/models").header("x-api-key", &m.key);
        if anthropic { request.header("anthropic-version", "2023-06-01") } else { request }.send()
    };
    let openai: Value = list(false).await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    let anthropic: Value = list(true).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = anthropic["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["via-anthropic", "via-gemini", "via-openai"]);
    assert!(anthropic["data"].as_array().unwrap().iter().all(|d| d["type"] == "model"));
    assert_eq!((anthropic["has_more"].as_bool(), anthropic["first_id"].as_str()), (Some(false), Some("via-anthropic")));
    let one: Value = m
        .app
        .get("/v1/models/via-gemini")
        .header("x-api-key", &m.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((one["type"].as_str(), one["id"].as_str()), (Some("model"), Some("via-gemini")));
}

#[tokio::test]
async fn channel_probes_speak_each_channels_format() {
    let m = Matrix::start().await;
    let channels: Value =
        m.app.get("/api/admin/channels").bearer_auth(&m.admin.access).send().await.unwrap().json().await.unwrap();
    let items = channels["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for channel in items {
        let id = channel["id"].as_i64().unwrap();
        let res =
            m.app.post(&format!("/api/admin/channels/{id}/test")).bearer_auth(&m.admin.access).send().await.unwrap();
        let probe: Value = res.json().await.unwrap();
        assert_eq!(probe["ok"], true, "{channel}: {probe}");
        assert!(probe["message"].as_str().unwrap().ends_with("tokens"), "usage was read: {probe}");
    }
    let stats = m.mock.stats();
    assert_eq!((stats.chat_completions, stats.messages, stats.gemini), (1, 1, 1));
}
