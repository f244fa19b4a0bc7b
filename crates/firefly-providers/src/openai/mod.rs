//! OpenAI's chat-completions wire format, as far as a relay needs it.
//!
//! - [`ChatRequest`] validates a client's body, exposes what pricing and routing read
//!   (`model`, `stream`, `max_tokens`, `max_completion_tokens`, `n`), and makes the upstream
//!   body by splicing the client's bytes: the mapped model, and for streams
//!   `stream_options.include_usage: true`. [`prepare_chat_request`] does both in one call.
//! - [`Usage`] reads `usage` from a response or a stream chunk.
//! - [`StreamUsageFilter`] records a stream's usage and keeps it from clients that did not ask.
//!
//! Responses are not rewritten: the relay returns the upstream's bytes, so a response's
//! `model` is the upstream's name for the model, not the alias the client asked for.

mod embeddings;
mod request;
mod usage;

#[cfg(test)]
mod tests;

pub use embeddings::EmbeddingsRequest;
pub use request::{prepare_chat_request, ChatRequest, PreparedRequest, RequestError};
pub use usage::{StreamUsageFilter, Usage, Verdict};
