//! The `anthropic` provider type: Anthropic's API (or a compatible one) at a base URL.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::adapter::{
    join, retry_after, Adapter, BuildError, ErrorInfo, Operation, RequestContext, UpstreamFailure, UpstreamRequest,
    WireFormat,
};

/// The `anthropic-version` sent when the channel names none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Messages (lowercase, matched as substrings) that mean the channel's account cannot be
/// used, whatever the status (Anthropic answers a disabled organization with a 400).
const AUTH_MESSAGES: &[&str] = &["organization has been disabled", "invalid x-api-key"];

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const ANTHROPIC_VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");

/// `{base}/v1/messages` (and `/v1/messages/count_tokens`, `/v1/models`) with `x-api-key`
/// (none when the key is empty) and `anthropic-version` (the channel's API version, else
/// [`ANTHROPIC_VERSION`]). A base URL that already ends in `/v1` is accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnthropicAdapter;

impl Adapter for AnthropicAdapter {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::Anthropic
    }

    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
        let path: &[&str] = match op {
            Operation::ChatCompletions => &["v1", "messages"],
            Operation::CountTokens => &["v1", "messages", "count_tokens"],
            Operation::ListModels => &["v1", "models"],
            _ => return Err(BuildError::Unsupported { provider: "anthropic", operation: op }),
        };
        let url = join(ctx.base_url, Some("v1"), path)?;
        let mut headers = HeaderMap::with_capacity(3);
        if op.method() == Method::POST {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !ctx.key.is_empty() {
            let mut key = HeaderValue::from_str(ctx.key).map_err(|_| BuildError::InvalidKey)?;
            key.set_sensitive(true);
            headers.insert(X_API_KEY, key);
        }
        let version = match ctx.api_version.map(str::trim).filter(|v| !v.is_empty()) {
            Some(version) => HeaderValue::from_str(version).map_err(|_| BuildError::InvalidBaseUrl {
                url: ctx.base_url.to_owned(),
                reason: format!("the API version {version:?} cannot be sent in a header"),
            })?,
            None => HeaderValue::from_static(ANTHROPIC_VERSION),
        };
        headers.insert(ANTHROPIC_VERSION_HEADER, version);
        Ok(UpstreamRequest { method: op.method(), url, headers })
    }

    /// Anthropic's errors (`{"type":"error","error":{"type","message"}}`): a 402, a
    /// `billing_error` or a 400 saying the credit balance is too low → out of balance;
    /// 401/403 (`authentication_error`, `permission_error`) or a disabled organization →
    /// the key is refused; 408, 429
    /// (`rate_limit_error`), 5xx and 529 (`overloaded_error`) → retry, honouring
    /// `retry-after`; other 4xx (`invalid_request_error`, `not_found_error`,
    /// `request_too_large`) → the request's fault, passed to the client.
    fn classify(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        let info = ErrorInfo::parse(body).unwrap_or_default();
        let kind = info.kind.as_deref().unwrap_or_default();
        if status == 402 || kind == "billing_error" || info.is_out_of_balance() {
            return UpstreamFailure::OutOfBalance;
        }
        let disabled = info.message.as_deref().is_some_and(|m| {
            let m = m.to_lowercase();
            AUTH_MESSAGES.iter().any(|known| m.contains(known))
        });
        if matches!(status, 401 | 403) || matches!(kind, "authentication_error" | "permission_error") || disabled {
            return UpstreamFailure::AuthFailed;
        }
        match status {
            408 | 429 | 500..=599 => UpstreamFailure::Retryable { retry_after: retry_after(headers) },
            _ if matches!(kind, "rate_limit_error" | "overloaded_error" | "api_error" | "timeout_error") => {
                UpstreamFailure::Retryable { retry_after: retry_after(headers) }
            }
            400..=499 => UpstreamFailure::Fatal,
            _ => UpstreamFailure::Retryable { retry_after: None },
        }
    }
}
