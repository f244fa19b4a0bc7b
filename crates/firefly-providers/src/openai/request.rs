//! The client's chat-completions request: what the relay reads from it, and the body it
//! sends upstream.
//!
//! The body is read once, with `serde_json` visiting the top-level object: the handful of
//! fields the relay needs are probed in place (their values are never built as a tree), every
//! other value is skipped. The upstream body is the client's bytes with at most two spans
//! replaced: the `model` value, and `stream_options` when a stream must report usage.
//! Everything else (messages with their image parts, tools, `response_format`, fields this
//! crate has never heard of) reaches the upstream byte for byte, and a request that needs no
//! change is sent as the very buffer it arrived in.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{span_in, Member, Shape};

/// Why a client's request cannot be sent; shown to the client in OpenAI's error shape
/// (`invalid_request_error`, HTTP 400) with [`param`](Self::param) and [`code`](Self::code).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    /// The body is JSON, but not an object.
    #[error("Invalid request body: expected a JSON object.")]
    NotAnObject,
    #[error("Missing required parameter: '{field}'.")]
    Missing { field: &'static str },
    #[error("Invalid type for '{field}': expected {expected}.")]
    InvalidType { field: &'static str, expected: &'static str },
    #[error("Invalid value for '{field}': {reason}.")]
    InvalidValue { field: &'static str, reason: &'static str },
    /// A field the relay reads appears twice: the relay and the upstream could each believe a
    /// different one (say, about `max_tokens`), so it is refused.
    #[error("Duplicate parameter: '{field}' appears more than once.")]
    Duplicate { field: &'static str },
}

impl RequestError {
    /// The offending field, OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            RequestError::InvalidJson(_) | RequestError::NotAnObject => None,
            RequestError::Missing { field }
            | RequestError::InvalidType { field, .. }
            | RequestError::InvalidValue { field, .. }
            | RequestError::Duplicate { field } => Some(field),
        }
    }

    /// A stable code, OpenAI's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::InvalidJson(_) => "invalid_json",
            RequestError::NotAnObject => "invalid_type",
            RequestError::Missing { .. } => "missing_required_parameter",
            RequestError::InvalidType { .. } => "invalid_type",
            RequestError::InvalidValue { .. } => "invalid_value",
            RequestError::Duplicate { .. } => "duplicate_parameter",
        }
    }
}

/// A validated chat-completions request, holding the client's body.
///
/// Parse it once, price and route it with its accessors, then call
/// [`upstream_body`](Self::upstream_body) for each channel tried (each may map the model to a
/// different upstream name).
#[derive(Clone, Debug)]
pub struct ChatRequest {
    body: Bytes,
    model: Box<str>,
    /// The `model` value in `body`, quotes included.
    model_span: Range<usize>,
    /// Bytes of `body` to replace so that the upstream reports usage in its stream.
    usage_edit: Option<(Range<usize>, &'static [u8])>,
    stream: bool,
    client_wants_usage: bool,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    n: Option<u64>,
}

/// What [`prepare_chat_request`] makes of a request: its facts and the upstream body.
#[derive(Clone, Debug)]
pub struct PreparedRequest {
    pub request: ChatRequest,
    /// The body to send upstream.
    pub body: Bytes,
}

/// Validates a client's chat-completions body and makes the upstream body in one call:
/// `model` replaced by `upstream_model` when given, and a stream made to report usage. For a
/// request that may be retried on other channels, keep the [`ChatRequest`] and call
/// [`ChatRequest::upstream_body`] per channel instead.
pub fn prepare_chat_request(body: &[u8], upstream_model: Option<&str>) -> Result<PreparedRequest, RequestError> {
    let request = ChatRequest::parse(Bytes::copy_from_slice(body))?;
    let body = request.upstream_body(upstream_model);
    Ok(PreparedRequest { request, body })
}

const INCLUDE_USAGE_MEMBER: &[u8] = b",\"stream_options\":{\"include_usage\":true}";
const INCLUDE_USAGE_OBJECT: &[u8] = b"{\"include_usage\":true}";
const INCLUDE_USAGE_FIRST: &[u8] = b"\"include_usage\":true,";

impl ChatRequest {
    /// Validates the body: a JSON object with a non-empty string `model` and a non-empty
    /// `messages` array; `stream`, `stream_options`, `max_tokens`, `max_completion_tokens`
    /// and `n` of the right types when present. Nothing else is looked at.
    pub fn parse(body: Bytes) -> Result<ChatRequest, RequestError> {
        let top: Top<'_> = serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => RequestError::NotAnObject,
            _ => RequestError::InvalidJson(e.to_string()),
        })?;
        if let Some(field) = top.duplicate {
            return Err(RequestError::Duplicate { field });
        }
        let model_raw = top.model.ok_or(RequestError::Missing { field: "model" })?;
        let model = match serde_json::from_str::<Option<String>>(model_raw.get()) {
            Ok(Some(model)) if !model.is_empty() => model,
            Ok(Some(_)) => return Err(RequestError::InvalidValue { field: "model", reason: "must not be empty" }),
            Ok(None) => return Err(RequestError::Missing { field: "model" }),
            Err(_) => return Err(RequestError::InvalidType { field: "model", expected: "a string" }),
        };
        match top.messages {
            None | Some(Shape::Null) => return Err(RequestError::Missing { field: "messages" }),
            Some(Shape::Array(0)) => {
                return Err(RequestError::InvalidValue { field: "messages", reason: "expected a non-empty array" })
            }
            Some(Shape::Array(_)) => {}
            Some(_) => return Err(RequestError::InvalidType { field: "messages", expected: "an array" }),
        }
        let stream = match top.stream {
            None | Some(Shape::Null) => false,
            Some(Shape::Bool(stream)) => stream,
            Some(_) => return Err(RequestError::InvalidType { field: "stream", expected: "a boolean" }),
        };
        let max_tokens = count(top.max_tokens, "max_tokens")?;
        let max_completion_tokens = count(top.max_completion_tokens, "max_completion_tokens")?;
        let n = count(top.n, "n")?;
        if n == Some(0) {
            return Err(RequestError::InvalidValue { field: "n", reason: "must be at least 1" });
        }

        let options = match top.stream_options {
            None => None,
            Some(raw) => Some((raw, stream_options(raw)?)),
        };
        let client_wants_usage = stream && matches!(&options, Some((_, o)) if o.include_usage == Some(true));
        let usage_edit = match (&options, stream) {
            (_, false) => None,
            (Some((_, o)), true) if o.include_usage == Some(true) => None,
            (None, true) => {
                // Serde checked the body is one object: its last `}` closes it. The member
                // goes right after the last value, before any whitespace.
                let close = body.iter().rposition(|&b| b == b'}').unwrap_or(body.len());
                let at = body[..close].iter().rposition(|b| !b.is_ascii_whitespace()).map_or(close, |i| i + 1);
                Some((at..at, INCLUDE_USAGE_MEMBER))
            }
            (Some((raw, o)), true) => {
                let span = span_in(&body, raw.get());
                Some(match (&o.include_usage_span, o.members) {
                    (Some(value), _) => (span_in(&body, value.get()), &b"true"[..]),
                    // `null` or `{}`.
                    (None, 0) => (span, INCLUDE_USAGE_OBJECT),
                    // Other options: the flag goes first.
                    (None, _) => (span.start + 1..span.start + 1, INCLUDE_USAGE_FIRST),
                })
            }
        };
        Ok(ChatRequest {
            model_span: span_in(&body, model_raw.get()),
            body,
            model: model.into_boxed_str(),
            usage_edit,
            stream,
            client_wants_usage,
            max_tokens,
            max_completion_tokens,
            n,
        })
    }

    /// The model the client asked for (before any mapping).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The client's body, as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    /// Whether the client streams and asked for `stream_options.include_usage`; when not, the
    /// relay still gets usage from the upstream but hides it from the client (see
    /// [`StreamUsageFilter`](super::StreamUsageFilter)).
    pub fn client_wants_usage(&self) -> bool {
        self.client_wants_usage
    }

    pub fn max_tokens(&self) -> Option<u64> {
        self.max_tokens
    }

    pub fn max_completion_tokens(&self) -> Option<u64> {
        self.max_completion_tokens
    }

    /// Choices asked for; 1 when absent.
    pub fn n(&self) -> u64 {
        self.n.unwrap_or(1)
    }

    /// The completion tokens the client allowed per choice: `max_completion_tokens`, else
    /// the deprecated `max_tokens`, as OpenAI reads them. `None`: up to the model's limit.
    pub fn output_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The body for the upstream: the client's bytes with `model` set to `upstream_model` (when
    /// given and different) and, for a stream, `stream_options.include_usage` set to `true`.
    /// With nothing to change this is the client's buffer itself, not a copy.
    ///
    /// The response is returned as the upstream sent it, so its `model` is the upstream's
    /// name, not the client's alias.
    pub fn upstream_body(&self, upstream_model: Option<&str>) -> Bytes {
        let model = upstream_model.filter(|m| *m != &*self.model);
        if model.is_none() && self.usage_edit.is_none() {
            return self.body.clone();
        }
        let mut edits: [Option<(Range<usize>, Replacement<'_>)>; 2] = [
            model.map(|m| (self.model_span.clone(), Replacement::Model(m))),
            self.usage_edit.clone().map(|(span, bytes)| (span, Replacement::Bytes(bytes))),
        ];
        edits.sort_by_key(|edit| edit.as_ref().map(|(span, _)| span.start));
        let extra = model.map_or(0, |m| m.len() + 2) + INCLUDE_USAGE_MEMBER.len();
        let mut out = Vec::with_capacity(self.body.len() + extra);
        let mut at = 0;
        for (span, replacement) in edits.into_iter().flatten() {
            out.extend_from_slice(&self.body[at..span.start]);
            match replacement {
                Replacement::Bytes(bytes) => out.extend_from_slice(bytes),
                Replacement::Model(model) => {
                    serde_json::to_writer(&mut out, model).expect("a string serializes into a Vec")
                }
            }
            at = span.end;
        }
        out.extend_from_slice(&self.body[at..]);
        Bytes::from(out)
    }
}

enum Replacement<'a> {
    Bytes(&'static [u8]),
    Model(&'a str),
}

fn count(shape: Option<Shape>, field: &'static str) -> Result<Option<u64>, RequestError> {
    match shape {
        None | Some(Shape::Null) => Ok(None),
        Some(Shape::Uint(n)) => Ok(Some(n)),
        Some(_) => Err(RequestError::InvalidType { field, expected: "a non-negative integer" }),
    }
}

/// What `stream_options` holds.
struct StreamOptions<'a> {
    members: usize,
    include_usage: Option<bool>,
    include_usage_span: Option<&'a RawValue>,
}

fn stream_options(raw: &RawValue) -> Result<StreamOptions<'_>, RequestError> {
    const FIELD: &str = "stream_options.include_usage";
    if raw.get() == "null" {
        return Ok(StreamOptions { members: 0, include_usage: None, include_usage_span: None });
    }
    let probe = Member::find(raw.get().as_bytes(), "include_usage")
        .map_err(|_| RequestError::InvalidType { field: "stream_options", expected: "an object" })?;
    if probe.duplicate {
        return Err(RequestError::Duplicate { field: FIELD });
    }
    let include_usage = match probe.value {
        None => None,
        Some(value) => match value.get() {
            "true" => Some(true),
            "false" => Some(false),
            "null" => None,
            _ => return Err(RequestError::InvalidType { field: FIELD, expected: "a boolean" }),
        },
    };
    Ok(StreamOptions { members: probe.members, include_usage, include_usage_span: probe.value })
}

/// The top-level keys the relay reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Model,
    Messages,
    Stream,
    StreamOptions,
    MaxTokens,
    MaxCompletionTokens,
    N,
    Other,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Model => "model",
            Key::Messages => "messages",
            Key::Stream => "stream",
            Key::StreamOptions => "stream_options",
            Key::MaxTokens => "max_tokens",
            Key::MaxCompletionTokens => "max_completion_tokens",
            Key::N => "n",
            Key::Other => "",
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            // Called with the unescaped key, borrowed or not: no allocation either way.
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "model" => Key::Model,
                    "messages" => Key::Messages,
                    "stream" => Key::Stream,
                    "stream_options" => Key::StreamOptions,
                    "max_tokens" => Key::MaxTokens,
                    "max_completion_tokens" => Key::MaxCompletionTokens,
                    "n" => Key::N,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The request's top level, as far as the relay reads it.
#[derive(Default)]
struct Top<'a> {
    model: Option<&'a RawValue>,
    messages: Option<Shape>,
    stream: Option<Shape>,
    stream_options: Option<&'a RawValue>,
    max_tokens: Option<Shape>,
    max_completion_tokens: Option<Shape>,
    n: Option<Shape>,
    duplicate: Option<&'static str>,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Top<'de>, D::Error> {
        deserializer.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key::<Key>()? {
            let seen = match key {
                Key::Model => top.model.replace(map.next_value()?).is_some(),
                Key::StreamOptions => top.stream_options.replace(map.next_value()?).is_some(),
                Key::Messages => top.messages.replace(map.next_value()?).is_some(),
                Key::Stream => top.stream.replace(map.next_value()?).is_some(),
                Key::MaxTokens => top.max_tokens.replace(map.next_value()?).is_some(),
                Key::MaxCompletionTokens => top.max_completion_tokens.replace(map.next_value()?).is_some(),
                Key::N => top.n.replace(map.next_value()?).is_some(),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    false
                }
            };
            if seen && top.duplicate.is_none() {
                top.duplicate = Some(key.name());
            }
        }
        Ok(top)
    }
}
