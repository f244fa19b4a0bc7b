//! Wan (Wanx) text-to-image: an OpenAI image request as a task submission, the task's
//! states, and its images as an OpenAI answer.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::is_task_id;
use crate::media::{ImageRequest, ImageSize};
use crate::transcode::TranscodeError;

/// The task submission for an OpenAI image request: `prompt`, `n`, and `size` written
/// DashScope's way (`1024x1024` → `1024*1024`; `auto` leaves the model's default).
pub fn image_request_from_openai(req: &ImageRequest, upstream_model: &str) -> Vec<u8> {
    let mut parameters = Map::new();
    if let Some(ImageSize::Pixels { width, height }) = req.size() {
        parameters.insert("size".to_owned(), Value::String(format!("{width}*{height}")));
    }
    parameters.insert("n".to_owned(), Value::from(req.n()));
    let body = json!({
        "model": upstream_model,
        "input": {"prompt": req.prompt()},
        "parameters": parameters,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    task_status: Option<String>,
    #[serde(default)]
    results: Option<Vec<Value>>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    image_count: Option<u64>,
}

fn read(body: &[u8]) -> Result<(Output, Option<Usage>), TranscodeError> {
    super::read_answer(body, "task")
}

/// The task id of a submission's answer, `{"output":{"task_id","task_status"},"request_id"}`.
pub fn parse_task_submit(body: &[u8]) -> Result<String, TranscodeError> {
    let (output, _) = read(body)?;
    match output.task_id {
        Some(id) if is_task_id(&id) => Ok(id),
        Some(id) => Err(TranscodeError::upstream(format!("DashScope sent an unusable task id {id:?}"))),
        None => Err(TranscodeError::upstream("a DashScope task submission answer has no task id")),
    }
}

/// Where an image task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Queued (`PENDING`, or `SUSPENDED`): poll again.
    Pending,
    /// Being made: poll again.
    Running,
    /// Done: the images' URLs (valid for 24 hours) and how many images are billed
    /// (`usage.image_count`, else the URLs).
    Succeeded { urls: Vec<String>, image_count: u64 },
    /// Ended without images: `FAILED` with DashScope's code and message, `CANCELED`
    /// (`TaskCanceled`), `UNKNOWN` (`UnknownTask`: never submitted, or expired after 24
    /// hours), or `SUCCEEDED` with no image (the first result's code, for instance
    /// `DataInspectionFailed`).
    Failed { code: String, message: String },
}

/// The state in a poll's answer,
/// `{"output":{"task_id","task_status","results":[{"url"}|{"code","message"}],"code","message"},"usage":{"image_count"}}`.
pub fn parse_task(body: &[u8]) -> Result<TaskState, TranscodeError> {
    let (output, usage) = read(body)?;
    let failed =
        |code: Option<String>, default_code: &str, message: Option<String>, default_message: &str| TaskState::Failed {
            code: code.filter(|c| !c.is_empty()).unwrap_or_else(|| default_code.to_owned()),
            message: message.filter(|m| !m.is_empty()).unwrap_or_else(|| default_message.to_owned()),
        };
    let status = output.task_status.as_deref().unwrap_or_default();
    Ok(match status {
        "PENDING" | "SUSPENDED" => TaskState::Pending,
        "RUNNING" => TaskState::Running,
        "SUCCEEDED" => {
            let results = output.results.unwrap_or_default();
            let urls: Vec<String> = results
                .iter()
                .filter_map(|r| r.get("url").and_then(Value::as_str))
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
            if urls.is_empty() {
                let first = results.first();
                let field = |key: &str| first.and_then(|r| r.get(key)).and_then(Value::as_str).map(str::to_owned);
                failed(field("code"), "NoImage", field("message"), "the image task succeeded without an image")
            } else {
                let image_count = usage.and_then(|u| u.image_count).unwrap_or(urls.len() as u64);
                TaskState::Succeeded { urls, image_count }
            }
        }
        "FAILED" => failed(output.code, "TaskFailed", output.message, "the image task failed"),
        "CANCELED" => failed(output.code, "TaskCanceled", output.message, "the image task was canceled"),
        "UNKNOWN" => failed(
            output.code,
            "UnknownTask",
            output.message,
            "the image task is unknown: never submitted, or expired after 24 hours",
        ),
        "" => return Err(TranscodeError::upstream("a DashScope task answer has no task_status")),
        other => return Err(TranscodeError::upstream(format!("DashScope sent an unknown task status {other:?}"))),
    })
}

/// An OpenAI image answer, `{"created","data":[{"url"}]}`, for a finished task's URLs.
pub fn images_response(urls: &[String], created: i64) -> Vec<u8> {
    let data: Vec<Value> = urls.iter().map(|url| json!({"url": url})).collect();
    serde_json::to_vec(&json!({"created": created, "data": data})).unwrap_or_default()
}
