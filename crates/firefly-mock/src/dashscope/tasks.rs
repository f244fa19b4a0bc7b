//! DashScope's asynchronous tasks: each poll of `GET /api/v1/tasks/{id}` moves a task along
//! PENDING → RUNNING … → SUCCEEDED (or FAILED). With `x-mock-task-polls: N` (default 2) on the
//! submission, the first N polls report PENDING (the first) and RUNNING (the rest), and poll
//! N + 1 the end. An id the mock never issued is `UNKNOWN`, as DashScope reports expired ones.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::state::unix_now;

/// Tasks kept at most; a long benchmark drops the old ones rather than grow without bound.
const MAX_TASKS: usize = 100_000;

/// The failure code `x-mock-task-fail: 1` stands for.
const DEFAULT_FAILURE: &str = "DataInspectionFailed";

struct Task {
    prompt: String,
    urls: Vec<String>,
    polls_before_end: u64,
    polls: u64,
    failure: Option<String>,
    submitted: u64,
}

#[derive(Default)]
pub(crate) struct Tasks {
    tasks: Mutex<HashMap<String, Task>>,
}

#[derive(Serialize)]
struct Polled<'a> {
    request_id: &'a str,
    output: Output<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Output<'a> {
    task_id: &'a str,
    task_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    submit_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<ImageResult<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

#[derive(Serialize)]
struct ImageResult<'a> {
    orig_prompt: &'a str,
    actual_prompt: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Metrics {
    TOTAL: u64,
    SUCCEEDED: u64,
    FAILED: u64,
}

#[derive(Serialize)]
struct Usage {
    image_count: u64,
}

impl Tasks {
    pub(crate) fn submit(&self, id: String, prompt: String, urls: Vec<String>, polls: u64, failure: Option<&str>) {
        let failure = failure.map(|code| match code {
            "1" | "true" | "yes" => DEFAULT_FAILURE.to_owned(),
            code => code.to_owned(),
        });
        let task = Task { prompt, urls, polls_before_end: polls, polls: 0, failure, submitted: unix_now() };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= MAX_TASKS {
            tasks.clear();
        }
        tasks.insert(id, task);
    }

    /// The task's state after one more poll, as the JSON DashScope answers.
    pub(crate) fn poll(&self, id: &str, request_id: &str) -> Vec<u8> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let Some(task) = tasks.get_mut(id) else {
            let output = Output { task_status: "UNKNOWN", ..Output::new(id) };
            return to_json(&Polled { request_id, output, usage: None });
        };
        task.polls += 1;
        let total = task.urls.len() as u64;
        let metrics = |succeeded, failed| Some(Metrics { TOTAL: total, SUCCEEDED: succeeded, FAILED: failed });
        let mut output = Output { submit_time: Some(datetime(task.submitted)), ..Output::new(id) };
        if task.polls <= task.polls_before_end {
            output.task_status = if task.polls == 1 { "PENDING" } else { "RUNNING" };
            output.task_metrics = metrics(0, 0);
            return to_json(&Polled { request_id, output, usage: None });
        }
        output.scheduled_time = Some(datetime(task.submitted));
        output.end_time = Some(datetime(unix_now()));
        if let Some(code) = &task.failure {
            output.task_status = "FAILED";
            output.code = Some(code);
            output.message = Some(match code.as_str() {
                DEFAULT_FAILURE => "Input data may contain inappropriate content.",
                _ => "The task failed (injected by firefly-mock).",
            });
            output.task_metrics = metrics(0, total);
            return to_json(&Polled { request_id, output, usage: None });
        }
        output.task_status = "SUCCEEDED";
        output.results = Some(
            task.urls
                .iter()
                .map(|url| ImageResult { orig_prompt: &task.prompt, actual_prompt: &task.prompt, url })
                .collect(),
        );
        output.task_metrics = metrics(total, 0);
        to_json(&Polled { request_id, output, usage: Some(Usage { image_count: total }) })
    }
}

impl<'a> Output<'a> {
    fn new(task_id: &'a str) -> Output<'a> {
        Output {
            task_id,
            task_status: "PENDING",
            submit_time: None,
            scheduled_time: None,
            end_time: None,
            results: None,
            task_metrics: None,
            code: None,
            message: None,
        }
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("a task serializes")
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, as DashScope writes task times.
fn datetime(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.000", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::datetime;

    #[test]
    fn datetimes_are_utc_calendar_dates() {
        assert_eq!(datetime(0), "1970-01-01 00:00:00.000");
        assert_eq!(datetime(951_782_400), "2000-02-29 00:00:00.000");
        assert_eq!(datetime(1_763_780_295), "2025-11-22 02:58:15.000");
    }
}
