//! Anthropic's error bodies, and passing an upstream's error to a client of the other format.

use serde_json::{json, Value};

use crate::adapter::ErrorInfo;

/// `{"type":"error","error":{"type":<kind>,"message":<message>}}`.
pub fn error_body(kind: &str, message: &str) -> Vec<u8> {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Anthropic's error type for an HTTP status.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The longest upstream body quoted as a message when it is not a JSON error.
const MAX_QUOTED: usize = 512;

/// The message of an error body, or the body itself when it is not a JSON error.
fn message_of(status: u16, body: &[u8]) -> String {
    if let Some(message) = ErrorInfo::parse(body).and_then(|info| info.message) {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("the upstream answered with status {status}");
    }
    match text.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// An OpenAI-compatible upstream's error answer as the body an Anthropic client expects,
/// keeping the message; the type follows the status.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Vec<u8> {
    error_body(error_type_for_status(status), &message_of(status, body))
}

/// An Anthropic upstream's error answer as the body an OpenAI client expects, keeping the
/// message and Anthropic's error type (`type`; OpenAI clients read the message and the
/// status).
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let kind = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("type")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| error_type_for_status(status).to_owned());
    let body = json!({"error": {"message": message_of(status, body), "type": kind, "param": null, "code": null}});
    serde_json::to_vec(&body).unwrap_or_default()
}
