//! Hub chunks as the stream events an Anthropic client reads.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::convert::stop_reason;
use super::response::message_id;
use crate::openai::Usage;
use crate::transcode::{hub_usage, ChunkEncoder};

/// The events this encoder writes, typed so that their fields come in Anthropic's order
/// (`type` first).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: MessageStart<'a> },
    ContentBlockStart { index: u64, content_block: BlockStart<'a> },
    ContentBlockDelta { index: u64, delta: Delta<'a> },
    ContentBlockStop { index: u64 },
    MessageDelta { delta: StopDelta, usage: DeltaUsage },
    MessageStop,
    Error { error: ErrorDetail<'a> },
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }

    /// `event: <name>\ndata: <json>\n\n`.
    fn frame(&self) -> Bytes {
        // Plain structs of strings and numbers: serializing cannot fail.
        let data = serde_json::to_vec(self).unwrap_or_default();
        let name = self.name();
        let mut frame = Vec::with_capacity(name.len() + data.len() + 16);
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(name.as_bytes());
        frame.extend_from_slice(b"\ndata: ");
        frame.extend_from_slice(&data);
        frame.extend_from_slice(b"\n\n");
        Bytes::from(frame)
    }
}

#[derive(Serialize)]
struct MessageStart<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: [(); 0],
    model: &'a str,
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: StartUsage,
}

#[derive(Serialize)]
struct StartUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// `input` of a tool_use block's start: `{}`, as Anthropic streams the input after it.
#[derive(Serialize)]
struct EmptyInput {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart<'a> {
    Text { text: &'static str },
    Thinking { thinking: &'static str, signature: &'static str },
    ToolUse { id: &'a str, name: &'a str, input: EmptyInput },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct DeltaUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    output_tokens: u64,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

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
    /// An encoder reporting `model` and the message id `id` (prefixed with `msg_` unless it
    /// has it).
    pub fn new(model: impl Into<String>, id: impl AsRef<str>) -> StreamEncoder {
        StreamEncoder {
            id: message_id(id.as_ref()),
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
        let message = MessageStart {
            id: &self.id,
            kind: "message",
            role: "assistant",
            content: [],
            model: &self.model,
            stop_reason: None,
            stop_sequence: None,
            usage: StartUsage {
                input_tokens: usage.prompt_tokens.saturating_sub(usage.cached_tokens),
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: usage.cached_tokens,
                output_tokens: 0,
            },
        };
        out.push(Event::MessageStart { message }.frame());
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(Event::ContentBlockStop { index }.frame());
        }
    }

    /// Makes a block of `kind` the open one, starting it with `content_block` when it is not.
    fn open(&mut self, kind: Kind, content_block: BlockStart<'_>, out: &mut Vec<Bytes>) -> u64 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.open = Some((index, kind));
        out.push(Event::ContentBlockStart { index, content_block }.frame());
        index
    }

    fn text(&mut self, kind: Kind, text: &str, out: &mut Vec<Bytes>) {
        let (block, delta) = match kind {
            Kind::Thinking => {
                (BlockStart::Thinking { thinking: "", signature: "" }, Delta::Thinking { thinking: text })
            }
            _ => (BlockStart::Text { text: "" }, Delta::Text { text }),
        };
        let index = self.open(kind, block, out);
        out.push(Event::ContentBlockDelta { index, delta }.frame());
    }

    fn tool_call(&mut self, position: usize, call: &Value, out: &mut Vec<Bytes>) {
        let call_index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let function = call.get("function");
        fn text(value: Option<&Value>) -> &str {
            value.and_then(Value::as_str).unwrap_or_default()
        }
        let name = text(function.and_then(|f| f.get("name")));
        let arguments = text(function.and_then(|f| f.get("arguments")));
        let id = match text(call.get("id")) {
            "" => format!("toolu_{call_index}"),
            id => id.to_owned(),
        };
        self.saw_tool = true;
        let index = self.open(Kind::Tool(call_index), BlockStart::ToolUse { id: &id, name, input: EmptyInput {} }, out);
        if !arguments.is_empty() {
            out.push(Event::ContentBlockDelta { index, delta: Delta::InputJson { partial_json: arguments } }.frame());
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
        let usage = DeltaUsage {
            input_tokens: self.usage.map(|u| u.prompt_tokens.saturating_sub(u.cached_tokens)),
            cache_read_input_tokens: self.usage.map(|u| u.cached_tokens),
            output_tokens: self.usage.map_or(0, |u| u.completion_tokens),
        };
        let delta = StopDelta { stop_reason: self.stop_reason.unwrap_or(default), stop_sequence: None };
        out.push(Event::MessageDelta { delta, usage }.frame());
        out.push(Event::MessageStop.frame());
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        if self.finished {
            return;
        }
        self.close(out);
        self.finished = true;
        out.push(Event::Error { error: ErrorDetail { kind: "api_error", message } }.frame());
    }
}
