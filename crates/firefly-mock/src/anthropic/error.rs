//! Anthropic's error body, `{"type":"error","error":{"type","message"},"request_id"}`, with the
//! error type Anthropic documents for each status, and the same id in a `request-id` header.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::state::Refusal;

/// Makes request ids unique across the process (they only need to look like Anthropic's).
static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) fn request_id() -> String {
    format!("req_01{:022x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed) + 1)
}

#[derive(Debug)]
pub(crate) struct AnthropicError {
    status: StatusCode,
    kind: Cow<'static, str>,
    message: Cow<'static, str>,
}

#[derive(Serialize)]
pub(crate) struct Body<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: Inner<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct Inner<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// The error type Anthropic documents for a status; other 4xx are `invalid_request_error`,
/// other 5xx `api_error`.
pub(crate) fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Invalid request (injected by firefly-mock).",
        401 => "invalid x-api-key",
        402 => "Your credit balance is too low to access the Anthropic API.",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "The requested resource could not be found.",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "Number of request tokens has exceeded your per-minute rate limit (injected by firefly-mock).",
        500 => "Internal server error",
        504 => "Request timed out",
        529 => "Overloaded",
        s if s >= 500 => "Upstream failure (injected by firefly-mock).",
        _ => "Request rejected (injected by firefly-mock).",
    }
}

impl AnthropicError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        AnthropicError { status, kind: Cow::Borrowed(error_type(status)), message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        AnthropicError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn missing_field(field: &str) -> Self {
        AnthropicError::invalid(format!("{field}: Field required"))
    }

    pub(crate) fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        AnthropicError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn body_error(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => AnthropicError::invalid(format!("Invalid request body: {e}")),
            _ => AnthropicError::invalid("There was an error parsing the body of your request: it is not valid JSON."),
        }
    }

    /// An error of `status`, worded as Anthropic does; `code` (from `x-mock-error-code`)
    /// replaces the error type.
    pub(crate) fn injected(status: StatusCode, code: Option<String>) -> Self {
        let mut error = AnthropicError::new(status, default_message(status));
        if let Some(code) = code {
            error.kind = Cow::Owned(code);
        }
        error
    }

    pub(crate) fn refused(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => AnthropicError::new(StatusCode::UNAUTHORIZED, "x-api-key header is required"),
            Refusal::FailKey(status) => AnthropicError::injected(status, None),
            Refusal::Injected(status, code) => AnthropicError::injected(status, code),
        }
    }

    pub(crate) fn missing_version() -> Self {
        AnthropicError::invalid("anthropic-version: header is required")
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let id = request_id();
        let body =
            Body { kind: "error", error: Inner { kind: &self.kind, message: &self.message }, request_id: Some(&id) };
        let json = serde_json::to_vec(&body).expect("an error body serializes");
        let mut response = (self.status, Bytes::from(json)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(id) = HeaderValue::from_str(&id) {
            headers.insert("request-id", id);
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status.as_u16() == 529 {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
