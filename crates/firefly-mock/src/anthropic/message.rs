//! One Anthropic answer, decided once and written either as a `message` object or as
//! Anthropic's event stream:
//!
//! ```text
//! message_start
//! [thinking block: content_block_start, ping, thinking_delta × K, signature_delta, content_block_stop]
//! content_block_start            (text, or tool_use with empty input)
//! ping                           (here, unless the thinking block came first)
//! content_block_delta × K        (text_delta, or input_json_delta fragments)
//! content_block_stop
//! message_delta                  (stop_reason, usage.output_tokens)
//! message_stop
//! ```

use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;

use super::error::{error_type, Body, Inner};
use crate::chat::{arguments_fragment, words, Plan as ChatPlan};
use crate::frames::{Cut, Frames, Role};
use crate::knobs::Knobs;
use crate::MockConfig;

/// The signature every thinking block carries (opaque to clients, so any base64 does).
const SIGNATURE: &str = "RmlyZWZseSBtb2NrIHRoaW5raW5nIHNpZ25hdHVyZQ==";

pub(super) struct Plan {
    pub id: String,
    pub model: String,
    pub input_tokens: u64,
    /// Content chunks: words of the text, or fragments of the tool input.
    pub tokens: u64,
    /// Whether `max_tokens` cut the answer short.
    pub capped: bool,
    /// A thinking block (of the same words) comes first.
    pub thinking: bool,
    /// The tool's name, when the answer is a tool call.
    pub tool: Option<String>,
}

#[derive(Clone, Copy, Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: (),
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: ToolInput<'a> },
}

#[derive(Serialize)]
struct ToolInput<'a> {
    text: &'a str,
}

/// The empty input a streamed `tool_use` block starts with.
#[derive(Serialize)]
struct EmptyInput {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Thinking { thinking: &'static str, signature: &'static str },
    Text { text: &'static str },
    ToolUse { id: &'a str, name: &'a str, input: EmptyInput },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: (),
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: Message<'a> },
    ContentBlockStart { index: u32, content_block: StartBlock<'a> },
    Ping,
    ContentBlockDelta { index: u32, delta: Delta<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopDelta, usage: OutputUsage },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

fn frame(name: &str, data: &impl Serialize) -> Bytes {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(name.as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut frame, data).expect("an event serializes");
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The `event: error` Anthropic sends when a stream fails after its 200 head.
fn overloaded_frame() -> Bytes {
    let status = http::StatusCode::from_u16(529).expect("529 is a status code");
    let body =
        Body { kind: "error", error: Inner { kind: error_type(status), message: "Overloaded" }, request_id: None };
    frame("error", &body)
}

impl Plan {
    fn stop_reason(&self) -> &'static str {
        if self.capped {
            "max_tokens"
        } else if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    /// Output tokens: one per content chunk, twice that with the thinking block.
    fn output_tokens(&self) -> u64 {
        if self.thinking {
            self.tokens * 2
        } else {
            self.tokens
        }
    }

    fn usage(&self, output_tokens: u64) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens,
        }
    }

    fn tool_id(&self) -> String {
        format!("toolu_01{}", &self.id["msg_01".len()..])
    }

    pub(super) fn message_json(&self) -> Vec<u8> {
        let text = words(self.tokens);
        let tool_id = self.tool_id();
        let mut content = Vec::with_capacity(2);
        if self.thinking {
            content.push(Block::Thinking { thinking: &text, signature: SIGNATURE });
        }
        content.push(match &self.tool {
            None => Block::Text { text: &text },
            Some(name) => Block::ToolUse { id: &tool_id, name, input: ToolInput { text: &text } },
        });
        let message = Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content,
            stop_reason: Some(self.stop_reason()),
            stop_sequence: (),
            usage: self.usage(self.output_tokens()),
        };
        serde_json::to_vec(&message).expect("a message serializes")
    }

    pub(super) fn stream(&self, knobs: &Knobs, config: &MockConfig) -> Response {
        let cut = match (knobs.disconnect_after(), knobs.stream_error_after()) {
            (Some(after), _) => Some(Cut::Disconnect { after }),
            (None, Some(after)) => Some(Cut::Error { after, frame: overloaded_frame() }),
            (None, None) => None,
        };
        Frames::new(self.frames(), knobs.chunk_delay(config), cut).into_response("text/event-stream; charset=utf-8")
    }

    fn frames(&self) -> Vec<(Role, Bytes)> {
        let mut frames = Vec::with_capacity(8 + self.tokens as usize * if self.thinking { 2 } else { 1 });
        let mut push = |role: Role, event: Event| frames.push((role, frame(event.name(), &event)));
        let start = Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: (),
            usage: self.usage(1),
        };
        push(Role::Lead, Event::MessageStart { message: start });
        let mut index = 0;
        if self.thinking {
            let block = StartBlock::Thinking { thinking: "", signature: "" };
            push(Role::Lead, Event::ContentBlockStart { index, content_block: block });
            push(Role::Lead, Event::Ping);
            for i in 0..self.tokens {
                let delta = Delta::Thinking { thinking: ChatPlan::word(i) };
                push(Role::Content, Event::ContentBlockDelta { index, delta });
            }
            let delta = Delta::Signature { signature: SIGNATURE };
            push(Role::Other, Event::ContentBlockDelta { index, delta });
            push(Role::Other, Event::ContentBlockStop { index });
            index += 1;
        }
        let tool_id = self.tool_id();
        let block = match &self.tool {
            None => StartBlock::Text { text: "" },
            Some(name) => StartBlock::ToolUse { id: &tool_id, name, input: EmptyInput {} },
        };
        let lead = if self.thinking { Role::Other } else { Role::Lead };
        push(lead, Event::ContentBlockStart { index, content_block: block });
        if !self.thinking {
            push(Role::Lead, Event::Ping);
        }
        for i in 0..self.tokens {
            let fragment;
            let delta = match self.tool {
                None => Delta::Text { text: ChatPlan::word(i) },
                Some(_) => {
                    fragment = arguments_fragment(i, self.tokens);
                    Delta::InputJson { partial_json: &fragment }
                }
            };
            push(Role::Content, Event::ContentBlockDelta { index, delta });
        }
        push(Role::Other, Event::ContentBlockStop { index });
        let stop = StopDelta { stop_reason: self.stop_reason(), stop_sequence: () };
        push(
            Role::Other,
            Event::MessageDelta { delta: stop, usage: OutputUsage { output_tokens: self.output_tokens() } },
        );
        push(Role::Other, Event::MessageStop);
        frames
    }
}
