//! Per-request behaviour: `x-mock-*` headers, or the same names as keys of a chat request's
//! `metadata` object (for requests that reach the mock through a relay which does not forward
//! unknown headers). A header wins over metadata; both win over [`MockConfig`].

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::MockConfig;

pub const STATUS: &str = "x-mock-status";
pub const ERROR_CODE: &str = "x-mock-error-code";
pub const LATENCY_MS: &str = "x-mock-latency-ms";
pub const CHUNK_DELAY_MS: &str = "x-mock-chunk-delay-ms";
pub const CHUNKS: &str = "x-mock-chunks";
pub const DISCONNECT_AFTER: &str = "x-mock-disconnect-after";
pub const NO_USAGE: &str = "x-mock-no-usage";
pub const TOOL_CALL: &str = "x-mock-tool-call";
pub const THINKING: &str = "x-mock-thinking";
pub const STREAM_ERROR_AFTER: &str = "x-mock-stream-error-after";
pub const TASK_POLLS: &str = "x-mock-task-polls";
pub const TASK_FAIL: &str = "x-mock-task-fail";

/// A ceiling on `x-mock-chunks`, so a typo cannot make the mock stream for hours.
const MAX_CHUNKS: u64 = 100_000;

/// A ceiling on `x-mock-task-polls`.
const MAX_TASK_POLLS: u64 = 1_000;

/// The knobs one request set; unset ones fall back to the next source.
#[derive(Debug, Default)]
pub(crate) struct Knobs {
    status: Option<u16>,
    error_code: Option<String>,
    latency_ms: Option<u64>,
    chunk_delay_ms: Option<u64>,
    chunks: Option<u64>,
    disconnect_after: Option<u64>,
    no_usage: Option<bool>,
    tool_call: Option<bool>,
    thinking: Option<bool>,
    stream_error_after: Option<u64>,
    task_polls: Option<u64>,
    task_fail: Option<String>,
}

/// The `metadata` object of a chat request, read for the same knob names.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Metadata<'a> {
    #[serde(rename = "x-mock-status", borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-error-code", borrow, default)]
    error_code: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-latency-ms", borrow, default)]
    latency_ms: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-chunk-delay-ms", borrow, default)]
    chunk_delay_ms: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-chunks", borrow, default)]
    chunks: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-disconnect-after", borrow, default)]
    disconnect_after: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-no-usage", borrow, default)]
    no_usage: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-tool-call", borrow, default)]
    tool_call: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-thinking", borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(rename = "x-mock-stream-error-after", borrow, default)]
    stream_error_after: Option<Cow<'a, str>>,
}

fn number(value: Option<&str>) -> Option<u64> {
    value?.trim().parse().ok()
}

fn flag(value: Option<&str>) -> Option<bool> {
    match value?.trim() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

impl Knobs {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Knobs {
        let from_key = Knobs::from_key(headers);
        // Requests without any knob (the benchmark's) skip the lookups below.
        if !headers.keys().any(|name| name.as_str().starts_with("x-mock-")) {
            return from_key.unwrap_or_default();
        }
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let knobs = Knobs {
            status: number(get(STATUS)).and_then(|s| u16::try_from(s).ok()),
            error_code: get(ERROR_CODE).map(str::to_owned),
            latency_ms: number(get(LATENCY_MS)),
            chunk_delay_ms: number(get(CHUNK_DELAY_MS)),
            chunks: number(get(CHUNKS)),
            disconnect_after: number(get(DISCONNECT_AFTER)),
            no_usage: flag(get(NO_USAGE)),
            tool_call: flag(get(TOOL_CALL)),
            thinking: flag(get(THINKING)),
            stream_error_after: number(get(STREAM_ERROR_AFTER)),
            task_polls: number(get(TASK_POLLS)),
            task_fail: get(TASK_FAIL).map(str::to_owned),
        };
        match from_key {
            Some(key) => knobs.or(key),
            None => knobs,
        }
    }

    /// Knobs carried by the API key itself: a key `x-mock:tool-call=1;chunks=3` sets the
    /// knobs named without their `x-mock-` prefix. A relay forwards its channel's key in
    /// every provider's format, so tests can steer the mock through any transcoding.
    fn from_key(headers: &HeaderMap) -> Option<Knobs> {
        const PREFIX: &str = "x-mock:";
        let key = ["authorization", "x-api-key", "x-goog-api-key", "api-key"].iter().find_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            let value = value.strip_prefix("Bearer ").unwrap_or(value);
            value.strip_prefix(PREFIX)
        })?;
        let mut map = HeaderMap::new();
        for pair in key.split(';') {
            let Some((name, value)) = pair.split_once('=') else { continue };
            let (Ok(name), Ok(value)) = (
                http::HeaderName::try_from(format!("x-mock-{}", name.trim())),
                http::HeaderValue::from_str(value.trim()),
            ) else {
                continue;
            };
            map.insert(name, value);
        }
        map.keys().next().is_some().then(|| Knobs::from_headers(&map))
    }

    pub(crate) fn from_metadata(meta: &Metadata<'_>) -> Knobs {
        Knobs {
            status: number(meta.status.as_deref()).and_then(|s| u16::try_from(s).ok()),
            error_code: meta.error_code.as_deref().map(str::to_owned),
            latency_ms: number(meta.latency_ms.as_deref()),
            chunk_delay_ms: number(meta.chunk_delay_ms.as_deref()),
            chunks: number(meta.chunks.as_deref()),
            disconnect_after: number(meta.disconnect_after.as_deref()),
            no_usage: flag(meta.no_usage.as_deref()),
            tool_call: flag(meta.tool_call.as_deref()),
            thinking: flag(meta.thinking.as_deref()),
            stream_error_after: number(meta.stream_error_after.as_deref()),
            task_polls: None,
            task_fail: None,
        }
    }

    /// Fills the knobs `self` left unset from `fallback`.
    pub(crate) fn or(self, fallback: Knobs) -> Knobs {
        Knobs {
            status: self.status.or(fallback.status),
            error_code: self.error_code.or(fallback.error_code),
            latency_ms: self.latency_ms.or(fallback.latency_ms),
            chunk_delay_ms: self.chunk_delay_ms.or(fallback.chunk_delay_ms),
            chunks: self.chunks.or(fallback.chunks),
            disconnect_after: self.disconnect_after.or(fallback.disconnect_after),
            no_usage: self.no_usage.or(fallback.no_usage),
            tool_call: self.tool_call.or(fallback.tool_call),
            thinking: self.thinking.or(fallback.thinking),
            stream_error_after: self.stream_error_after.or(fallback.stream_error_after),
            task_polls: self.task_polls.or(fallback.task_polls),
            task_fail: self.task_fail.or(fallback.task_fail),
        }
    }

    /// The error status to answer with, if one was asked for (only 4xx and 5xx count).
    pub(crate) fn status(&self) -> Option<StatusCode> {
        self.status.filter(|s| (400..=599).contains(s)).and_then(|s| StatusCode::from_u16(s).ok())
    }

    pub(crate) fn take_error_code(&mut self) -> Option<String> {
        self.error_code.take()
    }

    pub(crate) fn latency(&self, config: &MockConfig) -> Duration {
        self.latency_ms.map_or(config.latency, Duration::from_millis)
    }

    pub(crate) fn chunk_delay(&self, config: &MockConfig) -> Duration {
        self.chunk_delay_ms.map_or(config.chunk_delay, Duration::from_millis)
    }

    pub(crate) fn chunks(&self, config: &MockConfig) -> u64 {
        self.chunks.unwrap_or(u64::from(config.chunks)).min(MAX_CHUNKS)
    }

    pub(crate) fn disconnect_after(&self) -> Option<u64> {
        self.disconnect_after
    }

    pub(crate) fn no_usage(&self) -> bool {
        self.no_usage.unwrap_or(false)
    }

    pub(crate) fn tool_call(&self) -> bool {
        self.tool_call.unwrap_or(false)
    }

    pub(crate) fn thinking(&self) -> bool {
        self.thinking.unwrap_or(false)
    }

    pub(crate) fn stream_error_after(&self) -> Option<u64> {
        self.stream_error_after
    }

    /// Polls a DashScope task answers before it succeeds (or fails).
    pub(crate) fn task_polls(&self) -> u64 {
        self.task_polls.unwrap_or(2).min(MAX_TASK_POLLS)
    }

    /// The failure code a DashScope task should end with: `1`/`true` picks the default one.
    pub(crate) fn task_fail(&self) -> Option<&str> {
        match self.task_fail.as_deref().map(str::trim) {
            None | Some("" | "0" | "false" | "no") => None,
            Some(code) => Some(code),
        }
    }
}
