//! Google's Gemini API (`generateContent`, `streamGenerateContent?alt=sse`) as an upstream
//! of hub (OpenAI chat-completions) requests.
//!
//! - [`request_from_openai`]: a hub request → a Gemini request body;
//! - [`response_to_openai`]: a Gemini answer → a hub `chat.completion`;
//! - [`StreamDecoder`]: a Gemini SSE stream → hub `chat.completion.chunk`s;
//! - [`error_to_openai`]: a Gemini error body → OpenAI's error shape;
//! - [`GeminiAdapter`]: URLs, the `x-goog-api-key` header, and error classification.
//!
//! # Request mapping
//!
//! | hub (OpenAI) | Gemini |
//! |---|---|
//! | `system` / `developer` messages | `systemInstruction.parts`, in order |
//! | `user`, `assistant` messages | `user`, `model` turns; consecutive turns of one role are merged |
//! | text parts | `{text}` (empty ones are dropped) |
//! | `image_url` / `file.file_data` with a base64 `data:` URL | `inlineData {mimeType, data}` |
//! | `image_url` with an http(s) URL | `fileData {mimeType, fileUri}`, the type guessed from the extension |
//! | `input_audio` (`wav`, `mp3`) | `inlineData` (`audio/wav`, `audio/mp3`) |
//! | assistant `tool_calls` | `functionCall {name, args}` parts after the text |
//! | `tool` messages | `functionResponse {name, response}` parts in a `user` turn |
//! | `tools` (functions) | one `tools[].functionDeclarations` list |
//! | `tool_choice` `none` / `auto` / `required` / a named function | `toolConfig.functionCallingConfig.mode` `NONE` / `AUTO` / `ANY` / `ANY` + `allowedFunctionNames` |
//! | `max_completion_tokens`, else `max_tokens` | `generationConfig.maxOutputTokens` |
//! | `temperature`, `top_p`, `top_k`, `seed` | `temperature`, `topP`, `topK`, `seed` |
//! | `presence_penalty`, `frequency_penalty` (when not 0) | `presencePenalty`, `frequencyPenalty` |
//! | `stop` | `stopSequences` |
//! | `n` | `candidateCount` |
//! | `response_format` `json_object` / `json_schema` | `responseMimeType: application/json` / plus `responseSchema` |
//!
//! What is lost or approximated on the way:
//!
//! - **System messages** all go to `systemInstruction`, wherever they stood in the
//!   conversation.
//! - **Remote images** are not downloaded: Gemini fetches `fileData.fileUri` itself, which
//!   works for its Files API URIs, YouTube links and (on recent models) public URLs it can
//!   reach; other URLs fail upstream. The type is guessed from the file extension (JPEG
//!   when there is none), so an extension-less URL of another type is mislabelled.
//!   `file_id` references and non-base64 `data:` URLs are refused.
//! - **Tool results** are objects for Gemini: a result whose text is a JSON object is sent
//!   as that object; any other JSON value, or plain text, as `{"result": …}`. The function
//!   name comes from the earlier assistant tool call with the message's `tool_call_id` (the
//!   latest one, when ids repeat across turns).
//! - **Thought signatures**: the hub has nowhere to keep Gemini 3's `thoughtSignature`, so
//!   replayed calls carry the placeholder Google documents for this case
//!   (`skip_thought_signature_validator`) on each turn's first call; the model's hidden
//!   reasoning across the tool round trip is lost.
//! - **Schemas** (function parameters, `json_schema`) are reduced to the OpenAPI subset
//!   Gemini accepts; see `schema.rs` for the keys kept, rewritten and dropped
//!   (`$schema`, `additionalProperties`, `$ref`/`$defs`, `allOf`, …). `strict` is ignored.
//!   A function whose parameters have no properties is declared without parameters.
//! - **Ignored** parameters: `reasoning_effort` (thinking budgets differ per model family,
//!   and a wrong one is refused), `parallel_tool_calls`, `logprobs`, `top_logprobs`,
//!   `logit_bias`, `user`, `metadata`, `store`, `service_tier`, `stream_options`, the
//!   message `name` field. The deprecated `functions` / `function` role are refused.
//!
//! # Response mapping
//!
//! Each candidate is a choice: text parts joined as `content`, `thought: true` parts as
//! `reasoning_content`, `functionCall` parts as `tool_calls` (arguments re-serialized as JSON
//! text; Gemini's call id when it sends one, else `call_<n>` numbered across the response,
//! so ids repeat from one response to the next). `finishReason` `STOP` is `stop`, or
//! `tool_calls` when the candidate called functions; `MAX_TOKENS` is `length`; `SAFETY`,
//! `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII` and the image variants are
//! `content_filter`; anything else (`OTHER`, `LANGUAGE`, `MALFORMED_FUNCTION_CALL`, …) is
//! `stop`. A prompt blocked before generation (`promptFeedback.blockReason`, no candidates)
//! is one empty choice finishing with `content_filter`. Lost: inline images, code
//! execution parts, citations, grounding and safety ratings, `modelVersion` (the hub's
//! `model` is the client's). Usage: `prompt_tokens` = `promptTokenCount` (cached tokens
//! included, as in OpenAI's), `completion_tokens` = `candidatesTokenCount` +
//! `thoughtsTokenCount` (also reported as `reasoning_tokens`), `cached_tokens` =
//! `cachedContentTokenCount`, `total_tokens` = `totalTokenCount` (which may also count
//! `toolUsePromptTokenCount`) or the sum.

mod adapter;
mod request;
mod response;
mod schema;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use adapter::GeminiAdapter;
pub use request::request_from_openai;
pub use response::{error_to_openai, response_to_openai};
pub use stream::StreamDecoder;
