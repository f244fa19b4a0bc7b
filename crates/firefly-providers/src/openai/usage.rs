//! Token usage as OpenAI-compatible upstreams report it, and the filter that reads it from a
//! stream while keeping it from clients that did not ask for it.

use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem::Finder;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::json::{span_in, Member};
use crate::sse::{encode_event, SseEvent};

/// Tokens an upstream reports for one completion; what the relay bills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens served from the upstream's cache (part of `prompt_tokens`):
    /// `prompt_tokens_details.cached_tokens`, or DeepSeek's `prompt_cache_hit_tokens`.
    pub cached_tokens: u64,
}

impl Usage {
    /// The `usage` of a non-stream `chat.completion` (or embeddings) response; `None` when it
    /// is absent, `null`, or not numbers.
    pub fn from_response(body: &[u8]) -> Option<Usage> {
        let usage = crate::json::top_level_member(body, b"usage")?;
        serde_json::from_slice::<Option<WireUsage>>(usage).ok()?.and_then(WireUsage::into_usage)
    }

    /// The `usage` of one stream chunk's JSON (an SSE event's data); `None` when absent or
    /// `null`, as on every chunk but the last.
    pub fn from_chunk(data: &[u8]) -> Option<Usage> {
        if usage_is_absent_or_null(data) {
            return None;
        }
        let probe: UsageProbe = serde_json::from_slice(data).ok()?;
        probe.usage.and_then(WireUsage::into_usage)
    }
}

/// A response or chunk, read only for `usage`; serde skips everything else without
/// building it.
#[derive(Deserialize)]
struct UsageProbe {
    usage: Option<WireUsage>,
}

/// A chunk, read for `usage` and whether it has choices.
#[derive(Deserialize)]
struct ChunkProbe {
    /// Elements are skipped; a `Vec` of a zero-sized type never allocates.
    choices: Option<Vec<IgnoredAny>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    /// DeepSeek reports cache hits here.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn into_usage(self) -> Option<Usage> {
        if self.prompt_tokens.is_none() && self.completion_tokens.is_none() && self.total_tokens.is_none() {
            return None;
        }
        let prompt_tokens = self.prompt_tokens.unwrap_or(0);
        let completion_tokens = self.completion_tokens.unwrap_or(0);
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).or(self.prompt_cache_hit_tokens);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: self.total_tokens.unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            cached_tokens: cached.unwrap_or(0),
        })
    }
}

/// What to do with one event of an upstream stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the event's [`raw`](SseEvent::raw) bytes as they are.
    Forward,
    /// Send nothing: the usage chunk of a client that did not ask for usage.
    Drop,
    /// Send these bytes instead: a content chunk whose usage had to be blanked.
    Replace(Bytes),
}

/// Reads usage from an OpenAI-compatible stream, event by event, and decides what reaches
/// the client.
///
/// The relay always asks the upstream for usage (`stream_options.include_usage`); a client
/// that did not ask must see the stream it would have seen without it. OpenAI then sends
/// `"usage": null` on every chunk (forwarded untouched: a client reading the field sees
/// nothing) and one last chunk with `"choices": []` and the totals, which is dropped. A
/// provider that puts the totals on a chunk that also carries choices has that chunk
/// re-framed with `"usage": null`. `[DONE]`, errors and anything unparsable are forwarded.
/// When usage appears more than once (providers that report running totals), the last one
/// counts.
#[derive(Clone, Debug)]
pub struct StreamUsageFilter {
    client_wants_usage: bool,
    usage: Option<Usage>,
    done: bool,
}

impl StreamUsageFilter {
    pub fn new(client_wants_usage: bool) -> StreamUsageFilter {
        StreamUsageFilter { client_wants_usage, usage: None, done: false }
    }

    /// Reads one event and says what to send for it.
    pub fn on_event(&mut self, event: &SseEvent) -> Verdict {
        let data = &event.data[..];
        if data == b"[DONE]" {
            self.done = true;
            return Verdict::Forward;
        }
        if usage_is_absent_or_null(data) {
            return Verdict::Forward;
        }
        let Ok(probe) = serde_json::from_slice::<ChunkProbe>(data) else {
            return Verdict::Forward;
        };
        let Some(usage) = probe.usage.and_then(WireUsage::into_usage) else {
            return Verdict::Forward;
        };
        self.usage = Some(usage);
        if self.client_wants_usage {
            return Verdict::Forward;
        }
        match probe.choices {
            Some(choices) if !choices.is_empty() => match blank_usage(data) {
                Some(frame) => Verdict::Replace(frame),
                None => Verdict::Forward,
            },
            _ => Verdict::Drop,
        }
    }

    /// The last usage the stream reported; `None` when it reported none (the relay then
    /// counts tokens itself).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether `data: [DONE]` was seen: the stream ended normally.
    pub fn saw_done(&self) -> bool {
        self.done
    }
}

static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));

/// Whether a chunk certainly reports no usage: the text `"usage"` never occurs, or every
/// occurrence is followed by `: null`. Every chunk but the last looks like that, and is then
/// not parsed at all.
///
/// Sound because `"usage"` with both quotes unescaped cannot occur inside a JSON string: the
/// second quote would end it. The text is either a key (whose value is then checked) or a
/// string value (not followed by `:`, so the chunk is parsed). Only a key spelled with
/// `\u` escapes would be missed, which no upstream sends; the relay then counts tokens
/// itself.
fn usage_is_absent_or_null(data: &[u8]) -> bool {
    USAGE_KEY.find_iter(data).all(|at| {
        let rest = &data[at + b"\"usage\"".len()..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":").is_some_and(|value| value.trim_ascii_start().starts_with(b"null"))
    })
}

/// The chunk re-framed with its top-level `usage` value replaced by `null`, every other byte
/// kept.
fn blank_usage(data: &[u8]) -> Option<Bytes> {
    let usage = Member::find(data, "usage").ok()?.value?;
    let span = span_in(data, usage.get());
    let mut chunk = Vec::with_capacity(data.len());
    chunk.extend_from_slice(&data[..span.start]);
    chunk.extend_from_slice(b"null");
    chunk.extend_from_slice(&data[span.end..]);
    Some(encode_event(&chunk))
}
