//! DashScope's error body, `{"code","message","request_id"}`, with the codes Model Studio
//! documents for each status.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use super::request_id;
use crate::state::Refusal;

#[derive(Debug)]
pub(crate) struct DashScopeError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// The code and message DashScope answers a status with.
fn defaults(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("InvalidParameter", "Invalid parameter (injected by firefly-mock)."),
        401 => ("InvalidApiKey", "Invalid API-key provided."),
        403 => ("AccessDenied", "Access denied."),
        404 => ("ModelNotFound", "Model not exist."),
        429 => ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
        500 => ("InternalError", "An internal error has occured, please try again later or contact service support."),
        503 => ("ServiceUnavailable", "The service is unavailable, please try again later."),
        s if s >= 500 => ("InternalError", "Upstream failure (injected by firefly-mock)."),
        _ => ("InvalidParameter", "Request rejected (injected by firefly-mock)."),
    }
}

/// The message DashScope pairs with a code, for codes set by `x-mock-error-code`.
fn message_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "Arrearage" => "Access denied, please make sure your account is in good standing.",
        "InvalidApiKey" => "Invalid API-key provided.",
        "Throttling.RateQuota" => "Requests rate limit exceeded, please try again later.",
        "Throttling.AllocationQuota" => "Allocated quota exceeded, please increase your quota limit.",
        "DataInspectionFailed" => "Input data may contain inappropriate content.",
        _ => return None,
    })
}

impl DashScopeError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        DashScopeError { status, code: Cow::Borrowed(code), message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        DashScopeError::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    pub(crate) fn body_error(e: serde_json::Error) -> Self {
        DashScopeError::invalid(format!("The request body is not valid: {e}"))
    }

    /// Synchronous calls to an asynchronous-only API (no `X-DashScope-Async: enable`).
    pub(crate) fn synchronous_call() -> Self {
        DashScopeError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "current user api does not support synchronous calls",
        )
    }

    /// An error of `status`; `code` (from `x-mock-error-code`) replaces the code, and brings
    /// its documented message when it is one the mock knows (`Arrearage`, ...).
    pub(crate) fn injected(status: StatusCode, code: Option<String>) -> Self {
        let (default_code, default_message) = defaults(status);
        match code {
            None => DashScopeError::new(status, default_code, default_message),
            Some(code) => DashScopeError {
                status,
                message: Cow::Borrowed(message_for(&code).unwrap_or(default_message)),
                code: Cow::Owned(code),
            },
        }
    }

    pub(crate) fn refused(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => {
                DashScopeError::new(StatusCode::UNAUTHORIZED, "InvalidApiKey", "No API-key provided.")
            }
            Refusal::FailKey(status) => DashScopeError::injected(status, None),
            Refusal::Injected(status, code) => DashScopeError::injected(status, code),
        }
    }
}

impl IntoResponse for DashScopeError {
    fn into_response(self) -> Response {
        let id = request_id();
        let body = Body { code: &self.code, message: &self.message, request_id: &id };
        let json = serde_json::to_vec(&body).expect("an error body serializes");
        let mut response = (self.status, Bytes::from(json)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
