//! `streamGenerateContent?alt=sse` events as hub chunks.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{finish_reason, hub_usage_json, tool_call, unix_now, usage_of};
use super::wire::{error_message, parse_response, Candidate, UsageMetadata};
use crate::openai::Usage;
use crate::sse::SseEvent;
use crate::transcode::{ChunkDecoder, TranscodeError};

/// Gemini's SSE stream (each event a whole `GenerateContentResponse` holding the new
/// parts) as hub chunks.
///
/// - A choice's first chunk carries `role: "assistant"`. Each run of same-kind parts in an
///   event becomes one chunk, in the order Gemini sent them: text as `content`, thought
///   parts as `reasoning_content`, and each `functionCall` as one complete `tool_calls`
///   fragment (`index` counting that choice's calls, `id`, `type`, `name`, and the whole
///   `arguments`, as Gemini never splits a call).
/// - A candidate's `finishReason` becomes a chunk with an empty delta and the
///   `finish_reason`. After it, that choice is closed: further parts or reasons for it are
///   dropped.
/// - **The stream is complete** ([`is_complete`](ChunkDecoder::is_complete)) once as many
///   candidates as expected (one, or [`with_candidate_count`](Self::with_candidate_count))
///   have each reported a `finishReason`, or the prompt was blocked
///   (`promptFeedback.blockReason` with no candidates: one choice finishing with
///   `content_filter`).
/// - **Usage**: `usageMetadata` is cumulative, so the latest one seen is kept
///   ([`usage`](ChunkDecoder::usage), also after a break). The usage chunk
///   (`"choices": []`) is emitted once, in the first event at which the stream is complete
///   and a usage has been seen: normally right after the last `finish_reason` chunk, from
///   the same event. Events after it only update [`usage`](ChunkDecoder::usage), so the
///   usage chunk is always the last.
/// - A `data: [DONE]` event (which Gemini does not send, but some proxies add) is ignored;
///   an event that is not a JSON object, or that holds an `error`, is
///   [`TranscodeError::Upstream`].
#[derive(Debug)]
pub struct StreamDecoder {
    id: String,
    model: String,
    created: u64,
    expected_candidates: usize,
    choices: BTreeMap<u32, ChoiceState>,
    next_call: u64,
    usage: Option<UsageMetadata>,
    usage_sent: bool,
}

#[derive(Debug, Default)]
struct ChoiceState {
    role_sent: bool,
    tool_calls: u64,
    finished: bool,
}

/// What a run of parts turns into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Content,
    Reasoning,
}

impl StreamDecoder {
    /// `id` and `model` are put in every chunk (the relay's completion id, the client's
    /// model name).
    pub fn new(id: String, model: String) -> StreamDecoder {
        StreamDecoder {
            id,
            model,
            created: unix_now(),
            expected_candidates: 1,
            choices: BTreeMap::new(),
            next_call: 0,
            usage: None,
            usage_sent: false,
        }
    }

    /// How many candidates must finish before the stream is complete: the request's
    /// `candidateCount` (the hub's `n`); 1 when not set. Zero counts as one.
    pub fn with_candidate_count(mut self, count: u32) -> StreamDecoder {
        self.expected_candidates = (count as usize).max(1);
        self
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// A chunk with one choice's `delta`, given `role` on its first.
    fn delta(&mut self, index: u32, mut delta: Value, finish: Option<&str>, out: &mut Vec<Value>) {
        let state = self.choices.entry(index).or_default();
        if !std::mem::replace(&mut state.role_sent, true) {
            delta["role"] = "assistant".into();
        }
        out.push(self.chunk(json!([{"index": index, "delta": delta, "finish_reason": finish}])));
    }

    fn on_candidate(&mut self, position: usize, candidate: Candidate, out: &mut Vec<Value>) {
        let index = candidate.index.unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
        if self.choices.get(&index).is_some_and(|c| c.finished) {
            return;
        }
        let mut run: Option<(Run, String)> = None;
        for part in candidate.content.into_iter().flat_map(|c| c.parts) {
            if let Some(call) = part.function_call {
                self.flush(index, run.take(), out);
                let state = self.choices.entry(index).or_default();
                let position = state.tool_calls;
                state.tool_calls += 1;
                let mut fragment = tool_call(&call, &mut self.next_call);
                fragment["index"] = position.into();
                self.delta(index, json!({"tool_calls": [fragment]}), None, out);
            } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                let kind = if part.thought { Run::Reasoning } else { Run::Content };
                match &mut run {
                    Some((open, buffer)) if *open == kind => buffer.push_str(&text),
                    _ => {
                        self.flush(index, run.take(), out);
                        run = Some((kind, text));
                    }
                }
            }
        }
        self.flush(index, run, out);
        if let Some(reason) = candidate.finish_reason.filter(|r| !r.is_empty()) {
            let state = self.choices.entry(index).or_default();
            state.finished = true;
            let finish = finish_reason(&reason, state.tool_calls > 0);
            self.delta(index, json!({}), Some(finish), out);
        }
    }

    fn flush(&mut self, index: u32, run: Option<(Run, String)>, out: &mut Vec<Value>) {
        match run {
            Some((Run::Content, text)) => self.delta(index, json!({"content": text}), None, out),
            Some((Run::Reasoning, text)) => self.delta(index, json!({"reasoning_content": text}), None, out),
            None => {}
        }
    }
}

impl ChunkDecoder for StreamDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<Value>) -> Result<(), TranscodeError> {
        if event.data.trim_ascii() == b"[DONE]" {
            return Ok(());
        }
        let response =
            parse_response(&event.data).map_err(|e| TranscodeError::upstream(format!("a stream event is {e}")))?;
        if let Some(error) = &response.error {
            return Err(TranscodeError::upstream(error_message(error)));
        }
        if let Some(meta) = response.usage_metadata.filter(|m| usage_of(m).is_some()) {
            self.usage = Some(meta);
        }
        if self.usage_sent {
            return Ok(());
        }
        let blocked = response.prompt_feedback.as_ref().is_some_and(|f| f.block_reason.is_some());
        if response.candidates.is_empty() && blocked && self.choices.is_empty() {
            self.delta(0, json!({}), Some("content_filter"), out);
            // A blocked prompt has no other candidates to wait for.
            self.expected_candidates = 1;
            self.choices.entry(0).or_default().finished = true;
        }
        for (position, candidate) in response.candidates.into_iter().enumerate() {
            self.on_candidate(position, candidate, out);
        }
        if self.is_complete() {
            if let Some(usage) = self.usage.as_ref().and_then(hub_usage_json) {
                let mut chunk = self.chunk(json!([]));
                chunk["usage"] = usage;
                out.push(chunk);
                self.usage_sent = true;
            }
        }
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.choices.len() >= self.expected_candidates && self.choices.values().all(|c| c.finished)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().and_then(usage_of)
    }
}
