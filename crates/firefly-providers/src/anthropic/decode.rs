//! An Anthropic upstream's stream events as hub chunks.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::convert::{finish_reason, hub_usage_json, unix_now, WireUsage};
use crate::openai::Usage;
use crate::sse::SseEvent;
use crate::transcode::{ChunkDecoder, TranscodeError};

/// What a started content block turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A `tool_use` block, the hub's tool call with this index.
    Tool(u64),
    /// Redacted thinking, server tool blocks, block types not known yet: nothing for the hub.
    Ignored,
}

/// Converts an Anthropic stream (`message_start`, content block events, `message_delta`,
/// `message_stop`) to hub chunks:
///
/// - `message_start` → a chunk with `role: assistant`; its id and model name every chunk.
/// - text deltas → `content`, thinking deltas → `reasoning_content` (signatures are
///   dropped), a `tool_use` block's start → a tool call's first fragment (`id`, `type`,
///   `function.name`, empty `arguments`) with the call's index counting tool blocks, its
///   `input_json_delta`s → `arguments` fragments.
/// - `message_delta`'s `stop_reason` → a chunk with the `finish_reason`; its usage is
///   recorded; `message_stop` → the usage chunk (`"choices": []`) and the end.
/// - `ping` and event types not known yet are skipped; an `error` event is
///   [`TranscodeError::Upstream`] with its message; anything that is not JSON, or a known
///   event missing what it must carry, is an error too.
#[derive(Debug)]
pub struct StreamDecoder {
    id: String,
    model: String,
    created: u64,
    /// The chunk with the role was sent.
    started: bool,
    /// Started content blocks by Anthropic index.
    blocks: HashMap<u64, Block>,
    tool_calls: u64,
    usage: WireUsage,
    usage_reported: bool,
    complete: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder {
            id: String::new(),
            model: String::new(),
            created: unix_now(),
            started: false,
            blocks: HashMap::new(),
            tool_calls: 0,
            usage: WireUsage::default(),
            usage_reported: false,
            complete: false,
        }
    }

    /// A hub chunk of one choice; the first one also says the role.
    fn chunk(&mut self, mut delta: Value, finish: Option<&str>) -> Value {
        if !std::mem::replace(&mut self.started, true) {
            delta["role"] = "assistant".into();
        }
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    fn record_usage(&mut self, usage: Option<&Value>) -> Result<(), TranscodeError> {
        let Some(usage) = usage.filter(|u| !u.is_null()) else {
            return Ok(());
        };
        let usage: WireUsage = serde_json::from_value(usage.clone())
            .map_err(|e| TranscodeError::upstream(format!("invalid usage in the stream: {e}")))?;
        self.usage.update(usage);
        self.usage_reported = true;
        Ok(())
    }

    fn on_message_start(&mut self, event: &Value, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        let message =
            event.get("message").ok_or_else(|| TranscodeError::upstream("message_start without a `message`"))?;
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            self.id = id.to_owned();
        }
        if let Some(model) = message.get("model").and_then(Value::as_str) {
            self.model = model.to_owned();
        }
        self.record_usage(message.get("usage"))?;
        if !self.started {
            let chunk = self.chunk(json!({"content": ""}), None);
            out.push(chunk);
        }
        Ok(())
    }

    fn on_block_start(&mut self, event: &Value, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        let index = index_of(event)?;
        let block = event
            .get("content_block")
            .filter(|b| b.is_object())
            .ok_or_else(|| TranscodeError::upstream("content_block_start without a `content_block`"))?;
        let text = |key: &str| block.get(key).and_then(Value::as_str);
        let kind = match text("type") {
            Some("text") => {
                if let Some(text) = text("text").filter(|t| !t.is_empty()) {
                    let chunk = self.chunk(json!({"content": text}), None);
                    out.push(chunk);
                }
                Block::Text
            }
            Some("thinking") => {
                if let Some(text) = text("thinking").filter(|t| !t.is_empty()) {
                    let chunk = self.chunk(json!({"reasoning_content": text}), None);
                    out.push(chunk);
                }
                Block::Thinking
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) = (text("id"), text("name")) else {
                    return Err(TranscodeError::upstream("a tool_use block without `id` or `name`"));
                };
                let call = self.tool_calls;
                self.tool_calls += 1;
                let chunk = self.chunk(
                    json!({"tool_calls": [{
                        "index": call,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                );
                out.push(chunk);
                // Anthropic starts with `{}` and streams the input; a non-empty input here
                // is the whole of it.
                if let Some(input) = block.get("input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty())) {
                    let chunk = self.chunk(arguments_delta(call, &input.to_string()), None);
                    out.push(chunk);
                }
                Block::Tool(call)
            }
            Some(_) => Block::Ignored,
            None => return Err(TranscodeError::upstream("a content block without a `type`")),
        };
        self.blocks.insert(index, kind);
        Ok(())
    }

    fn on_block_delta(&mut self, event: &Value, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        let index = index_of(event)?;
        let delta = event
            .get("delta")
            .filter(|d| d.is_object())
            .ok_or_else(|| TranscodeError::upstream("content_block_delta without a `delta`"))?;
        let block = self.blocks.get(&index).copied().ok_or_else(|| {
            TranscodeError::upstream(format!("a delta for content block {index}, which never started"))
        })?;
        let kind = delta
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| TranscodeError::upstream("a content block delta without a `type`"))?;
        let field = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| TranscodeError::upstream(format!("a {kind} without `{key}`")))
        };
        let chunk_delta = match (kind, block) {
            // Anthropic opens a tool's input with an empty fragment: nothing to say.
            ("text_delta", Block::Text) if field("text")?.is_empty() => return Ok(()),
            ("thinking_delta", Block::Thinking) if field("thinking")?.is_empty() => return Ok(()),
            ("input_json_delta", Block::Tool(_)) if field("partial_json")?.is_empty() => return Ok(()),
            ("text_delta", Block::Text) => json!({"content": field("text")?}),
            ("thinking_delta", Block::Thinking) => json!({"reasoning_content": field("thinking")?}),
            ("input_json_delta", Block::Tool(call)) => arguments_delta(call, field("partial_json")?),
            ("text_delta" | "thinking_delta" | "input_json_delta", _) => {
                return Err(TranscodeError::upstream(format!("a {kind} for content block {index} of another type")))
            }
            // signature_delta, citations_delta, deltas not known yet.
            _ => return Ok(()),
        };
        let chunk = self.chunk(chunk_delta, None);
        out.push(chunk);
        Ok(())
    }

    fn on_message_delta(&mut self, event: &Value, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        self.record_usage(event.get("usage"))?;
        let stop = match event.get("delta").and_then(|d| d.get("stop_reason")) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(reason)) => finish_reason(reason),
            Some(_) => return Err(TranscodeError::upstream("a `stop_reason` that is not a string")),
        };
        let chunk = self.chunk(json!({}), Some(stop));
        out.push(chunk);
        Ok(())
    }
}

/// A content block event's `index`.
fn index_of(event: &Value) -> Result<u64, TranscodeError> {
    event
        .get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| TranscodeError::upstream("a content block event without an `index`"))
}

fn arguments_delta(call: u64, arguments: &str) -> Value {
    json!({"tool_calls": [{"index": call, "function": {"arguments": arguments}}]})
}

impl ChunkDecoder for StreamDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        let value: Value = serde_json::from_slice(&event.data)
            .map_err(|e| TranscodeError::upstream(format!("a stream event is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(TranscodeError::upstream("a stream event is not a JSON object"));
        }
        let kind = value.get("type").and_then(Value::as_str).or_else(|| event.event_name()).unwrap_or_default();
        if kind == "error" {
            let message = value.get("error").and_then(|e| e.get("message")).and_then(Value::as_str);
            return Err(TranscodeError::upstream(message.unwrap_or("the upstream reported an error")));
        }
        if self.complete {
            return Ok(());
        }
        match kind {
            "message_start" => self.on_message_start(&value, out),
            "content_block_start" => self.on_block_start(&value, out),
            "content_block_delta" => self.on_block_delta(&value, out),
            "content_block_stop" => index_of(&value).map(drop),
            "message_delta" => self.on_message_delta(&value, out),
            "message_stop" => {
                self.complete = true;
                if let Some(usage) = self.usage() {
                    out.push(json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": hub_usage_json(usage),
                    }));
                }
                Ok(())
            }
            // `ping`, and event types added after this was written.
            _ => Ok(()),
        }
    }

    fn is_complete(&self) -> bool {
        self.complete
    }

    fn usage(&self) -> Option<Usage> {
        self.usage_reported.then(|| self.usage.to_usage())
    }
}
