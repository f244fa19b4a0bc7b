//! Firefly's provider layer: what the relay needs to talk to AI upstreams.
//!
//! - [`sse`]: an incremental Server-Sent Events parser that keeps each event's exact bytes,
//!   and [`sse::encode_event`] for events the relay writes itself.
//! - [`openai`]: OpenAI's chat-completions wire format: request validation and the upstream
//!   body ([`openai::ChatRequest`]), usage ([`openai::Usage`]), and the stream filter that
//!   reads usage while hiding it from clients that did not ask
//!   ([`openai::StreamUsageFilter`]).
//! - [`adapter`]: one [`Adapter`] per provider type (`openai` for any OpenAI-compatible base
//!   URL, `azure`), which builds the upstream request's URL and headers and classifies its
//!   failures, and the [`Registry`] that maps provider types to adapters.
//! - [`anthropic`]: Anthropic's Messages API: requests, responses and streams converted to
//!   and from the OpenAI hub ([`transcode`]), error bodies, and the `anthropic` adapter.
//!
//! # A streamed chat request through these pieces
//!
//! ```no_run
//! use bytes::Bytes;
//! use firefly_providers::adapter::{Operation, Registry, RequestContext};
//! use firefly_providers::openai::{ChatRequest, StreamUsageFilter, Verdict};
//! use firefly_providers::sse::SseParser;
//!
//! # fn demo(client_body: Bytes, upstream_chunks: Vec<Bytes>, mut send: impl FnMut(&[u8])) -> Result<(), Box<dyn std::error::Error>> {
//! let request = ChatRequest::parse(client_body)?; // a 400 in OpenAI's shape on error
//! // ... price `request.model()`, reserve for `request.output_limit()` × `request.n()`,
//! // pick a channel ...
//! let registry = Registry::default();
//! let adapter = registry.get("azure").expect("a known provider type");
//! let ctx = RequestContext {
//!     base_url: "https://res.openai.azure.com",
//!     api_version: Some("2024-10-21"),
//!     key: "channel key",
//!     model: Some("gpt-4o-prod"),
//!     stream: true,
//! };
//! let head = adapter.build(Operation::ChatCompletions, &ctx)?;
//! let body = request.upstream_body(ctx.model);
//! // ... send `head` + `body`; on an error answer, `adapter.classify(status, &headers, &body)`
//! // says whether to retry, fail the client, or disable the channel ...
//! let mut parser = SseParser::new();
//! let mut filter = StreamUsageFilter::new(request.client_wants_usage());
//! for chunk in upstream_chunks {
//!     parser.push_bytes(chunk);
//!     while let Some(event) = parser.next_event()? {
//!         match filter.on_event(&event) {
//!             Verdict::Forward => send(&event.raw),
//!             Verdict::Replace(bytes) => send(&bytes),
//!             Verdict::Drop => {}
//!         }
//!     }
//! }
//! parser.finish()?; // Err(Truncated): the upstream died inside an event
//! let usage = filter.usage(); // bill this; `None`: count tokens instead
//! # let _ = usage; Ok(()) }
//! ```
//!
//! # Hot-path choices
//!
//! - **Bytes are passed, not rebuilt.** The upstream body is the client's buffer with at
//!   most two spans replaced (the model, and `stream_options` for streams), found while
//!   serde skips over the rest; a request needing no change is the same `Bytes`. Image
//!   parts, tools and unknown fields are never parsed into values, so they cannot be
//!   reformatted (numbers keep their spelling, keys their order).
//! - **Events are slices.** The parser hands out `Bytes` slices of what it received;
//!   [`SseParser::push_bytes`](sse::SseParser::push_bytes) does not even copy a chunk that
//!   holds whole events. A forwarded event is written from [`raw`](sse::SseEvent::raw).
//! - **Usage is read, not parsed.** A chunk is only parsed when the text `"usage"` occurs
//!   in it, and then into a struct of two fields that skips everything else
//!   without allocating.
//! - **Responses are not rewritten**: their `model` is the upstream's name.
//! - **Adapters are stateless** and looked up by a scan of a handful of names; building a
//!   request costs one URL parse and the key header.

pub mod adapter;
pub mod anthropic;
pub mod dashscope;
pub mod gemini;
mod json;
pub mod media;
pub mod openai;
pub mod sse;
pub mod transcode;

pub use adapter::{Adapter, Registry, UpstreamFailure};
