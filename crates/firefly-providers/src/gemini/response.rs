//! Gemini answers as hub (`chat.completion`) responses, and Gemini errors in OpenAI's shape.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::wire::{parse_response, Candidate, FunctionCall, UsageMetadata};
use crate::adapter::ErrorInfo;
use crate::openai::Usage;
use crate::transcode::TranscodeError;

/// Converts a `generateContent` answer to a hub `chat.completion`; `model` is the name the
/// client asked for.
pub fn response_to_openai(body: &[u8], model: &str) -> Result<Value, TranscodeError> {
    let response = parse_response(body).map_err(|e| TranscodeError::upstream(format!("the response is {e}")))?;
    if let Some(error) = &response.error {
        return Err(TranscodeError::upstream(super::wire::error_message(error)));
    }
    let mut next_call = 0u64;
    let mut choices: Vec<Value> = Vec::with_capacity(response.candidates.len().max(1));
    for (position, candidate) in response.candidates.iter().enumerate() {
        choices.push(choice(candidate, position, &mut next_call));
    }
    if choices.is_empty() && response.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some()) {
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": null},
            "finish_reason": "content_filter",
        }));
    }
    let created = unix_now();
    let id = match response.response_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-gemini-{created}"),
    };
    let mut completion = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    });
    if let Some(usage) = response.usage_metadata.as_ref().and_then(hub_usage_json) {
        completion["usage"] = usage;
    }
    Ok(completion)
}

fn choice(candidate: &Candidate, position: usize, next_call: &mut u64) -> Value {
    let mut text = String::new();
    let mut thoughts = String::new();
    let mut calls = Vec::new();
    for part in candidate.content.iter().flat_map(|c| &c.parts) {
        if let Some(call) = &part.function_call {
            calls.push(tool_call(call, next_call));
        } else if let Some(t) = &part.text {
            if part.thought {
                thoughts.push_str(t)
            } else {
                text.push_str(t)
            }
        }
    }
    let mut message = Map::new();
    message.insert("role".to_owned(), "assistant".into());
    // OpenAI's content is null on a message that only calls tools.
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    message.insert("content".to_owned(), content);
    if !thoughts.is_empty() {
        message.insert("reasoning_content".to_owned(), Value::String(thoughts));
    }
    let has_calls = !calls.is_empty();
    if has_calls {
        message.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    let finish = candidate.finish_reason.as_deref().map(|r| finish_reason(r, has_calls));
    json!({
        "index": candidate.index.map_or(position as u64, u64::from),
        "message": message,
        "finish_reason": finish,
    })
}

/// A hub tool call (as in a message; a stream fragment adds its `index`). Gemini's own call
/// id is kept when it sends one; otherwise `call_<n>`, numbered across the response.
pub(crate) fn tool_call(call: &FunctionCall, next_call: &mut u64) -> Value {
    let n = *next_call;
    *next_call += 1;
    let id = match call.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("call_{n}"),
    };
    let arguments = match &call.args {
        Some(args) => serde_json::to_string(args).unwrap_or_else(|_| "{}".to_owned()),
        None => "{}".to_owned(),
    };
    json!({"id": id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
}

/// A Gemini `finishReason` as OpenAI's: a natural stop after function calls is
/// `tool_calls`; blocked output of any kind is `content_filter`.
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "STOP" if has_calls => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// The counts Gemini reported, as the relay bills them; `None` when it reported none.
pub(crate) fn usage_of(meta: &UsageMetadata) -> Option<Usage> {
    if meta.prompt_token_count.is_none()
        && meta.candidates_token_count.is_none()
        && meta.total_token_count.is_none()
        && meta.thoughts_token_count.is_none()
    {
        return None;
    }
    let prompt_tokens = meta.prompt_token_count.unwrap_or(0);
    let completion_tokens =
        meta.candidates_token_count.unwrap_or(0).saturating_add(meta.thoughts_token_count.unwrap_or(0));
    Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: meta.total_token_count.unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
        cached_tokens: meta.cached_content_token_count.unwrap_or(0),
    })
}

/// The hub `usage` object: OpenAI's names, with thinking as `reasoning_tokens`.
pub(crate) fn hub_usage_json(meta: &UsageMetadata) -> Option<Value> {
    let usage = usage_of(meta)?;
    Some(json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": meta.thoughts_token_count.unwrap_or(0)},
    }))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A Gemini error answer as OpenAI's `{"error":{"message","type","param","code"}}`, for
/// passing an upstream 4xx through to an OpenAI client. `code` is the most specific word
/// Google gave: a `details[].reason` (`API_KEY_INVALID`), else the `status`
/// (`INVALID_ARGUMENT`). A body that is not Google's error shape is kept as the message.
pub fn error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let info = ErrorInfo::parse(body);
    let message = match info.as_ref().and_then(|i| i.message.clone()) {
        Some(message) => message,
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("the upstream answered HTTP {status}")
            } else {
                // Keeps an HTML error page from flooding the client; cut on a char boundary.
                let cut = text.char_indices().nth(1000).map_or(text.len(), |(i, _)| i);
                format!("the upstream answered HTTP {status}: {}", &text[..cut])
            }
        }
    };
    let code = super::adapter::error_reason(body).or_else(|| info.and_then(|i| i.kind));
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    let error = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    serde_json::to_vec(&error).unwrap_or_default()
}
