//! The SSE body of a streamed chat completion, produced one event at a time.
//!
//! Per choice, OpenAI sends a role chunk (`delta.role`, empty content), one chunk per token,
//! and a chunk with an empty delta and the `finish_reason`; with `n` > 1 the choices' chunks
//! interleave token by token. With `stream_options.include_usage` every chunk carries
//! `"usage": null` and one more chunk, with `"choices": []`, carries the totals. `data: [DONE]`
//! ends the stream. Each event is one body frame; the chunk delay is slept before each content
//! chunk, so the role chunk leaves with the response head.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::frames::ChunkDelay;
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;

use crate::chat::Plan;
use crate::wire::{
    ArgumentsFragment, Chunk, ChunkChoice, Delta, Function, ToolCallFragment, ToolCallHead, UsageField, FINGERPRINT,
    SERVICE_TIER,
};

const DONE: &[u8] = b"data: [DONE]\n\n";

pub(crate) struct ChatStream {
    plan: Plan,
    /// `usage` on ordinary chunks.
    usage_field: UsageField,
    /// Whether the usage chunk is sent before `[DONE]`.
    usage_chunk: bool,
    call_ids: Vec<String>,
    delay: ChunkDelay,
    disconnect_after: Option<u64>,
    /// Index of the next event.
    pos: u64,
    content_sent: u64,
    /// Set once the stream has paused before cutting, so hyper flushed what came before.
    cut_armed: bool,
    finished: bool,
}

/// What the event at a position is.
enum Event {
    Role { choice: u32 },
    Content { token: u64, choice: u32 },
    Finish { choice: u32 },
    Usage,
    Done,
    End,
}

impl ChatStream {
    pub(crate) fn new(plan: Plan, include_usage: bool, delay: Duration, disconnect_after: Option<u64>) -> ChatStream {
        let usage_chunk = include_usage && plan.usage.is_some();
        let call_ids = match plan.tool {
            Some(_) => (0..plan.choices).map(|c| plan.tool_call_id(c)).collect(),
            None => Vec::new(),
        };
        ChatStream {
            usage_field: if usage_chunk { UsageField::Null } else { UsageField::Omitted },
            usage_chunk,
            call_ids,
            delay: ChunkDelay::new(delay),
            disconnect_after,
            pos: 0,
            content_sent: 0,
            cut_armed: false,
            finished: false,
            plan,
        }
    }

    fn event(&self, pos: u64) -> Event {
        let n = u64::from(self.plan.choices);
        let content_end = n + self.plan.tokens * n;
        let finish_end = content_end + n;
        if pos < n {
            Event::Role { choice: pos as u32 }
        } else if pos < content_end {
            let i = pos - n;
            Event::Content { token: i / n, choice: (i % n) as u32 }
        } else if pos < finish_end {
            Event::Finish { choice: (pos - content_end) as u32 }
        } else if pos == finish_end && self.usage_chunk {
            Event::Usage
        } else if pos == finish_end + u64::from(self.usage_chunk) {
            Event::Done
        } else {
            Event::End
        }
    }

    fn choice_frame(&self, index: u32, delta: Delta<'_>, finish_reason: Option<&'static str>) -> Bytes {
        let choice = [ChunkChoice { index, delta, logprobs: (), finish_reason }];
        self.frame(&choice, self.usage_field)
    }

    fn frame(&self, choices: &[ChunkChoice<'_>], usage: UsageField) -> Bytes {
        let chunk = Chunk {
            id: &self.plan.id,
            object: "chat.completion.chunk",
            created: self.plan.created,
            model: &self.plan.model,
            service_tier: SERVICE_TIER,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        };
        sse(&chunk)
    }

    fn render(&self, event: Event) -> Bytes {
        match event {
            Event::Role { choice } => {
                let delta = match &self.plan.tool {
                    None => Delta::RoleText { role: "assistant", content: "", refusal: () },
                    Some(name) => Delta::RoleTool {
                        role: "assistant",
                        content: (),
                        tool_calls: [ToolCallHead {
                            index: 0,
                            id: &self.call_ids[choice as usize],
                            kind: "function",
                            function: Function { name, arguments: self.plan.arguments_head() },
                        }],
                        refusal: (),
                    },
                };
                self.choice_frame(choice, delta, None)
            }
            Event::Content { token, choice } => match self.plan.tool {
                None => self.choice_frame(choice, Delta::Content { content: Plan::word(token) }, None),
                Some(_) => {
                    let fragment = self.plan.arguments_fragment(token);
                    let delta = Delta::ToolArguments {
                        tool_calls: [ToolCallFragment {
                            index: 0,
                            function: ArgumentsFragment { arguments: &fragment },
                        }],
                    };
                    self.choice_frame(choice, delta, None)
                }
            },
            Event::Finish { choice } => self.choice_frame(choice, Delta::Empty {}, Some(self.plan.finish_reason)),
            Event::Usage => {
                let usage = self.plan.usage.map_or(UsageField::Null, UsageField::Totals);
                self.frame(&[], usage)
            }
            Event::Done => Bytes::from_static(DONE),
            Event::End => Bytes::new(),
        }
    }

    /// Whether the connection should be cut before the event at `pos`: once
    /// `x-mock-disconnect-after` content chunks went out (or all of them, if there are fewer),
    /// before anything that follows.
    fn cut_here(&self) -> bool {
        let Some(limit) = self.disconnect_after else {
            return false;
        };
        let n = u64::from(self.plan.choices);
        self.pos >= n && self.content_sent >= limit.min(self.plan.tokens * n)
    }
}

impl Stream for ChatStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if this.cut_here() {
            if !this.cut_armed {
                // hyper flushes its write buffer when the body is pending; an error right
                // after the last chunk would discard that chunk unsent.
                this.cut_armed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.finished = true;
            // An error from the body makes hyper drop the connection without the chunked
            // terminator: the client sees a truncated body, as when an upstream dies.
            return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "x-mock-disconnect-after"))));
        }
        let event = this.event(this.pos);
        match event {
            Event::Content { .. } => {
                if this.delay.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.content_sent += 1;
            }
            Event::End => {
                this.finished = true;
                return Poll::Ready(None);
            }
            _ => {}
        }
        this.pos += 1;
        Poll::Ready(Some(Ok(this.render(event))))
    }
}

fn sse<T: Serialize>(value: &T) -> Bytes {
    let mut frame = Vec::with_capacity(384);
    frame.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut frame, value).expect("a chunk serializes");
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}
