//! The relay between client and upstream wire formats.
//!
//! A client speaks OpenAI's chat completions or Anthropic's messages; a channel's upstream
//! speaks OpenAI's, Anthropic's or Gemini's format ([`WireFormat`]). When the two match,
//! bytes pass through untouched (only the model name is replaced); otherwise the request
//! goes through the hub (an OpenAI chat request, see `firefly_providers::transcode`) to
//! the upstream's format, and the answer comes back the same way: whole, or event by
//! event for a stream.

use bytes::Bytes;
use firefly_providers::adapter::WireFormat;
use firefly_providers::anthropic;
use firefly_providers::gemini;
use firefly_providers::openai::{StreamUsageFilter, Usage, Verdict};
use firefly_providers::sse::SseEvent;
use firefly_providers::transcode::{
    encode_named_json, hub_usage, ChunkDecoder, ChunkEncoder, OpenAiChunkDecoder, OpenAiChunkEncoder, TranscodeError,
};
use serde_json::Value;
use std::sync::OnceLock;

/// The format a client speaks, chosen by the route it called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFormat {
    OpenAi,
    Anthropic,
}

impl ClientFormat {
    fn wire(self) -> WireFormat {
        match self {
            ClientFormat::OpenAi => WireFormat::OpenAi,
            ClientFormat::Anthropic => WireFormat::Anthropic,
        }
    }

    /// Whether an upstream of `wire` gets the client's bytes as they are.
    pub fn passes_through(self, wire: WireFormat) -> bool {
        self.wire() == wire
    }
}

/// The upstream body for an upstream model name, in the client's own format.
pub type PassThrough = Box<dyn Fn(&str) -> Bytes + Send + Sync>;

/// A client's request and how it becomes each upstream format's body.
pub struct RequestBody {
    client: ClientFormat,
    pass_through: PassThrough,
    /// The client's bytes, for the hub.
    source: Bytes,
    /// The hub request (an OpenAI chat request), built when a channel first needs it.
    hub: OnceLock<Result<Value, TranscodeError>>,
    /// Anthropic requires `max_tokens`; used when an OpenAI client set none.
    default_max_tokens: u64,
    /// A chat request, which other formats can express; other operations (embeddings)
    /// only pass through.
    chat: bool,
    /// A media request's body for DashScope's native API.
    dashscope: Option<PassThrough>,
}

impl RequestBody {
    pub fn new(client: ClientFormat, source: Bytes, pass_through: PassThrough, default_max_tokens: u64) -> Self {
        RequestBody {
            client,
            pass_through,
            source,
            hub: OnceLock::new(),
            default_max_tokens,
            chat: true,
            dashscope: None,
        }
    }

    /// A media request: passed through to OpenAI-compatible channels, and rewritten by
    /// `dashscope` for DashScope's native API.
    pub fn media(pass_through: PassThrough, dashscope: PassThrough) -> Self {
        RequestBody { dashscope: Some(dashscope), ..RequestBody::pass_through_only(ClientFormat::OpenAi, pass_through) }
    }

    /// A request of an operation that only an upstream of the client's format serves.
    pub fn pass_through_only(client: ClientFormat, pass_through: PassThrough) -> Self {
        RequestBody { chat: false, ..RequestBody::new(client, Bytes::new(), pass_through, 0) }
    }

    /// A request whose hub was already built (an Anthropic client's, parsed to be admitted).
    pub fn with_hub(mut self, hub: Value) -> Self {
        self.hub = OnceLock::from(Ok(hub));
        self
    }

    fn hub(&self) -> Result<&Value, TranscodeError> {
        self.hub
            .get_or_init(|| match self.client {
                ClientFormat::OpenAi => serde_json::from_slice(&self.source)
                    .map_err(|e| TranscodeError::invalid(format!("the request is not JSON: {e}"), None)),
                ClientFormat::Anthropic => anthropic::request_to_openai(&self.source),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The body for an upstream of `wire` that calls the model `model`.
    pub fn for_upstream(&self, wire: WireFormat, model: &str) -> Result<Bytes, TranscodeError> {
        if self.client.passes_through(wire) {
            return Ok((self.pass_through)(model));
        }
        if let (WireFormat::DashScope, Some(native)) = (wire, &self.dashscope) {
            return Ok(native(model));
        }
        if !self.chat {
            return Err(TranscodeError::invalid("this channel's provider does not serve this endpoint", None));
        }
        let hub = self.hub()?;
        match wire {
            WireFormat::OpenAi => {
                let mut hub = hub.clone();
                hub["model"] = Value::String(model.to_owned());
                Ok(Bytes::from(serde_json::to_vec(&hub).expect("a Value always serializes")))
            }
            WireFormat::Anthropic => {
                anthropic::request_from_openai(hub, model, self.default_max_tokens).map(Bytes::from)
            }
            WireFormat::Gemini => gemini::request_from_openai(hub).map(Bytes::from),
            _ => Err(TranscodeError::invalid("this channel's provider does not serve chat requests", None)),
        }
    }
}

/// A whole (non-stream) upstream answer in the client's format, and its usage.
pub fn whole_answer(
    client: ClientFormat,
    wire: WireFormat,
    body: Bytes,
    model: &str,
) -> Result<(Bytes, Option<Usage>), TranscodeError> {
    match (client, wire) {
        (ClientFormat::OpenAi, WireFormat::OpenAi) => {
            let usage = Usage::from_response(&body);
            Ok((body, usage))
        }
        (ClientFormat::Anthropic, WireFormat::Anthropic) => {
            let usage = anthropic::response_to_openai(&body).ok().as_ref().and_then(hub_usage);
            Ok((body, usage))
        }
        _ => {
            let hub = match wire {
                WireFormat::OpenAi => serde_json::from_slice::<Value>(&body)
                    .map_err(|e| TranscodeError::upstream(format!("the answer is not JSON: {e}")))?,
                WireFormat::Anthropic => anthropic::response_to_openai(&body)?,
                WireFormat::Gemini => gemini::response_to_openai(&body, model)?,
                _ => return Err(TranscodeError::upstream("this provider's answers cannot be converted")),
            };
            let usage = hub_usage(&hub);
            let out = match client {
                ClientFormat::OpenAi => serde_json::to_vec(&hub).expect("a Value always serializes"),
                ClientFormat::Anthropic => anthropic::response_from_openai(&hub)?,
            };
            Ok((Bytes::from(out), usage))
        }
    }
}

/// An upstream's error answer (its status and body) in the client's format, for a request
/// the upstream refused as the client's fault.
pub fn error_answer(client: ClientFormat, wire: WireFormat, status: u16, body: Bytes) -> Bytes {
    let as_openai = |body: Bytes| -> Bytes {
        match wire {
            WireFormat::Anthropic => anthropic::anthropic_error_to_openai(status, &body).into(),
            WireFormat::Gemini => gemini::error_to_openai(status, &body).into(),
            _ => body,
        }
    };
    match client {
        _ if client.passes_through(wire) => body,
        ClientFormat::OpenAi => as_openai(body),
        ClientFormat::Anthropic => anthropic::openai_error_to_anthropic(status, &as_openai(body)).into(),
    }
}

/// One stream's conversion, event by event.
pub enum StreamRelay {
    /// OpenAI to OpenAI: events forwarded, usage read and hidden unless asked for.
    OpenAi(StreamUsageFilter),
    /// Anthropic to Anthropic: events forwarded, usage read by a decoder whose chunks are
    /// dropped.
    Anthropic { decoder: anthropic::StreamDecoder, scratch: Vec<Value> },
    /// Any other pair, through hub chunks.
    Transcoded { decoder: Box<dyn ChunkDecoder>, encoder: Box<dyn ChunkEncoder>, chunks: Vec<Value> },
}

/// What one upstream event became.
pub struct Converted {
    /// Whether it carried generated text (the fallback count when there is no usage).
    pub text: bool,
}

impl StreamRelay {
    /// `candidates`: the choices asked for (`n`), so a Gemini stream is complete once each
    /// has finished.
    pub fn new(
        client: ClientFormat,
        wire: WireFormat,
        client_wants_usage: bool,
        candidates: u32,
        id: &str,
        model: &str,
    ) -> Self {
        match (client, wire) {
            (ClientFormat::OpenAi, WireFormat::OpenAi) => {
                StreamRelay::OpenAi(StreamUsageFilter::new(client_wants_usage))
            }
            (ClientFormat::Anthropic, WireFormat::Anthropic) => {
                StreamRelay::Anthropic { decoder: anthropic::StreamDecoder::new(), scratch: Vec::new() }
            }
            _ => {
                let decoder: Box<dyn ChunkDecoder> = match wire {
                    WireFormat::Anthropic => Box::new(anthropic::StreamDecoder::new()),
                    WireFormat::Gemini => Box::new(
                        gemini::StreamDecoder::new(id.to_owned(), model.to_owned()).with_candidate_count(candidates),
                    ),
                    _ => Box::new(OpenAiChunkDecoder::new()),
                };
                let encoder: Box<dyn ChunkEncoder> = match client {
                    ClientFormat::OpenAi => Box::new(OpenAiChunkEncoder::new(client_wants_usage)),
                    ClientFormat::Anthropic => Box::new(anthropic::StreamEncoder::new(model, id)),
                };
                StreamRelay::Transcoded { decoder, encoder, chunks: Vec::new() }
            }
        }
    }

    /// Converts one upstream event into what the client gets, appended to `out`.
    pub fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Bytes>) -> Result<Converted, TranscodeError> {
        match self {
            StreamRelay::OpenAi(filter) => {
                let text = carries_text(&event.data);
                match filter.on_event(event) {
                    Verdict::Forward => out.push(event.raw.clone()),
                    Verdict::Replace(bytes) => out.push(bytes),
                    Verdict::Drop => {}
                }
                Ok(Converted { text })
            }
            StreamRelay::Anthropic { decoder, scratch } => {
                scratch.clear();
                // The upstream's own events, its `error` event included, reach the client as
                // they are; the decoder only reads usage and notices the error.
                out.push(event.raw.clone());
                decoder.on_event(event, scratch)?;
                Ok(Converted { text: scratch.iter().any(hub_chunk_has_text) })
            }
            StreamRelay::Transcoded { decoder, encoder, chunks } => {
                chunks.clear();
                decoder.on_event(event, chunks)?;
                for chunk in chunks.iter() {
                    encoder.on_chunk(chunk, out);
                }
                Ok(Converted { text: chunks.iter().any(hub_chunk_has_text) })
            }
        }
    }

    /// The upstream's stream ended without an error: closes the client's stream, or
    /// reports a stream that ended before its documented end.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), TranscodeError> {
        match self {
            StreamRelay::OpenAi(filter) => {
                if filter.saw_done() {
                    Ok(())
                } else {
                    Err(TranscodeError::upstream("the stream ended before [DONE]"))
                }
            }
            StreamRelay::Anthropic { decoder, .. } => {
                if decoder.is_complete() {
                    Ok(())
                } else {
                    Err(TranscodeError::upstream("the stream ended before message_stop"))
                }
            }
            StreamRelay::Transcoded { decoder, encoder, .. } => {
                if decoder.is_complete() {
                    encoder.finish(out);
                    Ok(())
                } else {
                    Err(TranscodeError::upstream("the stream ended before its last event"))
                }
            }
        }
    }

    /// The stream broke: the client format's in-band error event.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<Bytes>) {
        match self {
            StreamRelay::OpenAi(_) => {
                let event = serde_json::json!({"error": {"message": message, "type": "server_error", "code": code}});
                out.push(firefly_providers::sse::encode_event(event.to_string().as_bytes()));
            }
            StreamRelay::Anthropic { .. } => {
                let event = serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}});
                out.push(encode_named_json("error", &event));
            }
            StreamRelay::Transcoded { encoder, .. } => encoder.fail(message, out),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamRelay::OpenAi(filter) => filter.usage(),
            StreamRelay::Anthropic { decoder, .. } => decoder.usage(),
            StreamRelay::Transcoded { decoder, .. } => decoder.usage(),
        }
    }
}

/// Whether a hub chunk carries generated text: content, reasoning or tool arguments.
fn hub_chunk_has_text(chunk: &Value) -> bool {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else { return false };
    choices.iter().filter_map(|c| c.get("delta")).any(|delta| {
        let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        non_empty(delta.get("content"))
            || non_empty(delta.get("reasoning_content"))
            || delta.get("tool_calls").and_then(Value::as_array).is_some_and(|calls| {
                calls.iter().any(|c| non_empty(c.get("function").and_then(|f| f.get("arguments"))))
            })
    })
}

/// Whether an OpenAI chunk carries generated text (content, reasoning, a refusal or
/// tool-call arguments), found without parsing it.
pub fn carries_text(data: &[u8]) -> bool {
    // Built once: building a searcher costs more than running it over one chunk.
    static KEYS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 4]> = std::sync::LazyLock::new(|| {
        [b"\"content\":" as &[u8], b"\"arguments\":", b"\"reasoning_content\":", b"\"refusal\":"]
            .map(memchr::memmem::Finder::new)
    });
    KEYS.iter().any(|key| {
        key.find_iter(data).any(|at| {
            let rest = &data[at + key.needle().len()..];
            let rest = &rest[rest.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
            rest.len() >= 2 && rest[0] == b'"' && rest[1] != b'"'
        })
    })
}
