//! Google's error body, `{"error":{"code","message","status"[,"details"]}}`, with the
//! canonical status name for each HTTP status.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::state::Refusal;

#[derive(Debug)]
pub(crate) struct GeminiError {
    status: StatusCode,
    message: Cow<'static, str>,
    name: Cow<'static, str>,
    /// `API_KEY_INVALID` carries an `ErrorInfo` detail with that reason.
    key_invalid: bool,
}

#[derive(Serialize)]
pub(crate) struct Body<'a> {
    pub error: Inner<'a>,
}

#[derive(Serialize)]
pub(crate) struct Inner<'a> {
    pub code: u16,
    pub message: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<[ErrorInfo; 1]>,
}

#[derive(Serialize)]
pub(crate) struct ErrorInfo {
    #[serde(rename = "@type")]
    kind: &'static str,
    reason: &'static str,
    domain: &'static str,
    metadata: ErrorMetadata,
}

#[derive(Serialize)]
pub(crate) struct ErrorMetadata {
    service: &'static str,
}

/// The canonical code name Google pairs with an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Request contains an invalid argument.",
        401 => "Request had invalid authentication credentials.",
        403 => "The caller does not have permission",
        404 => "Requested entity was not found.",
        429 => "Resource has been exhausted (e.g. check quota).",
        500 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        503 => "The model is overloaded. Please try again later.",
        504 => "Deadline expired before operation could complete.",
        s if s >= 500 => "Upstream failure (injected by firefly-mock).",
        _ => "Request rejected (injected by firefly-mock).",
    }
}

pub(crate) const API_KEY_INVALID: &str = "API_KEY_INVALID";

impl GeminiError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        GeminiError { status, message: message.into(), name: Cow::Borrowed(status_name(status)), key_invalid: false }
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        GeminiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        GeminiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn body_error(e: serde_json::Error) -> Self {
        GeminiError::invalid(format!("Invalid JSON payload received. {e}"))
    }

    /// A key Google does not know: 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
    pub(crate) fn key_invalid() -> Self {
        let mut error = GeminiError::invalid("API key not valid. Please pass a valid API key.");
        error.key_invalid = true;
        error
    }

    /// An error of `status`; `code` (from `x-mock-error-code`) replaces the status name, and
    /// `API_KEY_INVALID` gives the invalid-key body.
    pub(crate) fn injected(status: StatusCode, code: Option<String>) -> Self {
        match code {
            Some(code) if code == API_KEY_INVALID => GeminiError::key_invalid(),
            Some(code) => GeminiError { name: Cow::Owned(code), ..GeminiError::new(status, default_message(status)) },
            None => GeminiError::new(status, default_message(status)),
        }
    }

    pub(crate) fn refused(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => GeminiError::new(
                StatusCode::FORBIDDEN,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API \
                 Key or other form of API consumer identity to call this API.",
            ),
            // A key the mock was told to refuse reads, at 400/401, as one Google does not know.
            Refusal::FailKey(status) if matches!(status.as_u16(), 400 | 401) => GeminiError::key_invalid(),
            Refusal::FailKey(status) => GeminiError::injected(status, None),
            Refusal::Injected(status, code) => GeminiError::injected(status, code),
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let details = self.key_invalid.then_some([ErrorInfo {
            kind: "type.googleapis.com/google.rpc.ErrorInfo",
            reason: API_KEY_INVALID,
            domain: "googleapis.com",
            metadata: ErrorMetadata { service: "generativelanguage.googleapis.com" },
        }]);
        let body =
            Body { error: Inner { code: self.status.as_u16(), message: &self.message, status: &self.name, details } };
        serde_json::to_vec(&body).expect("an error body serializes")
    }

    /// The error a stream reports after its 200 head: the model overloaded.
    pub(crate) fn overloaded() -> Self {
        GeminiError::new(StatusCode::SERVICE_UNAVAILABLE, default_message(StatusCode::SERVICE_UNAVAILABLE))
    }
}

impl IntoResponse for GeminiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Bytes::from(self.to_json())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
        response
    }
}
