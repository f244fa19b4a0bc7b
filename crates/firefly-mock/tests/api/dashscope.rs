//! DashScope's asynchronous image synthesis with task polling, and Qwen-TTS.

use firefly_mock::MockConfig;
use serde_json::{json, Value};

use crate::{Harness, KEY};

const SYNTHESIS: &str = "/api/v1/services/aigc/text2image/image-synthesis";
const GENERATION: &str = "/api/v1/services/aigc/multimodal-generation/generation";

fn submit(h: &Harness) -> reqwest::RequestBuilder {
    h.client.post(format!("{}{SYNTHESIS}", h.mock.origin())).bearer_auth(KEY).header("X-DashScope-Async", "enable")
}

fn image_body(n: u32) -> Value {
    json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "a firefly"}, "parameters": {"n": n, "size": "1024*1024"}})
}

async fn poll(h: &Harness, task_id: &str) -> Value {
    let response = h.client.get(format!("{}/api/v1/tasks/{task_id}", h.mock.origin())).bearer_auth(KEY);
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn dashscope_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["request_id"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

async fn task_id(h: &Harness, request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let submitted: Value = response.json().await.unwrap();
    assert_eq!(submitted["output"]["task_status"], "PENDING");
    assert!(submitted["request_id"].is_string());
    let _ = h;
    submitted["output"]["task_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn task_goes_pending_running_succeeded_with_results() {
    let h = Harness::start().await;
    let id = task_id(&h, submit(&h).json(&image_body(2))).await;
    let first = poll(&h, &id).await;
    assert_eq!(first["output"]["task_id"], id.as_str());
    assert_eq!(first["output"]["task_status"], "PENDING");
    assert!(first.get("usage").is_none());
    assert_eq!(poll(&h, &id).await["output"]["task_status"], "RUNNING");
    let done = poll(&h, &id).await;
    assert_eq!(done["output"]["task_status"], "SUCCEEDED");
    assert_eq!(done["usage"], json!({"image_count": 2}));
    assert_eq!(done["output"]["task_metrics"], json!({"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0}));
    let results = done["output"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for result in results {
        assert_eq!(result["orig_prompt"], "a firefly");
        assert_eq!(result["actual_prompt"], "a firefly");
        let url = result["url"].as_str().unwrap();
        let file = h.client.get(url).send().await.unwrap();
        assert_eq!(file.headers()["content-type"], "image/png");
    }
    // A finished task stays finished.
    assert_eq!(poll(&h, &id).await["output"]["results"], done["output"]["results"]);
    let stats = h.mock.stats();
    assert_eq!((stats.image_synthesis, stats.tasks, stats.images), (1, 4, 0));
}

#[tokio::test]
async fn task_polls_knob_sets_the_progression() {
    let h = Harness::start().await;
    let id = task_id(&h, submit(&h).header("x-mock-task-polls", "0").json(&image_body(1))).await;
    assert_eq!(poll(&h, &id).await["output"]["task_status"], "SUCCEEDED");

    let id = task_id(&h, submit(&h).header("x-mock-task-polls", "3").json(&image_body(1))).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(poll(&h, &id).await["output"]["task_status"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]);
}

#[tokio::test]
async fn failing_task_knob_ends_in_failed() {
    let h = Harness::start().await;
    let id =
        task_id(&h, submit(&h).header("x-mock-task-fail", "1").header("x-mock-task-polls", "1").json(&image_body(1)))
            .await;
    assert_eq!(poll(&h, &id).await["output"]["task_status"], "PENDING");
    let failed = poll(&h, &id).await;
    assert_eq!(failed["output"]["task_status"], "FAILED");
    assert_eq!(failed["output"]["code"], "DataInspectionFailed");
    assert!(failed["output"]["message"].is_string());
    assert!(failed.get("usage").is_none());

    let id = task_id(
        &h,
        submit(&h)
            .header("x-mock-task-fail", "InternalError.Timeout")
            .header("x-mock-task-polls", "0")
            .json(&image_body(1)),
    )
    .await;
    assert_eq!(poll(&h, &id).await["output"]["code"], "InternalError.Timeout");
}

#[tokio::test]
async fn unknown_task_is_unknown() {
    let h = Harness::start().await;
    assert_eq!(poll(&h, "no-such-task").await["output"]["task_status"], "UNKNOWN");
}

#[tokio::test]
async fn synchronous_submission_is_access_denied() {
    let h = Harness::start().await;
    let request = h.client.post(format!("{}{SYNTHESIS}", h.mock.origin())).bearer_auth(KEY).json(&image_body(1));
    let error = dashscope_error(request.send().await.unwrap(), 403).await;
    assert_eq!(error["code"], "AccessDenied");
    assert_eq!(error["message"], "current user api does not support synchronous calls");
}

#[tokio::test]
async fn keys_and_injected_errors_use_dashscope_codes() {
    let mut config = MockConfig::default();
    config.fail_keys.insert("sk-bad".into(), 401);
    let h = Harness::with(config).await;
    let url = format!("{}{SYNTHESIS}", h.mock.origin());
    let no_key = h.client.post(&url).header("X-DashScope-Async", "enable").json(&image_body(1));
    assert_eq!(dashscope_error(no_key.send().await.unwrap(), 401).await["code"], "InvalidApiKey");
    let bad_key = h.client.post(&url).bearer_auth("sk-bad").header("X-DashScope-Async", "enable").json(&image_body(1));
    let error = dashscope_error(bad_key.send().await.unwrap(), 401).await;
    assert_eq!(error["code"], "InvalidApiKey");
    assert_eq!(error["message"], "Invalid API-key provided.");

    for (status, code) in [(400, "InvalidParameter"), (429, "Throttling.RateQuota"), (500, "InternalError")] {
        let request = submit(&h).header("x-mock-status", status.to_string()).json(&image_body(1));
        assert_eq!(dashscope_error(request.send().await.unwrap(), status).await["code"], code);
    }
    let request =
        submit(&h).header("x-mock-status", "400").header("x-mock-error-code", "Arrearage").json(&image_body(1));
    let error = dashscope_error(request.send().await.unwrap(), 400).await;
    assert_eq!(error["code"], "Arrearage");
    assert_eq!(error["message"], "Access denied, please make sure your account is in good standing.");

    for body in [json!({"model": "wanx-v1", "input": {}}), json!({"input": {"prompt": "x"}}), image_body(5), json!("x")]
    {
        let error = dashscope_error(submit(&h).json(&body).send().await.unwrap(), 400).await;
        assert_eq!(error["code"], "InvalidParameter", "{body}");
    }
    let not_json = submit(&h).header("content-type", "application/json").body("{{");
    dashscope_error(not_json.send().await.unwrap(), 400).await;
}

#[tokio::test]
async fn qwen_tts_answers_with_an_audio_url() {
    let h = Harness::start().await;
    // "Hello, firefly!" is 15 characters → 3 input tokens, 30 audio tokens, 0.6 s of speech.
    let body = json!({"model": "qwen-tts", "input": {"text": "Hello, firefly!", "voice": "Cherry"}});
    let response = h.client.post(format!("{}{GENERATION}", h.mock.origin())).bearer_auth(KEY).json(&body);
    let answer: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["output"]["finish_reason"], "stop");
    let audio = &answer["output"]["audio"];
    assert!(audio["id"].as_str().unwrap().starts_with("audio_"));
    assert!(audio["expires_at"].as_u64().is_some());
    assert_eq!(
        answer["usage"],
        json!({
            "input_tokens": 3,
            "output_tokens": 30,
            "total_tokens": 33,
            "input_tokens_details": {"text_tokens": 3},
            "output_tokens_details": {"audio_tokens": 30, "text_tokens": 0}
        })
    );
    assert!(answer["request_id"].is_string());
    let file = h.client.get(audio["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "audio/wav");
    assert_eq!(file.bytes().await.unwrap().len(), 44 + 15 * 1920);

    let body = json!({"model": "qwen3-tts-flash", "input": {"text": "Hello, firefly!", "voice": "Cherry"}});
    let response = h.client.post(format!("{}{GENERATION}", h.mock.origin())).bearer_auth(KEY).json(&body);
    let answer: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["usage"], json!({"characters": 15}));

    let missing = h.client.post(format!("{}{GENERATION}", h.mock.origin())).bearer_auth(KEY);
    let error =
        dashscope_error(missing.json(&json!({"model": "qwen-tts", "input": {}})).send().await.unwrap(), 400).await;
    assert_eq!(error["code"], "InvalidParameter");
    assert_eq!(h.mock.stats().multimodal_generation, 3);
}
