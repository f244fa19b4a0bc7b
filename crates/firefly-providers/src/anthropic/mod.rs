//! Anthropic's Messages API: its wire format, its conversion to and from the hub (OpenAI's
//! chat completions, see [`crate::transcode`]), and the [`AnthropicAdapter`].
//!
//! | piece | direction |
//! |---|---|
//! | [`request_to_openai`] | an Anthropic client's `POST /v1/messages` body → hub request |
//! | [`request_from_openai`] | hub request → the body for an Anthropic upstream |
//! | [`response_to_openai`] | an Anthropic upstream's message → hub `chat.completion` |
//! | [`response_from_openai`] | hub `chat.completion` → the message an Anthropic client reads |
//! | [`StreamDecoder`] | an Anthropic upstream's stream events → hub chunks |
//! | [`StreamEncoder`] | hub chunks → the stream events an Anthropic client reads |
//! | [`error_body`], [`openai_error_to_anthropic`], [`anthropic_error_to_openai`] | error bodies |
//!
//! # Where the formats differ
//!
//! The conversions keep everything both formats can say and document what they drop, next
//! to the code that drops it. In short:
//!
//! - Anthropic's `system` is one top-level field; OpenAI's system (and `developer`)
//!   messages may appear anywhere. Going to Anthropic they are all gathered into `system`.
//! - Anthropic requires user and assistant turns to alternate; OpenAI does not, so
//!   consecutive messages of one role are merged. OpenAI's `tool` messages are Anthropic
//!   user turns holding `tool_result` blocks, and the other way round.
//! - Thinking: an Anthropic thinking block carries a signature the next turn must send back;
//!   OpenAI-style `reasoning_content` has none. Thinking blocks of earlier turns are dropped
//!   going to the hub, and `reasoning_content` becomes a thinking block with an empty
//!   signature going to an Anthropic client.
//! - Options one side lacks (`top_k`, `n`, `response_format`, `logprobs`, penalties, …) are
//!   dropped, rejected or emulated as each function's docs say.
//! - Usage: Anthropic's `input_tokens` excludes cached tokens, OpenAI's `prompt_tokens`
//!   includes them: `prompt_tokens = input_tokens + cache_read_input_tokens +
//!   cache_creation_input_tokens`, `cached_tokens = cache_read_input_tokens`.

mod adapter;
mod client_request;
mod convert;
mod decode;
mod encode;
mod error;
mod response;
mod upstream_request;

#[cfg(test)]
mod tests;

pub use adapter::{AnthropicAdapter, ANTHROPIC_VERSION};
pub use client_request::request_to_openai;
pub use decode::StreamDecoder;
pub use encode::StreamEncoder;
pub use error::{anthropic_error_to_openai, error_body, error_type_for_status, openai_error_to_anthropic};
pub use response::{response_from_openai, response_to_openai};
pub use upstream_request::request_from_openai;
