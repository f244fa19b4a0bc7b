//! The API error. Handlers return `ApiError`; its response carries the error as an
//! extension and the request-context middleware renders the one JSON shape
//! `{"error": {"code", "message", "request_id", "details"?}}` with the request id.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use firefly_core::{Error, ErrorCode};
use firefly_store::StoreError;

#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError(Error::new(code))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                ApiError(Error::with_message(ErrorCode::Conflict, format!("duplicate {what}")))
            }
            other => internal(other),
        }
    }
}

/// Logs an internal cause once (the request id is on the enclosing span) and hides it.
pub fn internal(cause: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %cause, "internal error");
    ApiError(Error::new(ErrorCode::Internal))
}

/// What the middleware renders; kept on the response until then.
#[derive(Clone, Debug)]
pub struct ErrorPayload(pub Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let Some(secs) = self.0.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorPayload(self.0));
        response
    }
}

/// The JSON body of an error on the OpenAI-compatible API (`/v1/...`): OpenAI's shape,
/// `{"error": {"message", "type", "param", "code"}}`, with Firefly's stable code as
/// `code` and the request id alongside.
pub fn openai_error_body(error: &Error, request_id: &str) -> serde_json::Value {
    let kind = match error.code.status() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    let param = error.details.as_ref().and_then(|d| d.get("param")).cloned().unwrap_or(serde_json::Value::Null);
    serde_json::json!({ "error": {
        "message": error.message,
        "type": kind,
        "param": param,
        "code": error.code.as_str(),
        "request_id": request_id,
    }})
}

/// The JSON body of an error on the Anthropic-compatible API (`/v1/messages...`):
/// Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, the type chosen
/// by status as Anthropic chooses it, with Firefly's stable code and the request id
/// alongside (the SDKs ignore fields they do not know).
pub fn anthropic_error_body(error: &Error, request_id: &str) -> serde_json::Value {
    let kind = match error.code.status() {
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    };
    serde_json::json!({
        "type": "error",
        "error": { "type": kind, "message": error.message, "code": error.code.as_str() },
        "request_id": request_id,
    })
}

/// Which error shape a path's clients read.
pub fn error_body_for(path: &str, error: &Error, request_id: &str) -> serde_json::Value {
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        anthropic_error_body(error, request_id)
    } else if path.starts_with("/v1/") {
        openai_error_body(error, request_id)
    } else {
        error_body(error, request_id)
    }
}

/// The JSON body of an error, as clients see it.
pub fn error_body(error: &Error, request_id: &str) -> serde_json::Value {
    let mut inner = serde_json::json!({
        "code": error.code.as_str(),
        "message": error.message,
        "request_id": request_id,
    });
    if let Some(details) = &error.details {
        inner["details"] = details.clone();
    }
    serde_json::json!({ "error": inner })
}
