//! Non-stream responses: an Anthropic message to a hub `chat.completion`, and back.

use serde::Deserialize;
use serde_json::{json, Value};

use super::convert::{finish_reason, hub_usage_json, stop_reason, unix_now, WireUsage};
use crate::transcode::{hub_usage, TranscodeError};

/// An Anthropic message, the fields the hub needs; content blocks stay open-ended.
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    content: Vec<Value>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

/// An Anthropic upstream's message as a hub `chat.completion`: text blocks joined into
/// `content`, `tool_use` blocks as `tool_calls` (input serialized as the `arguments`
/// string), thinking text as `reasoning_content`. Redacted thinking, server tool blocks
/// and block types this function does not know are dropped. The stop reason becomes a
/// finish reason (end_turn, stop_sequence, pause_turn → `stop`; max_tokens → `length`;
/// tool_use → `tool_calls`; refusal → `content_filter`), and usage is counted as OpenAI
/// counts it (see the [module docs](super)).
pub fn response_to_openai(body: &[u8]) -> Result<Value, TranscodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| TranscodeError::upstream(format!("the response is not JSON: {e}")))?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        let message = value.get("error").and_then(|e| e.get("message")).and_then(Value::as_str);
        return Err(TranscodeError::upstream(message.unwrap_or("the upstream reported an error").to_owned()));
    }
    let message: Message = serde_json::from_value(value)
        .map_err(|e| TranscodeError::upstream(format!("the response is not an Anthropic message: {e}")))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in &message.content {
        let field = |key: &str| block.get(key).and_then(Value::as_str);
        match field("type") {
            Some("text") => text.push_str(field("text").unwrap_or_default()),
            Some("thinking") => reasoning.push_str(field("thinking").unwrap_or_default()),
            Some("tool_use") => {
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return Err(TranscodeError::upstream("a tool_use block without `id` or `name`"));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            _ => {}
        }
    }
    let mut reply = json!({"role": "assistant"});
    reply["content"] = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    if !reasoning.is_empty() {
        reply["reasoning_content"] = reasoning.into();
    }
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    let finish = message.stop_reason.as_deref().map(finish_reason).unwrap_or("stop");
    let mut completion = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": message.model,
        "choices": [{"index": 0, "message": reply, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(usage) = message.usage {
        completion["usage"] = hub_usage_json(usage.to_usage());
    }
    Ok(completion)
}

/// A hub `chat.completion` as the message an Anthropic client reads: the first choice's
/// `reasoning_content` as a thinking block (with an empty signature: there is none to
/// give), its text as a text block, its tool calls as `tool_use` blocks (arguments that are
/// not a JSON object are an upstream error). The id gets a `msg_` prefix; `stop` becomes
/// `end_turn` (OpenAI does not say whether a stop sequence matched, so `stop_sequence` is
/// always null); usage is split back into uncached input and cache reads.
pub fn response_from_openai(hub: &Value) -> Result<Vec<u8>, TranscodeError> {
    if !hub.is_object() {
        return Err(TranscodeError::upstream("the response is not a JSON object"));
    }
    let choice = hub
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| TranscodeError::upstream("the response has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let text_of = |key: &str| message.get(key).and_then(Value::as_str).filter(|t| !t.is_empty());
    let mut content = Vec::new();
    if let Some(thinking) = text_of("reasoning_content") {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
    }
    match message.get("content") {
        Some(Value::String(text)) if !text.is_empty() => content.push(json!({"type": "text", "text": text})),
        Some(Value::Array(parts)) => {
            let text: String = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
        }
        _ => {}
    }
    if let Some(refusal) = text_of("refusal") {
        content.push(json!({"type": "text", "text": refusal}));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            content.push(tool_use_block(call)?);
        }
    }
    let stop = choice.get("finish_reason").and_then(Value::as_str).map(stop_reason).unwrap_or("end_turn");
    let usage = hub_usage(hub).unwrap_or_default();
    let anthropic = json!({
        "id": message_id(hub.get("id").and_then(Value::as_str).unwrap_or_default()),
        "type": "message",
        "role": "assistant",
        "model": hub.get("model").and_then(Value::as_str).unwrap_or_default(),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": anthropic_usage(usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens),
    });
    serde_json::to_vec(&anthropic).map_err(|e| TranscodeError::upstream(e.to_string()))
}

fn tool_use_block(call: &Value) -> Result<Value, TranscodeError> {
    let function = call.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
    let Some(name) = name else {
        return Err(TranscodeError::upstream("a tool call without `function.name`"));
    };
    let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
    let input = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(text)) if !text.trim().is_empty() => serde_json::from_str(text)
            .map_err(|e| TranscodeError::upstream(format!("the tool call's arguments are not JSON: {e}")))?,
        Some(Value::Object(object)) => Value::Object(object.clone()),
        _ => json!({}),
    };
    if !input.is_object() {
        return Err(TranscodeError::upstream("the tool call's arguments are not a JSON object"));
    }
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// An id that looks like Anthropic's: `msg_` and the upstream's id.
pub(crate) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Anthropic's usage from OpenAI's counts: uncached input, cache reads, output.
pub(crate) fn anthropic_usage(prompt_tokens: u64, cached_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": prompt_tokens.saturating_sub(cached_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached_tokens,
        "output_tokens": output_tokens,
    })
}
