//! Forwarding one admitted request: try channels in plan order until one answers,
//! retrying connection errors, timeouts, 429 and 5xx on the next channel while nothing
//! has reached the client; then pass the answer through (streams event by event, never
//! buffered whole), learn the usage, and settle.
//!
//! The work runs in a task of its own, not in the handler: when a client goes away, the
//! handler's future is dropped, but the upstream is still read (for at most
//! `relay.drain_timeout_secs`) so that what was produced is billed.

use super::admit::Admission;
use super::formats::{error_answer, whole_answer, ClientFormat, RequestBody, StreamRelay};
use super::media::MediaCall;
use super::table::Upstream;
use super::upstream::next_chunk;
use super::writer::Slot;
use super::Relay;
use crate::state::{AppState, Tasks};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use firefly_core::money::{cost, media_cost, MediaUnits, TokenUsage};
use firefly_core::time::now_ms;
use firefly_core::{Error, ErrorCode};
use firefly_providers::adapter::{Operation, WireFormat};
use firefly_providers::openai::Usage;
use firefly_providers::sse::SseParser;
use firefly_providers::transcode::TranscodeError;
use firefly_providers::UpstreamFailure;
use firefly_store::{ChannelStatus, UsageRecord};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A failed attempt: what it means, why (for the log), and the upstream's answer if any.
struct Failure {
    verdict: UpstreamFailure,
    reason: String,
    answer: Option<(StatusCode, Bytes)>,
}

/// What is being relayed.
pub struct Call {
    pub op: Operation,
    pub client: ClientFormat,
    pub model: String,
    pub stream: bool,
    pub client_wants_usage: bool,
    /// Choices asked for (`n`).
    pub choices: u32,
    /// The client's body, and how each upstream format gets it.
    pub body: RequestBody,
    pub request_id: String,
    /// Body length: the fallback estimate of input tokens when the upstream reports none.
    pub input_bytes: usize,
    /// An image or speech call, billed by its units rather than tokens.
    pub media: Option<MediaCall>,
    /// The client's content type, sent on when it matters (a multipart upload's boundary).
    pub content_type: Option<HeaderValue>,
}

impl Call {
    /// A call of `op` with the defaults of a plain request: not streamed, one choice, no
    /// media units, no body-length estimate; a handler sets what differs.
    pub fn new(op: Operation, client: ClientFormat, model: String, request_id: String, body: RequestBody) -> Call {
        Call {
            op,
            client,
            model,
            stream: false,
            client_wants_usage: false,
            choices: 1,
            body,
            request_id,
            input_bytes: 0,
            media: None,
            content_type: None,
        }
    }
}

/// Largest non-stream upstream answer read (a completion with many choices, embeddings
/// of a big batch).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest upstream error body read for classification.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Relays `call` and returns the response head as soon as there is one.
///
/// A stream runs in a task of its own, which keeps pumping events while this returns the
/// head. A whole answer is awaited right here (no task, no hand-over between threads),
/// inside a [`Detach`]: when the client goes away and this future is dropped, the rest of
/// the work moves to a task of its own, so the upstream is still read and billed.
pub async fn relay(state: AppState, admission: Admission, call: Call) -> Response {
    let (tx, mut rx) = oneshot::channel();
    let slot = state.relay.usage.begin().await;
    let stream = call.stream;
    let work = run(state.clone(), admission, call, tx, slot);
    if stream {
        state.tasks.spawn(move |_| work);
        return rx.await.unwrap_or_else(|_| no_answer());
    }
    Detach { work: Some(Box::pin(work)), tasks: &state.tasks }.await;
    rx.try_recv().unwrap_or_else(|_| no_answer())
}

fn no_answer() -> Response {
    crate::http::error::internal("relay task ended without an answer").into_response()
}

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future run in place that, dropped before it finished, finishes in a task instead.
struct Detach<'a> {
    work: Option<Work>,
    tasks: &'a Tasks,
}

impl Future for Detach<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(work) = self.work.as_mut() else { return Poll::Ready(()) };
        ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(())
    }
}

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            self.tasks.spawn(move |_| work);
        }
    }
}

/// How one attempt went.
enum Attempt {
    /// A 2xx answer: what to do with its body.
    Answer(http::Response<Incoming>),
    Failed(Failure),
    /// The request cannot be expressed in this channel's format (Anthropic has no `n`, a
    /// provider serves no embeddings): the next channel may serve it; nothing was sent.
    Unfit(TranscodeError),
}

impl Attempt {
    /// A connection error or timeout: no answer, retryable.
    fn failed(reason: String) -> Attempt {
        Attempt::Failed(Failure { verdict: UpstreamFailure::CONNECTION, reason, answer: None })
    }
}

struct Outcome {
    status: StatusCode,
    usage: Option<Usage>,
    /// What a media call delivered, billed instead of tokens.
    units: Option<MediaUnits>,
    /// Fallback counts when the upstream gave no usage.
    events: u64,
    channel_id: Option<i64>,
    first_byte: Option<Duration>,
    error: Option<(String, String)>,
}

async fn run(state: AppState, admission: Admission, call: Call, reply: oneshot::Sender<Response>, slot: Slot) {
    let started = Instant::now();
    let relay = &state.relay;
    let mut reply = Some(reply);
    let mut last: Option<Failure> = None;
    let mut unfit: Option<TranscodeError> = None;
    let mut outcome = None;
    let mut last_channel = None;
    let attempts = relay.settings.max_attempts as usize;
    let plan = &admission.plan;
    let mut tried = 0usize;
    let mut i = 0usize;
    while tried < attempts && !plan.is_empty() && i < plan.len() * attempts {
        let upstream = &plan[i % plan.len()];
        i += 1;
        if !upstream.breaker.allow(Instant::now()) || !upstream.take_rpm() {
            continue;
        }
        let wire = upstream.adapter.wire_format();
        if tried > 0 {
            let hint = last.as_ref().and_then(|f| match f.verdict {
                UpstreamFailure::Retryable { retry_after } => retry_after,
                _ => None,
            });
            tokio::time::sleep(backoff(tried, hint)).await;
        }
        tried += 1;
        last_channel = Some(upstream.id);
        match attempt(relay, upstream, &call).await {
            Attempt::Answer(response) => {
                upstream.breaker.success();
                let sent = if call.stream {
                    stream(relay, response, &call, wire, &mut reply, started).await
                } else {
                    whole(relay, upstream, response, &call, wire, &mut reply, started).await
                };
                match sent {
                    Ok(mut o) => {
                        o.channel_id = Some(upstream.id);
                        outcome = Some(o);
                        break;
                    }
                    // The body broke before anything reached the client: retry.
                    Err(reason) => {
                        upstream.breaker.failure(Instant::now());
                        last = Some(Failure { verdict: UpstreamFailure::CONNECTION, reason, answer: None });
                    }
                }
            }
            Attempt::Unfit(e) => {
                // Not this channel's fault, and no attempt: the plan goes on.
                tried -= 1;
                unfit = Some(e);
            }
            Attempt::Failed(failure) => {
                tracing::warn!(channel_id = upstream.id, reason = %failure.reason, verdict = ?failure.verdict, "upstream attempt failed");
                match failure.verdict {
                    UpstreamFailure::Fatal => {
                        // The request's own fault: the channel is fine, nothing is retried.
                        upstream.breaker.success();
                        last = Some(failure);
                        break;
                    }
                    UpstreamFailure::AuthFailed | UpstreamFailure::OutOfBalance => {
                        auto_disable(&state, upstream, &failure.reason).await;
                    }
                    UpstreamFailure::Retryable { .. } => upstream.breaker.failure(Instant::now()),
                }
                last = Some(failure);
            }
        }
    }

    let outcome = match outcome {
        Some(o) => o,
        None => {
            let (status, response, error) = match (last, unfit) {
                (None, Some(e)) => unfit_response(e),
                (last, _) => failure_response(tried, last),
            };
            if let Some(tx) = reply.take() {
                let _ = tx.send(response);
            }
            Outcome {
                status,
                usage: None,
                units: None,
                events: 0,
                channel_id: last_channel,
                first_byte: None,
                error: Some(error),
            }
        }
    };
    settle(admission, &call, outcome, started, slot);
}

fn backoff(tried: usize, hint: Option<Duration>) -> Duration {
    let base = Duration::from_millis(50 * (1u64 << tried.min(5)));
    let jittered = base.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    hint.unwrap_or(jittered).min(Duration::from_secs(1))
}

async fn attempt(relay: &Relay, upstream: &Upstream, call: &Call) -> Attempt {
    let model = upstream.upstream_model(&call.model);
    let wire = upstream.adapter.wire_format();
    let body = match call.body.for_upstream(wire, model) {
        Ok(body) => body,
        Err(e) => return Attempt::Unfit(e),
    };
    let head = match upstream.head(call.op, Some(model), call.stream) {
        Ok(head) => head,
        Err(e) => {
            return Attempt::Failed(Failure {
                verdict: UpstreamFailure::AuthFailed,
                reason: format!("channel misconfigured: {e}"),
                answer: None,
            })
        }
    };
    let extra = match (call.op, &call.content_type) {
        (Operation::AudioTranscriptions, Some(content_type)) => {
            Some(HeaderMap::from_iter([(http::header::CONTENT_TYPE, content_type.clone())]))
        }
        _ => None,
    };
    let sent = tokio::time::timeout(relay.settings.first_byte_timeout, relay.upstream.send(&head, extra, body)).await;
    let response = match sent {
        Err(_) => return Attempt::failed("no answer within the first-byte timeout".into()),
        Ok(Err(e)) => return Attempt::failed(format!("connection failed: {}", e.message)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Answer(response);
    }
    let (parts, mut incoming) = response.into_parts();
    let body = read_limited(&mut incoming, MAX_ERROR_BYTES, relay.settings.chunk_timeout).await.unwrap_or_default();
    let failure = upstream.adapter.classify(status.as_u16(), &parts.headers, &body);
    let body = error_answer(call.client, wire, status.as_u16(), body);
    Attempt::Failed(Failure {
        verdict: failure,
        reason: format!("HTTP {}", status.as_u16()),
        answer: Some((status, body)),
    })
}

/// Reads a body up to `limit` bytes with `idle` as the longest wait for a chunk.
async fn read_limited(body: &mut Incoming, limit: usize, idle: Duration) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, next_chunk(body)).await {
            Err(_) => return Err("the upstream stalled mid-body".into()),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => return Err(format!("reading the body failed: {e}")),
            // A whole body in one chunk (the usual case) is kept as it came, not copied.
            Ok(Some(Ok(chunk))) if buf.is_empty() && chunk.len() <= limit => buf = BytesMut::from(chunk),
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(format!("the upstream's answer is larger than {limit} bytes"));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

/// A non-stream answer: read whole (it is one JSON document), then sent.
async fn whole(
    relay: &Relay,
    upstream: &Upstream,
    response: http::Response<Incoming>,
    call: &Call,
    wire: WireFormat,
    reply: &mut Option<oneshot::Sender<Response>>,
    started: Instant,
) -> Result<Outcome, String> {
    let status = response.status();
    let content_type = match call.client.passes_through(wire) {
        true => response.headers().get(http::header::CONTENT_TYPE).cloned(),
        false => None,
    };
    let upstream_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let mut incoming = response.into_body();
    let body = read_limited(&mut incoming, MAX_RESPONSE_BYTES, relay.settings.chunk_timeout).await?;
    let first_byte = started.elapsed();
    let (body, usage, units, content_type) = match &call.media {
        Some(media) => {
            let a = super::media::answer(relay, upstream, media, wire, upstream_type, body).await?;
            (a.body, None, Some(a.units), Some(a.content_type))
        }
        None => {
            let (body, usage) = whole_answer(call.client, wire, body, &call.model).map_err(|e| e.to_string())?;
            (body, usage, None, content_type)
        }
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    out.headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type.unwrap_or(HeaderValue::from_static("application/json")));
    let status = match reply.take().map(|tx| tx.send(out).is_ok()) {
        Some(true) => status,
        _ => StatusCode::from_u16(499).expect("499 is a valid status"),
    };
    Ok(Outcome { status, usage, units, events: 0, channel_id: None, first_byte: Some(first_byte), error: None })
}

/// A stream: the response head goes out now; events follow as they come.
async fn stream(
    relay: &Relay,
    response: http::Response<Incoming>,
    call: &Call,
    wire: WireFormat,
    reply: &mut Option<oneshot::Sender<Response>>,
    started: Instant,
) -> Result<Outcome, String> {
    let mut upstream = response.into_body();
    // The first chunk is awaited before anything is sent, so an upstream that fails
    // right away can still be retried on another channel.
    let first = match tokio::time::timeout(relay.settings.chunk_timeout, next_chunk(&mut upstream)).await {
        Err(_) => return Err("the upstream stalled before the first event".into()),
        Ok(None) => return Err("the upstream closed the stream before the first event".into()),
        Ok(Some(Err(e))) => return Err(format!("reading the stream failed: {e}")),
        Ok(Some(Ok(chunk))) => chunk,
    };
    let first_byte = started.elapsed();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut head = Response::new(body);
    let headers = head.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let mut client = reply.take().is_some_and(|r| r.send(head).is_ok());

    let mut parser = SseParser::new();
    let mut relay_events =
        StreamRelay::new(call.client, wire, call.client_wants_usage, call.choices, &call.request_id, &call.model);
    let mut events = 0u64;
    let mut sent = Vec::new();
    let mut error = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut pending = Some(Ok(first));
    loop {
        let chunk = match pending.take() {
            Some(c) => Some(c),
            None => {
                let wait = match deadline {
                    Some(d) => {
                        d.saturating_duration_since(tokio::time::Instant::now()).min(relay.settings.chunk_timeout)
                    }
                    None => relay.settings.chunk_timeout,
                };
                match tokio::time::timeout(wait, next_chunk(&mut upstream)).await {
                    Ok(c) => c,
                    Err(_) => {
                        error = Some(("upstream_timeout".to_owned(), "the upstream stalled mid-stream".to_owned()));
                        break;
                    }
                }
            }
        };
        let chunk = match chunk {
            None => break,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                error = Some(("upstream_disconnected".to_owned(), format!("the stream broke: {e}")));
                break;
            }
        };
        parser.push_bytes(chunk);
        sent.clear();
        loop {
            match parser.next_event() {
                Ok(Some(event)) => match relay_events.on_event(&event, &mut sent) {
                    Ok(converted) => events += u64::from(converted.text),
                    Err(e) => {
                        error = Some(("upstream_bad_stream".to_owned(), e.to_string()));
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    error = Some(("upstream_bad_stream".to_owned(), e.to_string()));
                    break;
                }
            }
        }
        if client && !sent.is_empty() && tx.send(Ok(coalesce(&mut sent))).await.is_err() {
            // The client left: keep reading, for a bounded time, to bill what is produced.
            client = false;
            deadline = Some(tokio::time::Instant::now() + relay.settings.drain_timeout);
        }
        if error.is_some() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    if error.is_none() {
        sent.clear();
        if let Err(e) = parser.finish() {
            error = Some(("upstream_disconnected".to_owned(), e.to_string()));
        } else if let Err(e) = relay_events.finish(&mut sent) {
            error = Some(("upstream_disconnected".to_owned(), e.to_string()));
        }
        if client && !sent.is_empty() {
            let _ = tx.send(Ok(coalesce(&mut sent))).await;
        }
    }
    if let (Some((code, message)), true) = (&error, client) {
        // Tell the client in-band, in its format, then end the stream.
        sent.clear();
        relay_events.fail(code, message, &mut sent);
        let _ = tx.send(Ok(coalesce(&mut sent))).await;
    }
    let status = if !client && deadline.is_some() {
        StatusCode::from_u16(499).expect("valid")
    } else if error.is_some() {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::OK
    };
    let usage = relay_events.usage();
    Ok(Outcome { status, usage, units: None, events, channel_id: None, first_byte: Some(first_byte), error })
}

/// The client's events of one upstream chunk as one write: a single event is sent as it
/// is, several are joined.
fn coalesce(events: &mut Vec<Bytes>) -> Bytes {
    if events.len() == 1 {
        return events.pop().expect("one event");
    }
    let mut out = BytesMut::with_capacity(events.iter().map(Bytes::len).sum());
    for event in events.drain(..) {
        out.extend_from_slice(&event);
    }
    out.freeze()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The answer when no channel could take the request as it is.
fn unfit_response(e: TranscodeError) -> (StatusCode, Response, (String, String)) {
    let message = format!("No channel serving this model can take this request: {e}");
    let mut error = Error::with_message(ErrorCode::InvalidRequest, message.clone());
    if let TranscodeError::InvalidRequest { param: Some(param), .. } = &e {
        error.details = Some(serde_json::json!({ "param": param }));
    }
    let code = ErrorCode::InvalidRequest;
    (
        StatusCode::from_u16(code.status()).expect("valid"),
        crate::http::ApiError(error).into_response(),
        (code.as_str().into(), message),
    )
}

/// The answer when no channel answered: the upstream's own error for the request's fault,
/// else one of ours.
fn failure_response(tried: usize, last: Option<Failure>) -> (StatusCode, Response, (String, String)) {
    match last {
        Some(Failure { verdict: UpstreamFailure::Fatal, reason, answer: Some((status, body)) }) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            (status, response, ("upstream_rejected".into(), reason))
        }
        Some(Failure { reason, .. }) => {
            let message =
                format!("The upstream provider failed on every channel tried ({tried} attempts; last: {reason}).");
            let error = Error::with_message(ErrorCode::UpstreamFailed, message.clone());
            (
                StatusCode::BAD_GATEWAY,
                crate::http::ApiError(error).into_response(),
                (ErrorCode::UpstreamFailed.as_str().into(), message),
            )
        }
        None => {
            let code = ErrorCode::NoChannelAvailable;
            (
                StatusCode::SERVICE_UNAVAILABLE,
                crate::http::ApiError::from(code).into_response(),
                (code.as_str().into(), code.default_message().into()),
            )
        }
    }
}

async fn auto_disable(state: &AppState, upstream: &Arc<Upstream>, reason: &str) {
    let why = format!("auto-disabled: upstream answered {reason}");
    tracing::error!(channel_id = upstream.id, %reason, "channel auto-disabled");
    state.relay.routes.remove(upstream.id);
    if let Err(e) = state.store.set_channel_status(upstream.id, ChannelStatus::AutoDisabled, Some(&why), now_ms()).await
    {
        tracing::error!(channel_id = upstream.id, error = %e, "could not record the auto-disable");
    }
}

fn settle(admission: Admission, call: &Call, o: Outcome, started: Instant, slot: Slot) {
    let Admission { hold, mut lease, price, multiplier_bp, user_id, key_id, .. } = admission;
    let usage = match o.usage {
        // A stream that broke may have reported its usage only in part (Anthropic's
        // `message_start` says one output token): at least what was delivered is billed.
        Some(u) => TokenUsage {
            input: u.prompt_tokens as i64,
            output: match o.error {
                Some(_) => (u.completion_tokens as i64).max(o.events as i64),
                None => u.completion_tokens as i64,
            },
            cached_input: u.cached_tokens as i64,
        },
        // No usage from the upstream: a stream's content events (about one token each) and
        // a quarter of the body's bytes; nothing at all when nothing was answered.
        None if o.units.is_none() && (o.status.is_success() || o.events > 0) => {
            TokenUsage { input: (call.input_bytes / 4).max(1) as i64, output: o.events as i64, cached_input: 0 }
        }
        None => TokenUsage::default(),
    };
    let amount = match o.units {
        Some(units) => media_cost(&price, units, multiplier_bp).flatten(),
        None => cost(&price, &usage, multiplier_bp),
    }
    .unwrap_or(hold.amount());
    let (charged, hold_id) = hold.settle(amount);
    if charged < amount {
        tracing::warn!(request_id = %call.request_id, cost = amount, charged, "cost exceeded the reservation; charged the reservation");
    }
    lease.settle((usage.input + usage.output).max(0) as u64);
    drop(lease);
    let record = UsageRecord {
        request_id: call.request_id.clone(),
        user_id,
        api_key_id: Some(key_id),
        channel_id: o.channel_id,
        endpoint: match (call.op, call.client) {
            (Operation::Embeddings, _) => "embeddings".into(),
            (Operation::ImageGenerations, _) => "images.generations".into(),
            (Operation::AudioSpeech, _) => "audio.speech".into(),
            (Operation::AudioTranscriptions, _) => "audio.transcriptions".into(),
            (_, ClientFormat::Anthropic) => "messages".into(),
            _ => "chat.completions".into(),
        },
        model: call.model.clone(),
        stream: call.stream,
        input_tokens: usage.input,
        output_tokens: usage.output,
        cached_tokens: usage.cached_input,
        credits: charged,
        latency_ms: started.elapsed().as_millis() as i64,
        first_token_ms: o.first_byte.map(|d| d.as_millis() as i64),
        status: o.status.as_u16() as i64,
        error_code: o.error.as_ref().map(|(c, _)| c.clone()),
        error_message: o.error.map(|(_, m)| m.chars().take(500).collect()),
        created_at: now_ms(),
        hold_id,
    };
    slot.send(record, Some(key_id));
}
