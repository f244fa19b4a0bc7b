//! Addressing a Gemini channel, and what its error answers mean.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::adapter::{
    join, retry_after, Adapter, BuildError, Operation, RequestContext, UpstreamFailure, UpstreamRequest, WireFormat,
};

const API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// The API version added to a base URL that names none.
const DEFAULT_VERSION: &str = "v1beta";

/// Google's Gemini API (`https://generativelanguage.googleapis.com`).
///
/// | operation | request |
/// |---|---|
/// | chat | `POST {base}/v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for a stream |
/// | list models | `GET {base}/v1beta/models` |
///
/// The base URL may end in its API version (`…/v1beta`, `…/v1`, `…/v1alpha`), which is
/// then kept; otherwise `v1beta` is added. A model named `models/…` loses that prefix. The
/// key goes in `x-goog-api-key` (none when it is empty). Embeddings (Gemini's
/// `batchEmbedContents`, a different body) are not transcoded yet and answer
/// [`BuildError::Unsupported`], as do token counting and media operations.
#[derive(Clone, Copy, Debug, Default)]
pub struct GeminiAdapter;

impl Adapter for GeminiAdapter {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::Gemini
    }

    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
        let mut url = match op {
            Operation::ChatCompletions => {
                let model = ctx
                    .model
                    .map(|m| m.trim().trim_start_matches("models/"))
                    .filter(|m| !m.is_empty())
                    .ok_or(BuildError::MissingModel { provider: "gemini", operation: op })?;
                let method = if ctx.stream { "streamGenerateContent" } else { "generateContent" };
                // `:` is a valid path character: url keeps it as it is.
                versioned(ctx.base_url, &["models", &format!("{model}:{method}")])?
            }
            Operation::ListModels => versioned(ctx.base_url, &["models"])?,
            _ => return Err(BuildError::Unsupported { provider: "gemini", operation: op }),
        };
        if op == Operation::ChatCompletions && ctx.stream {
            url.query_pairs_mut().append_pair("alt", "sse");
        }
        let mut headers = HeaderMap::with_capacity(2);
        if op.method() == Method::POST {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !ctx.key.is_empty() {
            let mut key = HeaderValue::from_str(ctx.key).map_err(|_| BuildError::InvalidKey)?;
            key.set_sensitive(true);
            headers.insert(API_KEY, key);
        }
        Ok(UpstreamRequest { method: op.method(), url, headers })
    }

    /// - 401, 403 (`PERMISSION_DENIED`), or any answer naming `API_KEY_INVALID` (Gemini
    ///   refuses a bad key with 400 `INVALID_ARGUMENT`): [`UpstreamFailure::AuthFailed`];
    /// - 408, 429 (`RESOURCE_EXHAUSTED`, rate limits and quotas alike: Gemini's quotas are
    ///   per minute or per day and per model, so the channel is waited out, not disabled)
    ///   and 5xx: retryable, after `retry-after` or else `RetryInfo.retryDelay`;
    /// - other 4xx: [`UpstreamFailure::Fatal`], passed through to the client.
    fn classify(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        let key_refused = error_reason(body).is_some_and(|r| r == "API_KEY_INVALID");
        if matches!(status, 401 | 403) || key_refused {
            return UpstreamFailure::AuthFailed;
        }
        match status {
            408 | 429 | 500..=599 => {
                UpstreamFailure::Retryable { retry_after: retry_after(headers).or_else(|| retry_delay(body)) }
            }
            400..=499 => UpstreamFailure::Fatal,
            _ => UpstreamFailure::Retryable { retry_after: None },
        }
    }
}

/// `{base}/{version}/{segments…}`, keeping a version the base already ends in.
fn versioned(base: &str, segments: &[&str]) -> Result<url::Url, BuildError> {
    let mut url = join(base, None, &[])?;
    let has_version = url
        .path_segments()
        .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        .is_some_and(|last| matches!(last, "v1" | "v1beta" | "v1alpha"));
    let mut path = url
        .path_segments_mut()
        .map_err(|()| BuildError::InvalidBaseUrl { url: base.to_owned(), reason: "cannot be a base".to_owned() })?;
    path.pop_if_empty();
    if !has_version {
        path.push(DEFAULT_VERSION);
    }
    path.extend(segments);
    drop(path);
    Ok(url)
}

/// Google's error body: `{"error":{"code","message","status","details":[…]}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    details: Vec<Value>,
}

fn details(body: &[u8]) -> Vec<Value> {
    // Gemini answers some streaming requests with a JSON array of responses.
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(mut items)) if !items.is_empty() => items.swap_remove(0),
        Ok(value) => value,
        Err(_) => return Vec::new(),
    };
    serde_json::from_value::<ErrorBody>(body).map(|b| b.error.details).unwrap_or_default()
}

/// The first `details[].reason` (a `google.rpc.ErrorInfo`), e.g. `API_KEY_INVALID`.
pub(crate) fn error_reason(body: &[u8]) -> Option<String> {
    details(body).iter().find_map(|d| d.get("reason").and_then(Value::as_str).map(str::to_owned))
}

/// A `google.rpc.RetryInfo`'s `retryDelay` (a protobuf Duration: `"22s"`, `"1.5s"`).
fn retry_delay(body: &[u8]) -> Option<Duration> {
    details(body).iter().find_map(|d| {
        let seconds = d.get("retryDelay")?.as_str()?.trim().strip_suffix('s')?.parse::<f64>().ok()?;
        Duration::try_from_secs_f64(seconds).ok()
    })
}
