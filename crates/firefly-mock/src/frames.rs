//! The streamed bodies of the providers other than OpenAI chat: a response decided up front as
//! a list of frames, sent one per body chunk with the chunk delay before each content frame,
//! and cut short on request, either by dropping the connection (`x-mock-disconnect-after`) or
//! by the provider's own mid-stream error event (`x-mock-stream-error-after`).
//!
//! Building every frame up front costs a little memory per stream; these endpoints are not the
//! benchmarks' hot path, and it keeps each provider's event sequence in one readable place.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use http::{header, HeaderValue};
use tokio::time::{Instant, Sleep};

/// What a frame is to the knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Before any content (Anthropic's `message_start`, `ping`): always sent.
    Lead,
    /// One content chunk: delayed by the chunk delay, counted by the cut knobs.
    Content,
    /// Anything else (block boundaries, the finish, usage).
    Other,
}

/// How a stream ends early, once `after` content frames went out (or all of them, if fewer).
pub(crate) enum Cut {
    /// Drop the connection without the chunked terminator.
    Disconnect { after: u64 },
    /// Send the provider's error event, then end the body cleanly.
    Error { after: u64, frame: Bytes },
}

pub(crate) struct Frames {
    frames: VecDeque<(Role, Bytes)>,
    content_total: u64,
    content_sent: u64,
    delay: ChunkDelay,
    cut: Option<Cut>,
    cut_armed: bool,
    finished: bool,
}

impl Frames {
    pub(crate) fn new(frames: Vec<(Role, Bytes)>, delay: Duration, cut: Option<Cut>) -> Frames {
        let content_total = frames.iter().filter(|(role, _)| *role == Role::Content).count() as u64;
        Frames {
            frames: frames.into(),
            content_total,
            content_sent: 0,
            delay: ChunkDelay::new(delay),
            cut,
            cut_armed: false,
            finished: false,
        }
    }

    /// The stream as a response with `content_type`.
    pub(crate) fn into_response(self, content_type: &'static str) -> Response {
        let mut response = Body::from_stream(self).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn cut_due(&self) -> bool {
        let after = match &self.cut {
            None => return false,
            Some(Cut::Disconnect { after } | Cut::Error { after, .. }) => *after,
        };
        let next_is_lead = self.frames.front().is_some_and(|(role, _)| *role == Role::Lead);
        !next_is_lead && self.content_sent >= after.min(self.content_total)
    }
}

impl Stream for Frames {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if this.cut_due() {
            if let Some(Cut::Disconnect { .. }) = this.cut {
                if !this.cut_armed {
                    // hyper flushes what it holds while the body is pending; an error right
                    // away would discard the last frame unsent.
                    this.cut_armed = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.finished = true;
                // hyper drops the connection without the chunked terminator: the client sees
                // a truncated body, as when an upstream dies.
                let error = io::Error::new(io::ErrorKind::ConnectionAborted, "x-mock-disconnect-after");
                return Poll::Ready(Some(Err(error)));
            }
            this.finished = true;
            return match this.cut.take() {
                Some(Cut::Error { frame, .. }) => Poll::Ready(Some(Ok(frame))),
                _ => Poll::Ready(None),
            };
        }
        let Some((role, _)) = this.frames.front() else {
            this.finished = true;
            return Poll::Ready(None);
        };
        if *role == Role::Content {
            if this.delay.poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.content_sent += 1;
        }
        let (_, frame) = this.frames.pop_front().expect("peeked above");
        Poll::Ready(Some(Ok(frame)))
    }
}

/// The chunk delay slept before each content frame: armed on the first poll, `Pending`
/// until it has passed, then ready to be armed again. A zero delay never waits.
pub(crate) struct ChunkDelay {
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    sleeping: bool,
}

impl ChunkDelay {
    pub(crate) fn new(delay: Duration) -> ChunkDelay {
        ChunkDelay { delay, sleep: None, sleeping: false }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.delay.is_zero() {
            return Poll::Ready(());
        }
        if !self.sleeping {
            let deadline = Instant::now() + self.delay;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.sleeping = true;
        }
        let sleep = self.sleep.as_mut().expect("armed above");
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleeping = false;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
