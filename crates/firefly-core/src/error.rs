//! The one table of stable error codes. Every error a client can see is one of these:
//! a dotted code that never changes meaning, an HTTP status, and a default message safe
//! to show. The README's error table is generated from [`ErrorCode::ALL`] and checked
//! by a test, so the two cannot drift.

use serde::Serialize;

macro_rules! error_codes {
    ($( $variant:ident => ($code:literal, $status:literal, $message:literal), )*) => {
        /// A stable, client-visible error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            pub const fn status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            pub const fn default_message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $message, )* }
            }
        }
    };
}

error_codes! {
    ValidationFailed => ("validation.failed", 422, "The request is invalid; see details for the fields."),
    MalformedJson => ("request.malformed_json", 400, "The request body is not valid JSON."),
    UnsupportedMediaType => ("request.unsupported_media_type", 415, "Expected a JSON body with Content-Type: application/json."),
    BodyTooLarge => ("request.body_too_large", 413, "The request body is larger than the server accepts."),
    InvalidPath => ("request.invalid_path", 400, "A path parameter is invalid."),
    InvalidQuery => ("request.invalid_query", 400, "A query parameter is invalid."),
    RouteNotFound => ("route.not_found", 404, "No route matches this path."),
    MethodNotAllowed => ("route.method_not_allowed", 405, "This route does not accept this method."),
    Unauthenticated => ("auth.unauthenticated", 401, "Authentication is required."),
    InvalidCredentials => ("auth.invalid_credentials", 401, "The email or password is incorrect."),
    TokenInvalid => ("auth.token_invalid", 401, "The token is invalid or has expired."),
    RefreshTokenInvalid => ("auth.refresh_token_invalid", 401, "The refresh token is invalid, expired or revoked."),
    RefreshTokenReused => ("auth.refresh_token_reused", 401, "The refresh token was already used; every session of this login has been revoked."),
    AccountDisabled => ("auth.account_disabled", 403, "This account is disabled."),
    WrongPassword => ("auth.wrong_password", 403, "The current password is incorrect."),
    Forbidden => ("auth.forbidden", 403, "You do not have permission to do this."),
    EmailTaken => ("auth.email_taken", 409, "An account with this email already exists."),
    ApiKeyInvalid => ("api_key.invalid", 401, "The API key is invalid, expired or revoked."),
    ApiKeyIpDenied => ("api_key.ip_denied", 403, "The API key may not be used from this address."),
    ApiKeyModelDenied => ("api_key.model_denied", 403, "This API key may not use this model."),
    ApiKeyCreditLimit => ("api_key.credit_limit_reached", 402, "This API key has reached its credit limit."),
    InsufficientBalance => ("billing.insufficient_balance", 402, "The balance is too low for this request; top up or lower max_tokens."),
    InvalidRequest => ("relay.invalid_request", 400, "The request is invalid."),
    ModelNotFound => ("relay.model_not_found", 404, "The model does not exist or no channel serves it."),
    ModelUnpriced => ("relay.model_unpriced", 400, "The model has no price yet, so it cannot be used; an administrator must price it."),
    NoChannelAvailable => ("relay.no_channel_available", 503, "Every channel serving this model is unavailable right now; retry later."),
    UpstreamFailed => ("relay.upstream_failed", 502, "The upstream provider failed on every channel tried."),
    NotFound => ("resource.not_found", 404, "The resource does not exist."),
    CodeInvalid => ("billing.code_invalid", 404, "No such redemption code."),
    CodeRedeemed => ("billing.code_redeemed", 409, "This redemption code has already been redeemed."),
    CodeExpired => ("billing.code_expired", 409, "This redemption code has expired."),
    RateLimited => ("rate_limit.exceeded", 429, "Too many requests; retry after the time in Retry-After."),
    Conflict => ("resource.conflict", 409, "The request conflicts with the current state."),
    Unavailable => ("service.unavailable", 503, "The service is not ready."),
    Timeout => ("request.timeout", 503, "The request took too long and was abandoned."),
    Internal => ("internal.error", 500, "An internal error occurred; the request id identifies it in the logs."),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field: its path in the request (`email`, `models[2]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// A client-visible error: a code, a message safe to show, optional details.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// Seconds to put in `Retry-After`, for rate limits.
    pub retry_after: Option<u64>,
}

impl Error {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, message: code.default_message().to_owned(), details: None, retry_after: None }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::new(code) }
    }

    pub fn fields(errors: Vec<FieldError>) -> Self {
        let details = serde_json::json!({ "fields": errors });
        Self { details: Some(details), ..Self::new(ErrorCode::ValidationFailed) }
    }

    pub fn field(field: &str, reason: &str) -> Self {
        Self::fields(vec![FieldError::new(field, reason)])
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self { retry_after: Some(retry_after_secs.max(1)), ..Self::new(ErrorCode::RateLimited) }
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_dotted_and_have_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!(code.as_str().contains('.'), "{code} is not dotted");
            assert!((400..600).contains(&code.status()), "{code} has status {}", code.status());
        }
    }
}
