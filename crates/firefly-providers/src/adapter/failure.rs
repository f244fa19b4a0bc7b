//! What an upstream's error answer means: retry, fail the client, or disable the channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde_json::Value;

/// How the relay reacts to a failed upstream attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// A passing fault (connection error, timeout, 408, 429, 5xx): try again, on this channel
    /// or another, no sooner than `retry_after` when the upstream said so.
    Retryable { retry_after: Option<Duration> },
    /// The request's own fault (400, 404, 413, 422 and other 4xx): never retried; the
    /// upstream's answer goes to the client.
    Fatal,
    /// The channel's key is refused (401, 403, or an invalid-key code): disable the channel
    /// and try another.
    AuthFailed,
    /// The channel's account has no money or quota left (402, OpenAI's `insufficient_quota`
    /// and its billing codes, DeepSeek's "Insufficient Balance", DashScope's `Arrearage`):
    /// disable the channel and try another.
    OutOfBalance,
}

impl UpstreamFailure {
    /// A connection error or a timeout: no answer to classify.
    pub const CONNECTION: UpstreamFailure = UpstreamFailure::Retryable { retry_after: None };

    /// Whether another attempt (on another channel, for channel faults) may succeed: all but
    /// [`Fatal`](Self::Fatal).
    pub fn should_retry(self) -> bool {
        !matches!(self, UpstreamFailure::Fatal)
    }

    /// Whether the channel should be disabled until an administrator looks at it.
    pub fn disables_channel(self) -> bool {
        matches!(self, UpstreamFailure::AuthFailed | UpstreamFailure::OutOfBalance)
    }
}

/// Error codes and types (compared without case) that mean the account cannot pay.
const BALANCE_CODES: &[&str] = &[
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
    "billing_not_active",
    "billing_hard_limit_reached",
    "insufficient_balance",
    "insufficient_user_quota",
    "arrearage",
];

/// Messages (lowercase, matched as substrings) that mean the same, for upstreams that send
/// no code.
const BALANCE_MESSAGES: &[&str] =
    &["insufficient balance", "exceeded your current quota", "credit balance is too low", "余额不足"];

/// Codes that mean the key itself is refused, whatever the status.
const AUTH_CODES: &[&str] = &["invalid_api_key", "account_deactivated", "invalidapikey"];

/// Classifies an error answer from an OpenAI-compatible upstream (OpenAI, Azure, and the
/// compatible modes of other providers). Statuses outside 400–599 only come from a
/// misbehaving upstream or proxy and are retryable.
pub fn classify_openai_compatible(status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let info = ErrorInfo::parse(body);
    if status == 402 || info.as_ref().is_some_and(ErrorInfo::is_out_of_balance) {
        return UpstreamFailure::OutOfBalance;
    }
    if matches!(status, 401 | 403) || info.as_ref().is_some_and(ErrorInfo::is_auth_failure) {
        return UpstreamFailure::AuthFailed;
    }
    match status {
        408 | 429 | 500..=599 => UpstreamFailure::Retryable { retry_after: retry_after(headers) },
        400..=499 => UpstreamFailure::Fatal,
        _ => UpstreamFailure::Retryable { retry_after: None },
    }
}

/// The error an upstream described in its body, read leniently: OpenAI's
/// `{"error":{"message","type","code"}}`, `{"error":"message"}`, a top-level
/// `{"code","message"}` (DashScope), Gemini's `status`, or a list of these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    pub message: Option<String>,
    /// OpenAI's `type` (Gemini's `status`).
    pub kind: Option<String>,
    /// The code, as text even when the upstream sent a number.
    pub code: Option<String>,
}

impl ErrorInfo {
    /// `None` when the body is not JSON or describes no error.
    pub fn parse(body: &[u8]) -> Option<ErrorInfo> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let value = match value {
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            value => value,
        };
        let object = value.as_object()?;
        let info = match object.get("error") {
            Some(Value::Object(error)) => ErrorInfo::from_fields(error),
            Some(Value::String(message)) => {
                ErrorInfo { message: Some(message.clone()), ..ErrorInfo::from_fields(object) }
            }
            _ => ErrorInfo::from_fields(object),
        };
        (info != ErrorInfo::default()).then_some(info)
    }

    fn from_fields(object: &serde_json::Map<String, Value>) -> ErrorInfo {
        let text = |key: &str| match object.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ErrorInfo { message: text("message"), kind: text("type").or_else(|| text("status")), code: text("code") }
    }

    fn has_code(&self, codes: &[&str]) -> bool {
        [&self.code, &self.kind].into_iter().flatten().any(|c| codes.iter().any(|known| c.eq_ignore_ascii_case(known)))
    }

    /// The account behind the key cannot pay.
    pub fn is_out_of_balance(&self) -> bool {
        self.has_code(BALANCE_CODES)
            || self.message.as_deref().is_some_and(|m| {
                let m = m.to_lowercase();
                BALANCE_MESSAGES.iter().any(|known| m.contains(known))
            })
    }

    /// The key is refused.
    pub fn is_auth_failure(&self) -> bool {
        self.has_code(AUTH_CODES)
    }
}

/// How long the upstream asked to wait: `retry-after-ms` (Azure, OpenAI), else
/// `retry-after` in seconds (fractions allowed) or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

pub(crate) fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Ok(wait) = Duration::try_from_secs_f64(ms / 1000.0) {
            return Some(wait);
        }
    }
    let value = text("retry-after")?;
    match value.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).ok(),
        Err(_) => {
            let at = UNIX_EPOCH + Duration::from_secs(http_date(value)?);
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        }
    }
}

/// Seconds since the Unix epoch of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, the only
/// HTTP date format senders may use.
fn http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let year: i64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&s) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}
