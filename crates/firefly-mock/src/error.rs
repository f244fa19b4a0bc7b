//! OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
//!
//! Messages, types and codes follow what api.openai.com sends for each status, so a relay's
//! error mapping (retryable or not, which status the client sees) is tested against the real
//! shapes.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// An error answered in OpenAI's format.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    kind: Cow<'static, str>,
    param: Option<&'static str>,
    code: Option<Cow<'static, str>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>, kind: &'static str) -> Self {
        ApiError { status, message: message.into(), kind: Cow::Borrowed(kind), param: None, code: None }
    }

    fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    fn code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// No `Authorization: Bearer …` (or, on Azure routes, no `api-key`).
    pub(crate) fn missing_key() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
        )
    }

    pub(crate) fn unparsable_json() -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using \
             your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not \
             valid JSON.)",
            "invalid_request_error",
        )
    }

    pub(crate) fn invalid_body(detail: String) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid request body: {detail}"), "invalid_request_error")
    }

    pub(crate) fn missing_parameter(param: &'static str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Missing required parameter: '{param}'."),
            "invalid_request_error",
        )
        .param(param)
        .code("missing_required_parameter")
    }

    pub(crate) fn missing_model() -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "you must provide a model parameter", "invalid_request_error")
    }

    pub(crate) fn invalid_value(param: &'static str, message: String) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message, "invalid_request_error").param(param).code("invalid_value")
    }

    pub(crate) fn model_not_found(model: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
        )
        .code("model_not_found")
    }

    pub(crate) fn unknown_route(method: &http::Method, path: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("Invalid URL ({method} {path})"), "invalid_request_error")
    }

    /// Azure answers a missing or unknown `api-version` with 404 "Resource not found".
    pub(crate) fn azure_missing_api_version() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Resource not found", "invalid_request_error").code("404")
    }

    /// The error an upstream answers with `status`, as injected by `x-mock-status` or a fail key.
    /// `code` (from `x-mock-error-code`) replaces the default code, e.g. `insufficient_quota`.
    pub(crate) fn injected(status: StatusCode, code: Option<String>) -> Self {
        let mut error = match status.as_u16() {
            400 => ApiError::new(status, "Invalid request (injected by firefly-mock).", "invalid_request_error"),
            401 => ApiError::new(
                status,
                "Incorrect API key provided. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
            )
            .code("invalid_api_key"),
            403 => ApiError::new(
                status,
                "Project does not have access to this model (injected by firefly-mock).",
                "invalid_request_error",
            )
            .code("model_not_found"),
            404 => ApiError::new(
                status,
                "The model does not exist or you do not have access to it (injected by firefly-mock).",
                "invalid_request_error",
            )
            .code("model_not_found"),
            429 => ApiError::new(
                status,
                "Rate limit reached for requests (injected by firefly-mock). Please try again in 1s.",
                "requests",
            )
            .code("rate_limit_exceeded"),
            500 => ApiError::new(
                status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            ),
            503 => ApiError::new(status, "The server is overloaded or not ready yet.", "server_error"),
            s if s >= 500 => ApiError::new(status, "Upstream failure (injected by firefly-mock).", "server_error"),
            _ => ApiError::new(status, "Request rejected (injected by firefly-mock).", "invalid_request_error"),
        };
        if let Some(code) = code {
            // OpenAI reports an exhausted quota with the same word as type and code.
            if code == "insufficient_quota" {
                error.kind = Cow::Borrowed("insufficient_quota");
                error.message =
                    Cow::Borrowed("You exceeded your current quota, please check your plan and billing details.");
            }
            error.code = Some(Cow::Owned(code));
        }
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner { message: &self.message, kind: &self.kind, param: self.param, code: self.code.as_deref() },
        };
        let json = serde_json::to_vec(&body).expect("an error body serializes");
        let mut response = (self.status, Bytes::from(json)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
