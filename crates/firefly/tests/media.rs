//! Images and speech end to end: OpenAI-compatible channels (bytes passed through) and
//! DashScope's native API (image tasks submitted and polled, speech fetched from its URL),
//! billed per image, per character and per second of audio, against the mock upstream.

mod common;

use common::{expect_error, Session, TestApp};
use firefly_mock::{MockConfig, MockUpstream};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const PER_IMAGE: i64 = 1_000;
/// One credit per character.
const PER_MCHAR: i64 = 1_000_000;
const PER_SECOND: i64 = 100;

struct Media {
    app: TestApp,
    mock: MockUpstream,
    admin: Session,
    user: Session,
    key: String,
}

impl Media {
    async fn start() -> Media {
        let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
        let app = TestApp::spawn().await;
        let admin = app.admin("admin@example.com").await;
        let user = app.register("user@example.com").await;
        let m = Media { app, mock, admin, user, key: String::new() };
        m.grant(1_000_000).await;
        let (_, key) = m.app.create_key(&m.user, json!({"name": "media"})).await;
        Media { key, ..m }
    }

    async fn channel(&self, provider: &str, key: &str, models: Value, model_map: Value) {
        let base = match provider {
            "openai" => self.mock.base_url(),
            _ => self.mock.base_url().trim_end_matches("/v1").to_owned(),
        };
        let body = json!({"name": format!("{provider}-{key}"), "provider": provider, "base_url": base,
                          "keys": [key], "models": models, "model_map": model_map});
        let res =
            self.app.post("/api/admin/channels").bearer_auth(&self.admin.access).json(&body).send().await.unwrap();
        let status = res.status();
        assert_eq!(status, StatusCode::CREATED, "{}", res.text().await.unwrap());
    }

    async fn price(&self, model: &str, price: Value) {
        let res = self
            .app
            .req(reqwest::Method::PUT, &format!("/api/admin/models/{model}"))
            .bearer_auth(&self.admin.access)
            .json(&price)
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
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

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.app.post(path).bearer_auth(&self.key)
    }

    async fn logs(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let res = self.app.get("/api/usage/logs?limit=200").bearer_auth(&self.user.access).send().await.unwrap();
            let items = res.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone();
            if items.len() >= n {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the call log never reached {n} rows");
    }

    async fn balance(&self) -> i64 {
        self.app.state.store.balance(self.user.user_id).await.unwrap()
    }

    async fn ledger_matches_balance(&self) {
        self.app.assert_settled(self.user.user_id).await;
    }
}

fn media_price(per_image: Option<i64>, per_mchar: Option<i64>, per_second: Option<i64>) -> Value {
    json!({"input_per_mtok": 0, "output_per_mtok": 0, "per_image": per_image, "per_mchar": per_mchar,
           "per_second": per_second})
}

/// A mono 16-bit WAV of `ms` milliseconds at 8 kHz (16 000 bytes a second).
fn wav(ms: u32) -> Vec<u8> {
    let data_len = ms * 16;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8_000u32.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.resize(out.len() + data_len as usize, 0);
    out
}

/// A `multipart/form-data` body of text fields and a `file` part holding `file` (a WAV).
fn multipart(fields: &[(&str, Option<&str>, &[u8])], file: &[u8]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "firefly-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, _, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

#[tokio::test]
async fn images_on_openai_and_dashscope_channels_are_billed_per_image() {
    let m = Media::start().await;
    m.channel("openai", "sk-img", json!(["dall-e-2"]), json!({})).await;
    m.channel("dashscope", "sk-wanx", json!(["wanx"]), json!({"wanx": "wanx2.1-t2i-turbo"})).await;
    m.price("dall-e-2", media_price(Some(PER_IMAGE), None, None)).await;
    m.price("wanx", media_price(Some(PER_IMAGE), None, None)).await;
    let before = m.balance().await;

    let res = m
        .post("/v1/images/generations")
        .json(&json!({"model": "dall-e-2", "prompt": "a firefly", "n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");

    // DashScope: submitted as a task, polled until it succeeded, answered in OpenAI's shape.
    let res = m
        .post("/v1/images/generations")
        .json(&json!({"model": "wanx", "prompt": "a firefly at dusk", "n": 3, "size": "1024x1024"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let urls: Vec<&str> = body["data"].as_array().unwrap().iter().map(|d| d["url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 3, "{body}");
    assert!(urls.iter().all(|u| u.contains("/_mock/files/img-")), "{urls:?}");
    assert!(body["created"].as_i64().unwrap() > 1_700_000_000);
    let stats = m.mock.stats();
    assert_eq!(stats.image_synthesis, 1);
    assert!(stats.tasks >= 2, "the task was polled until it finished: {stats:?}");

    let logs = m.logs(2).await;
    assert_eq!(logs[0]["endpoint"], "images.generations");
    assert_eq!(logs[0]["credits"], 3 * PER_IMAGE);
    assert_eq!(logs[1]["credits"], 2 * PER_IMAGE);
    assert_eq!(m.balance().await, before - 5 * PER_IMAGE);
    m.ledger_matches_balance().await;
}

#[tokio::test]
async fn a_failed_image_task_costs_nothing_and_unpriced_units_are_refused() {
    let m = Media::start().await;
    m.channel("dashscope", "x-mock:task-fail=1", json!(["wanx"]), json!({})).await;
    m.price("wanx", media_price(Some(PER_IMAGE), None, None)).await;
    let before = m.balance().await;
    let res = m.post("/v1/images/generations").json(&json!({"model": "wanx", "prompt": "p"})).send().await.unwrap();
    let body = expect_error(res, 502, "relay.upstream_failed").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("task failed"), "{body}");
    let logs = m.logs(1).await;
    assert_eq!(logs[0]["credits"], 0);
    assert_eq!(m.balance().await, before);

    // Priced for images only: no speech, and no chat (token prices 0 mean "not for tokens").
    let res = m
        .post("/v1/audio/speech")
        .json(&json!({"model": "wanx", "input": "hi", "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "relay.model_unpriced").await;
    let res = m
        .post("/v1/chat/completions")
        .json(&json!({"model": "wanx", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "relay.model_unpriced").await;
    // Invalid requests are refused at the edge, in OpenAI's shape.
    let res =
        m.post("/v1/images/generations").json(&json!({"model": "wanx", "prompt": "", "n": 99})).send().await.unwrap();
    expect_error(res, 400, "relay.invalid_request").await;
    m.ledger_matches_balance().await;
}

#[tokio::test]
async fn speech_is_billed_per_character_on_both_provider_kinds() {
    let m = Media::start().await;
    m.channel("openai", "sk-tts", json!(["tts-1"]), json!({})).await;
    m.channel("dashscope", "sk-qwen", json!(["qwen-tts"]), json!({"qwen-tts": "qwen3-tts-flash"})).await;
    m.price("tts-1", media_price(None, Some(PER_MCHAR), None)).await;
    m.price("qwen-tts", media_price(None, Some(PER_MCHAR), None)).await;
    let input = "Hello, firefly!"; // 15 characters
    let before = m.balance().await;

    let res = m
        .post("/v1/audio/speech")
        .json(&json!({"model": "tts-1", "input": input, "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let audio = res.bytes().await.unwrap();
    assert_eq!(&audio[..4], b"RIFF");

    // DashScope answers with a URL; the relay fetches the audio and sends it.
    let res = m
        .post("/v1/audio/speech")
        .json(&json!({"model": "qwen-tts", "input": input, "voice": "Cherry"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let audio = res.bytes().await.unwrap();
    assert_eq!(&audio[..4], b"RIFF");
    assert!(audio.len() > 44, "a real file, not an empty one");
    assert_eq!(m.mock.stats().files, 1, "the audio was fetched once");

    let logs = m.logs(2).await;
    assert!(logs.iter().all(|r| r["endpoint"] == "audio.speech" && r["credits"] == 15), "{logs:?}");
    assert_eq!(m.balance().await, before - 30);
    m.ledger_matches_balance().await;
}

#[tokio::test]
async fn transcriptions_pass_multipart_through_and_bill_the_reported_seconds() {
    let m = Media::start().await;
    m.channel("openai", "sk-whisper", json!(["whisper"]), json!({"whisper": "whisper-1"})).await;
    m.price("whisper", media_price(None, None, Some(PER_SECOND))).await;
    let (content_type, form) =
        multipart(&[("model", None, b"whisper"), ("response_format", None, b"json")], &wav(2_500));
    let res = m.post("/v1/audio/transcriptions").header("content-type", content_type).body(form).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["text"].is_string(), "{body}");
    assert_eq!(body["usage"]["seconds"], 2.5);
    let logs = m.logs(1).await;
    assert_eq!(logs[0]["endpoint"], "audio.transcriptions");
    assert_eq!(logs[0]["credits"], 250, "2.5 s at 100 credits a second");

    // The upstream got the model it knows, and the file byte for byte.
    assert_eq!(m.mock.stats().transcriptions, 1);

    // A body that is not multipart is refused before anything is reserved.
    let res = m.post("/v1/audio/transcriptions").json(&json!({"model": "whisper"})).send().await.unwrap();
    expect_error(res, 400, "relay.invalid_request").await;
    m.ledger_matches_balance().await;
}

#[tokio::test]
async fn dashscope_channels_are_probed_without_spending() {
    let m = Media::start().await;
    m.channel("dashscope", "sk-good", json!(["wanx"]), json!({})).await;
    m.channel("dashscope", "sk-revoked", json!(["wanx-2"]), json!({})).await;
    m.mock.set_fail_key("sk-revoked", 401);
    let channels: Value =
        m.app.get("/api/admin/channels").bearer_auth(&m.admin.access).send().await.unwrap().json().await.unwrap();
    let mut seen = Vec::new();
    for channel in channels["items"].as_array().unwrap() {
        let id = channel["id"].as_i64().unwrap();
        let res =
            m.app.post(&format!("/api/admin/channels/{id}/test")).bearer_auth(&m.admin.access).send().await.unwrap();
        let probe: Value = res.json().await.unwrap();
        seen.push((channel["keys"][0].as_str().map(str::to_owned), probe["ok"].as_bool().unwrap()));
    }
    assert_eq!(seen.iter().filter(|(_, ok)| *ok).count(), 1, "{seen:?}");
    let stats = m.mock.stats();
    assert_eq!((stats.image_synthesis, stats.multimodal_generation), (0, 0), "nothing billable was sent");
    assert_eq!(stats.tasks, 2);
}
