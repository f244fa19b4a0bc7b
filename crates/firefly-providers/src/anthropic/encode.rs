//! Hub chunks as the stream events an Anthropic client reads.

use bytes::Bytes;
use serde_json::{json, Value};

use super::convert::stop_reason;
use super::response::message_id;
use crate::openai::Usage;
use crate::transcode::{encode_named_json, hub_usage, ChunkEncoder};

/// The kind of the open content block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    /// The hub's tool call with this index.
    Tool(u64),
}

/// Writes hub chunks as Anthropic's stream: `message_start` (empty content; input tokens
/// when the first chunk already carries usage, else 0), then one content block per run of
/// reasoning (a `thinking` block, with no signature to give), text (a `text` block) or
/// one tool call's fragments (a `tool_use` block streaming `input_json_delta`s), each
/// stopped before the next starts, then `message_delta` (the stop reason mapped from the
/// finish reason, and the usage of the hub's usage chunk) and `message_stop`.
///
/// Only the first choice is written (Anthropic has no `n`). A tool call's fragments that
/// arrive after another block started cannot reopen its block and start a new one.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    started: bool,
    finished: bool,
    /// The open block's index and kind.
    open: Option<(u64, Kind)>,
    next_index: u64,
    stop_reason: Option<&'static str>,
    saw_tool: bool,
    usage: Option<Usage>,
}

impl StreamEncoder {
    /// An encoder reporting `model` and the message id `message_id` (prefixed with `msg_`
    /// unless it has it).
    pub fn new(model: impl Into<String>, message_id_: impl AsRef<str>) -> StreamEncoder {
        StreamEncoder {
            id: message_id(message_id_.as_ref()),
            model: model.into(),
            started: false,
            finished: false,
            open: None,
            next_index: 0,
            stop_reason: None,
            saw_tool: false,
            usage: None,
        }
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let usage = self.usage.unwrap_or_default();
        let message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {
                "input_tokens": usage.prompt_tokens.saturating_sub(usage.cached_tokens),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": usage.cached_tokens,
                "output_tokens": 0,
            },
        });
        out.push(encode_named_json("message_start", &json!({"type": "message_start", "message": message})));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(encode_named_json("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        }
    }

    /// Makes a block of `kind` the open one, starting it with `content_block` when it is not.
    fn open(&mut self, kind: Kind, content_block: impl FnOnce() -> Value, out: &mut Vec<Bytes>) -> u64 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let event = json!({"type": "content_block_start", "index": index, "content_block": content_block()});
        out.push(encode_named_json("content_block_start", &event));
        index
    }

    fn delta(index: u64, delta: Value, out: &mut Vec<Bytes>) {
        let event = json!({"type": "content_block_delta", "index": index, "delta": delta});
        out.push(encode_named_json("content_block_delta", &event));
    }

    fn text(&mut self, kind: Kind, text: &str, out: &mut Vec<Bytes>) {
        let (block, delta) = match kind {
            Kind::Thinking => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                json!({"type": "thinking_delta", "thinking": text}),
            ),
            _ => (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": text})),
        };
        let index = self.open(kind, || block, out);
        Self::delta(index, delta, out);
    }

    fn tool_call(&mut self, position: usize, call: &Value, out: &mut Vec<Bytes>) {
        let call_index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let function = call.get("function");
        let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
        let id = text(call.get("id"));
        let name = text(function.and_then(|f| f.get("name")));
        let arguments = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default();
        self.saw_tool = true;
        let index = self.open(
            Kind::Tool(call_index),
            || {
                let id = if id.is_empty() { format!("toolu_{call_index}") } else { id };
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            },
            out,
        );
        if !arguments.is_empty() {
            Self::delta(index, json!({"type": "input_json_delta", "partial_json": arguments}), out);
        }
    }
}

impl ChunkEncoder for StreamEncoder {
    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.finished {
            return;
        }
        if let Some(usage) = hub_usage(chunk) {
            self.usage = Some(usage);
        }
        self.start(out);
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return;
        };
        let Some(choice) = choices.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0) else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            let text = |key: &str| delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty());
            if let Some(reasoning) = text("reasoning_content") {
                self.text(Kind::Thinking, reasoning, out);
            }
            if let Some(content) = text("content").or_else(|| text("refusal")) {
                self.text(Kind::Text, content, out);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    self.tool_call(position, call, out);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(stop_reason(reason));
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close(out);
        self.finished = true;
        let default = if self.saw_tool { "tool_use" } else { "end_turn" };
        let mut usage = json!({"output_tokens": self.usage.map_or(0, |u| u.completion_tokens)});
        if let Some(known) = self.usage {
            usage["input_tokens"] = known.prompt_tokens.saturating_sub(known.cached_tokens).into();
            usage["cache_read_input_tokens"] = known.cached_tokens.into();
        }
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason.unwrap_or(default), "stop_sequence": null},
            "usage": usage,
        });
        out.push(encode_named_json("message_delta", &delta));
        out.push(encode_named_json("message_stop", &json!({"type": "message_stop"})));
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        if self.finished {
            return;
        }
        self.close(out);
        self.finished = true;
        let error = json!({"type": "error", "error": {"type": "api_error", "message": message}});
        out.push(encode_named_json("error", &error));
    }
}
