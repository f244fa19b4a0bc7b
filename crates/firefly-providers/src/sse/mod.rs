//! An incremental Server-Sent Events parser, and the framing of outgoing events.
//!
//! The parser follows the WHATWG `text/event-stream` rules: lines end in `\n`, `\r\n` or
//! `\r`; a line starting with `:` is a comment; `field:value` drops one space after the
//! colon, a line without a colon is a field with an empty value; a blank line dispatches the
//! event if it had at least one `data` line, whose values are joined with `\n`. A leading
//! UTF-8 byte order mark is skipped. `id` and `retry` are read past: no upstream this crate
//! talks to uses them, and a relay does not reconnect.
//!
//! # Hot path
//!
//! Every event keeps its exact bytes ([`SseEvent::raw`]) so a relay whose client speaks the
//! upstream's format forwards them without re-serializing anything. `raw` and, for the usual
//! single `data` line, [`SseEvent::data`] are slices of the received buffer: reference
//! counts, not copies. With [`SseParser::push_bytes`], a network chunk that holds whole
//! events (the usual case: upstreams write one event per chunk) is never copied at all; only
//! a partial event left at the end of a chunk is copied, to be joined with the next chunk.
//! Line ends are found with `memchr2`; each byte is looked at once to find the event's end
//! and once more to split its fields, so an event that arrives in many small pieces costs
//! no more than one that arrives whole.
//!
//! # Limits
//!
//! An event larger than the parser's limit ([`DEFAULT_MAX_EVENT_SIZE`], 1 MiB) is an error,
//! found as soon as that many bytes of it are buffered, so a stream that never ends an event
//! cannot grow the buffer without bound. Errors are sticky: once the parser failed it keeps
//! answering the same error and drops what is pushed.

use bytes::{Buf, Bytes, BytesMut};
use memchr::{memchr, memchr2};

#[cfg(test)]
mod tests;

/// The default [`SseParser`] limit on one event's size, in bytes (1 MiB).
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, when the event had a non-empty one (the spec's default is
    /// `message`).
    pub event: Option<Bytes>,
    /// The `data` lines' values joined with `\n`.
    pub data: Bytes,
    /// The event's bytes as received, from the blank line before it (comments and field
    /// lines included) through the blank line that ended it. Blocks that dispatch nothing
    /// (a `: keep-alive` comment, an `event:` without `data`) belong to no event's `raw`: a
    /// relay sends its own keep-alives. When a `\r\n` blank line
    /// was split between two pushes right after its `\r`, `raw` ends at the `\r` (the event
    /// is dispatched without waiting for the next chunk) and the `\n` is dropped; both are
    /// valid SSE.
    pub raw: Bytes,
}

impl SseEvent {
    /// `data: [DONE]`, the end of an OpenAI-style stream.
    pub fn is_done(&self) -> bool {
        self.data.as_ref() == b"[DONE]"
    }

    /// The `event` field as text, when it is UTF-8.
    pub fn event_name(&self) -> Option<&str> {
        self.event.as_deref().and_then(|e| std::str::from_utf8(e).ok())
    }
}

/// Why a stream could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event grew past the parser's limit.
    #[error("an SSE event exceeds the limit of {limit} bytes")]
    EventTooLarge { limit: usize },
    /// The stream ended inside an event: `bytes` bytes of fields were never terminated by a
    /// blank line, so that event was never dispatched.
    #[error("the SSE stream ended inside an event ({bytes} bytes never terminated)")]
    Truncated { bytes: usize },
}

/// Where line scanning stands in the event being received.
#[derive(Clone, Copy, Debug)]
struct ScanState {
    /// Bytes of the current event already scanned without finding its end.
    scanned: usize,
    /// The scan position is at the start of a line.
    at_line_start: bool,
    /// The last byte scanned was a `\r` at the end of the buffer: a `\n` that comes next is
    /// the rest of that line end, not a line of its own.
    after_cr: bool,
}

impl ScanState {
    const START: ScanState = ScanState { scanned: 0, at_line_start: true, after_cr: false };
}

/// An incremental SSE parser: [`push`](Self::push) (or [`push_bytes`](Self::push_bytes)) what
/// arrives, then call [`next_event`](Self::next_event) until it answers `Ok(None)`; at the end
/// of the stream, [`finish`](Self::finish) tells whether an event was cut off.
///
/// Parsing never panics; pushing the same bytes in any split yields the same events.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the events not yet dispatched, when they had to be copied.
    buf: BytesMut,
    /// A pushed chunk not yet consumed, held without copying. Non-empty only while `buf` is
    /// empty, so the two never hold parts of the same event.
    input: Bytes,
    scan: ScanState,
    /// The stream's first bytes have not yet been checked for a byte order mark.
    bom_pending: bool,
    max_event_size: usize,
    failed: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser with the default event size limit, [`DEFAULT_MAX_EVENT_SIZE`].
    pub fn new() -> SseParser {
        SseParser::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A parser that fails on an event larger than `max_event_size` bytes (at least 1).
    pub fn with_max_event_size(max_event_size: usize) -> SseParser {
        SseParser {
            buf: BytesMut::new(),
            input: Bytes::new(),
            scan: ScanState::START,
            bom_pending: true,
            max_event_size: max_event_size.max(1),
            failed: None,
        }
    }

    /// Appends received bytes (copied into the parser's buffer).
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_some() || chunk.is_empty() {
            return;
        }
        if !self.input.is_empty() {
            self.buf.extend_from_slice(&self.input);
            self.input = Bytes::new();
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Appends a received chunk without copying it when nothing is pending, as after the
    /// previous chunk ended on an event boundary; events are then slices of `chunk`.
    pub fn push_bytes(&mut self, chunk: Bytes) {
        if self.failed.is_some() || chunk.is_empty() {
            return;
        }
        if self.buf.is_empty() && self.input.is_empty() {
            self.input = chunk;
        } else {
            self.push(&chunk);
        }
    }

    /// Bytes received but not yet dispatched as events.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.input.len()
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        loop {
            if let Some(error) = &self.failed {
                return Err(error.clone());
            }
            if !self.skip_prefix() {
                return Ok(None);
            }
            let src: &[u8] = if self.input.is_empty() { &self.buf } else { &self.input };
            let len = src.len();
            let Some((end, terminator)) = scan(src, &mut self.scan) else {
                if len > self.max_event_size {
                    return Err(self.fail(SseError::EventTooLarge { limit: self.max_event_size }));
                }
                if !self.input.is_empty() {
                    // The chunk ends inside an event: keep its start for the next chunk.
                    self.buf.extend_from_slice(&self.input);
                    self.input = Bytes::new();
                }
                return Ok(None);
            };
            // The size up to the blank line's first byte, so that a `\r\n` split after the
            // `\r` counts the same as one received whole.
            if terminator + 1 > self.max_event_size {
                return Err(self.fail(SseError::EventTooLarge { limit: self.max_event_size }));
            }
            let raw = if self.input.is_empty() { self.buf.split_to(end).freeze() } else { self.input.split_to(end) };
            if let Some(event) = parse_event(raw) {
                return Ok(Some(event));
            }
        }
    }

    /// Ends the stream: `Err(Truncated)` when the bytes left after the last event carry a
    /// field (the last event was cut off), `Err(EventTooLarge)` when the parser had failed.
    /// Comments left over are not an error. Call it after `next_event` answered `Ok(None)`;
    /// the parser is then empty and ready for a new stream.
    pub fn finish(&mut self) -> Result<(), SseError> {
        let failed = self.failed.take();
        let src: &[u8] = if self.input.is_empty() { &self.buf } else { &self.input };
        let leftover = if self.bom_pending && BOM.starts_with(src) { 0 } else { src.len() };
        let truncated = leftover > 0 && !only_comments(src);
        self.buf.clear();
        self.input = Bytes::new();
        self.scan = ScanState::START;
        self.bom_pending = true;
        match failed {
            Some(error) => Err(error),
            None if truncated => Err(SseError::Truncated { bytes: leftover }),
            None => Ok(()),
        }
    }

    /// Drops what must not start an event: the stream's byte order mark, and the `\n` of a
    /// `\r\n` whose `\r` ended the previous event at the end of a chunk. `false` when more
    /// bytes are needed to decide.
    fn skip_prefix(&mut self) -> bool {
        if self.bom_pending {
            let src: &[u8] = if self.input.is_empty() { &self.buf } else { &self.input };
            let n = src.len().min(BOM.len());
            if src[..n] != BOM[..n] {
                self.bom_pending = false;
            } else if n == BOM.len() {
                self.advance(BOM.len());
                self.bom_pending = false;
            } else {
                return false;
            }
        }
        if self.scan.after_cr && self.scan.scanned == 0 {
            let src: &[u8] = if self.input.is_empty() { &self.buf } else { &self.input };
            match src.first() {
                None => return false,
                Some(b'\n') => self.advance(1),
                Some(_) => {}
            }
            self.scan.after_cr = false;
        }
        true
    }

    fn advance(&mut self, n: usize) {
        if self.input.is_empty() {
            self.buf.advance(n);
        } else {
            self.input.advance(n);
        }
    }

    /// Makes `error` sticky and frees the buffers.
    fn fail(&mut self, error: SseError) -> SseError {
        self.buf = BytesMut::new();
        self.input = Bytes::new();
        self.failed = Some(error.clone());
        error
    }
}

/// Scans `src` (the bytes of the event being received, from its start) for the blank line
/// that ends it, resuming where the last scan stopped. Returns the event's length including
/// that blank line, and the offset of the blank line's terminator.
fn scan(src: &[u8], state: &mut ScanState) -> Option<(usize, usize)> {
    let mut i = state.scanned;
    if state.after_cr && i < src.len() {
        state.after_cr = false;
        if src[i] == b'\n' {
            i += 1;
        }
    }
    while i < src.len() {
        let Some(offset) = memchr2(b'\n', b'\r', &src[i..]) else {
            state.at_line_start = false;
            i = src.len();
            break;
        };
        let at = i + offset;
        let blank = offset == 0 && state.at_line_start;
        let mut end = at + 1;
        if src[at] == b'\r' {
            match src.get(end) {
                Some(b'\n') => end += 1,
                Some(_) => {}
                None => state.after_cr = true,
            }
        }
        state.at_line_start = true;
        if blank {
            state.scanned = 0;
            return Some((end, at));
        }
        i = end;
    }
    state.scanned = i;
    None
}

/// Splits `bytes` into lines (without their ends); the last may be unterminated.
fn lines(bytes: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        match memchr2(b'\n', b'\r', &bytes[pos..]) {
            Some(offset) => {
                let end = pos + offset;
                pos = end + 1;
                if bytes[end] == b'\r' && bytes.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
                Some(start..end)
            }
            None => {
                pos = bytes.len();
                Some(start..bytes.len())
            }
        }
    })
}

/// The fields of one complete event (its bytes up to and including the blank line); `None`
/// when it has no `data` line, which the spec says not to dispatch.
fn parse_event(raw: Bytes) -> Option<SseEvent> {
    let mut event = None;
    let mut first_data: Option<std::ops::Range<usize>> = None;
    let mut joined: Option<BytesMut> = None;
    for line in lines(&raw) {
        let text = &raw[line.clone()];
        if text.is_empty() || text[0] == b':' {
            continue;
        }
        let (name, value) = match memchr(b':', text) {
            Some(colon) => {
                let mut start = line.start + colon + 1;
                if raw.get(start) == Some(&b' ') && start < line.end {
                    start += 1;
                }
                (&text[..colon], start..line.end)
            }
            None => (text, line.end..line.end),
        };
        match name {
            b"data" => match (&first_data, &mut joined) {
                (None, _) => first_data = Some(value),
                (Some(first), None) => {
                    let mut all = BytesMut::with_capacity(first.len() + 1 + value.len());
                    all.extend_from_slice(&raw[first.clone()]);
                    all.extend_from_slice(b"\n");
                    all.extend_from_slice(&raw[value]);
                    joined = Some(all);
                }
                (Some(_), Some(all)) => {
                    all.extend_from_slice(b"\n");
                    all.extend_from_slice(&raw[value]);
                }
            },
            b"event" => event = Some(value),
            _ => {}
        }
    }
    let data = match (first_data, joined) {
        (None, _) => return None,
        (Some(_), Some(all)) => all.freeze(),
        (Some(first), None) => raw.slice(first),
    };
    let event = event.filter(|range| !range.is_empty()).map(|range| raw.slice(range));
    Some(SseEvent { event, data, raw })
}

/// Whether every line of `bytes` (a finished stream's leftover) is blank or a comment.
fn only_comments(bytes: &[u8]) -> bool {
    lines(bytes).all(|line| line.is_empty() || bytes[line.start] == b':')
}

/// Frames `data` as one event: `data: <data>\n\n`. Line ends inside `data` (`\n`, `\r\n`,
/// `\r`) start new `data:` lines, so the receiver's joined data equals `data` with its line
/// ends made `\n`.
pub fn encode_event(data: &[u8]) -> Bytes {
    const PREFIX: &[u8] = b"data: ";
    let mut frame = BytesMut::with_capacity(data.len() + PREFIX.len() + 2);
    if memchr2(b'\n', b'\r', data).is_none() {
        frame.extend_from_slice(PREFIX);
        frame.extend_from_slice(data);
    } else {
        let mut lines = lines(data).peekable();
        let ends_with_line_end = matches!(data.last(), Some(b'\n' | b'\r'));
        while let Some(line) = lines.next() {
            frame.extend_from_slice(PREFIX);
            frame.extend_from_slice(&data[line]);
            if lines.peek().is_some() || ends_with_line_end {
                frame.extend_from_slice(b"\n");
            }
        }
        if ends_with_line_end {
            // The empty line after the last line end.
            frame.extend_from_slice(PREFIX);
        }
    }
    frame.extend_from_slice(b"\n\n");
    frame.freeze()
}
