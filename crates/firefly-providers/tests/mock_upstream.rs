//! The provider layer against a real (local) OpenAI-compatible upstream: `firefly-mock`.
//! Requests are built by the adapters, bodies by `ChatRequest`, streams read by the SSE
//! parser and the usage filter, as the relay will do.

use bytes::Bytes;
use firefly_mock::{MockConfig, MockUpstream};
use firefly_providers::adapter::{Adapter, AzureAdapter, OpenAiAdapter, Operation, RequestContext, UpstreamFailure};
use firefly_providers::openai::{prepare_chat_request, ChatRequest, StreamUsageFilter, Usage, Verdict};
use firefly_providers::sse::{SseError, SseEvent, SseParser};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-channel-key";
const DEPLOYMENT: &str = "gpt-4o-prod";

/// The mock's words per chunk; 8 chunks by default.
const CHUNKS: u64 = 8;

/// The mock's prompt tokens: `max(1, floor(C / 4))`, C = characters of the messages' text.
fn prompt_tokens(texts: &[&str]) -> u64 {
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    (chars as u64 / 4).max(1)
}

const SYSTEM: &str = "You are terse.";
const USER: &str = "Say hello to the mock upstream, s'il vous plaît — 谢谢!";

fn chat_body(stream: bool, extra: Value) -> Vec<u8> {
    let mut body = json!({
        "model": "house-alias",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    });
    if stream {
        body["stream"] = json!(true);
    }
    for (key, value) in extra.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

struct Sent {
    status: u16,
    headers: http::HeaderMap,
    response: reqwest::Response,
}

async fn send(
    adapter: &dyn Adapter,
    op: Operation,
    ctx: &RequestContext<'_>,
    body: Option<Bytes>,
    knobs: &[(&str, &str)],
) -> Sent {
    let head = adapter.build(op, ctx).expect("the request builds");
    let mut request = reqwest::Client::new().request(head.method, head.url).headers(head.headers);
    for (name, value) in knobs {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the mock answers");
    Sent { status: response.status().as_u16(), headers: response.headers().clone(), response }
}

/// What a relay would send its client from a streamed answer.
struct Relayed {
    /// Every event the upstream sent.
    received: Vec<SseEvent>,
    /// The bytes the client gets.
    forwarded: Vec<u8>,
    /// The upstream's whole body.
    upstream_bytes: Vec<u8>,
    filter: StreamUsageFilter,
    finish: Result<(), SseError>,
    transport_error: bool,
}

async fn relay_stream(response: reqwest::Response, client_wants_usage: bool) -> Relayed {
    let mut parser = SseParser::new();
    let mut filter = StreamUsageFilter::new(client_wants_usage);
    let mut relayed = Relayed {
        received: Vec::new(),
        forwarded: Vec::new(),
        upstream_bytes: Vec::new(),
        filter: StreamUsageFilter::new(client_wants_usage),
        finish: Ok(()),
        transport_error: false,
    };
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            relayed.transport_error = true;
            break;
        };
        relayed.upstream_bytes.extend_from_slice(&chunk);
        parser.push_bytes(chunk);
        while let Some(event) = parser.next_event().expect("the mock's events are well formed") {
            match filter.on_event(&event) {
                Verdict::Forward => relayed.forwarded.extend_from_slice(&event.raw),
                Verdict::Replace(bytes) => relayed.forwarded.extend_from_slice(&bytes),
                Verdict::Drop => {}
            }
            relayed.received.push(event);
        }
    }
    relayed.finish = parser.finish();
    relayed.filter = filter;
    relayed
}

fn chunk_json(event: &SseEvent) -> Option<Value> {
    (!event.is_done()).then(|| serde_json::from_slice(&event.data).expect("chunks are JSON"))
}

fn is_usage_chunk(event: &SseEvent) -> bool {
    chunk_json(event).is_some_and(|c| c["choices"] == json!([]) && c["usage"].is_object())
}

fn expected_usage(completion_tokens: u64) -> Usage {
    let prompt_tokens = prompt_tokens(&[SYSTEM, USER]);
    Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, cached_tokens: 0 }
}

#[tokio::test]
async fn openai_non_stream_maps_the_model_and_reports_usage() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let request = ChatRequest::parse(Bytes::from(chat_body(false, json!({"max_tokens": 100})))).unwrap();
    assert_eq!((request.model(), request.stream(), request.output_limit()), ("house-alias", false, Some(100)));
    let ctx =
        RequestContext { base_url: &base, api_version: None, key: KEY, model: Some("gpt-4o-mini"), stream: false };
    let sent =
        send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, Some(request.upstream_body(ctx.model)), &[]).await;
    assert_eq!(sent.status, 200);
    let body = sent.response.bytes().await.unwrap();
    assert_eq!(Usage::from_response(&body), Some(expected_usage(CHUNKS)));

    let (method, uri) = mock.last_request_target().unwrap();
    assert_eq!((method.as_str(), uri.path()), ("POST", "/v1/chat/completions"));
    assert_eq!(mock.last_request_headers().unwrap()["authorization"], format!("Bearer {KEY}").as_str());
    let upstream = mock.last_request_body().unwrap();
    assert_eq!(upstream["model"], "gpt-4o-mini");
    assert!(upstream.get("stream_options").is_none(), "a non-stream request is not given stream options");
    // The response is the upstream's, model name included.
    let response: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(response["model"], "gpt-4o-mini");
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_stream_hides_usage_from_a_client_that_did_not_ask() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let prepared = prepare_chat_request(&chat_body(true, json!({})), Some("gpt-4o-mini")).unwrap();
    assert!(!prepared.request.client_wants_usage());
    let ctx =
        RequestContext { base_url: &base, api_version: None, key: KEY, model: Some("gpt-4o-mini"), stream: false };
    let sent = send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, Some(prepared.body), &[]).await;
    assert_eq!(sent.status, 200);
    assert!(sent.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(mock.last_request_body().unwrap()["stream_options"], json!({"include_usage": true}));

    let relayed = relay_stream(sent.response, false).await;
    assert_eq!(relayed.finish, Ok(()));
    assert_eq!(relayed.filter.usage(), Some(expected_usage(CHUNKS)));
    assert!(relayed.filter.saw_done());
    // Role chunk, 8 content chunks, finish chunk, usage chunk, [DONE].
    assert_eq!(relayed.received.len(), 12);
    assert_eq!(relayed.received.iter().filter(|e| is_usage_chunk(e)).count(), 1);
    // The client gets everything but the usage chunk, byte for byte.
    let expected: Vec<u8> =
        relayed.received.iter().filter(|e| !is_usage_chunk(e)).flat_map(|e| e.raw.iter().copied()).collect();
    assert_eq!(relayed.forwarded, expected);
    let mut client = SseParser::new();
    client.push(&relayed.forwarded);
    let mut text = String::new();
    while let Some(event) = client.next_event().unwrap() {
        if let Some(chunk) = chunk_json(&event) {
            assert!(chunk["usage"].is_null(), "no usage reaches the client: {chunk}");
            text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(text, "Firefly mock says hello from the local upstream.");
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_stream_keeps_usage_for_a_client_that_asked() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let body = chat_body(true, json!({"stream_options": {"include_usage": true}, "n": 2}));
    let prepared = prepare_chat_request(&body, None).unwrap();
    assert!(prepared.request.client_wants_usage());
    assert_eq!(prepared.body.as_ref(), &body[..], "nothing to change: the client's bytes go upstream");
    let ctx = RequestContext { base_url: &base, api_version: None, key: KEY, model: None, stream: false };
    let sent =
        send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, Some(prepared.body), &[("x-mock-chunks", "5")]).await;
    let relayed = relay_stream(sent.response, true).await;
    // completion_tokens = chunks × n.
    assert_eq!(relayed.filter.usage(), Some(expected_usage(5 * 2)));
    assert_eq!(relayed.forwarded, relayed.upstream_bytes, "the stream passes through untouched");
    assert_eq!(relayed.received.iter().filter(|e| is_usage_chunk(e)).count(), 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_deployment_requests_stream_and_not() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let origin = mock.origin();
    let ctx = RequestContext {
        base_url: &origin,
        api_version: Some("2024-10-21"),
        key: KEY,
        model: Some(DEPLOYMENT),
        stream: false,
    };
    let request = ChatRequest::parse(Bytes::from(chat_body(false, json!({})))).unwrap();
    let sent = send(&AzureAdapter, Operation::ChatCompletions, &ctx, Some(request.upstream_body(ctx.model)), &[]).await;
    assert_eq!(sent.status, 200);
    assert_eq!(Usage::from_response(&sent.response.bytes().await.unwrap()), Some(expected_usage(CHUNKS)));
    let (_, uri) = mock.last_request_target().unwrap();
    assert_eq!(uri.path(), format!("/openai/deployments/{DEPLOYMENT}/chat/completions"));
    assert_eq!(uri.query(), Some("api-version=2024-10-21"));
    let headers = mock.last_request_headers().unwrap();
    assert_eq!(headers["api-key"], KEY);
    assert!(headers.get("authorization").is_none());

    let request = ChatRequest::parse(Bytes::from(chat_body(true, json!({"max_completion_tokens": 3})))).unwrap();
    let sent = send(&AzureAdapter, Operation::ChatCompletions, &ctx, Some(request.upstream_body(ctx.model)), &[]).await;
    let relayed = relay_stream(sent.response, request.client_wants_usage()).await;
    assert_eq!(relayed.filter.usage(), Some(expected_usage(3)), "capped by max_completion_tokens");
    assert!(!relayed.forwarded.is_empty());
    assert_eq!(relayed.received.iter().filter(|e| is_usage_chunk(e)).count(), 1);
    let mut client = SseParser::new();
    client.push(&relayed.forwarded);
    assert!(std::iter::from_fn(|| client.next_event().unwrap()).all(|e| !is_usage_chunk(&e)));
    mock.shutdown().await;
}

#[tokio::test]
async fn content_parts_and_tools_pass_through_to_the_upstream() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let body = json!({
        "model": "vision",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this, exactly?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}],
        "tools": [{"type": "function", "function": {"name": "describe", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "stream": true,
        "vendor_field": {"kept": [1, 2]}
    });
    let request = ChatRequest::parse(Bytes::from(serde_json::to_vec(&body).unwrap())).unwrap();
    let ctx = RequestContext { base_url: &base, api_version: None, key: KEY, model: Some("gpt-4o"), stream: false };
    let sent = send(
        &OpenAiAdapter,
        Operation::ChatCompletions,
        &ctx,
        Some(request.upstream_body(ctx.model)),
        &[("x-mock-tool-call", "1")],
    )
    .await;
    let relayed = relay_stream(sent.response, false).await;
    let mut expected = body.clone();
    expected["model"] = json!("gpt-4o");
    expected["stream_options"] = json!({"include_usage": true});
    assert_eq!(mock.last_request_body().unwrap(), expected);
    let prompt = prompt_tokens(&["What is this, exactly?"]);
    assert_eq!(
        relayed.filter.usage(),
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: CHUNKS,
            total_tokens: prompt + CHUNKS,
            cached_tokens: 0
        })
    );
    let first = chunk_json(&relayed.received[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "describe");
    mock.shutdown().await;
}

#[tokio::test]
async fn no_usage_and_a_dropped_connection_leave_usage_unknown() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let ctx = RequestContext { base_url: &base, api_version: None, key: KEY, model: None, stream: false };
    let body = || Some(prepare_chat_request(&chat_body(true, json!({})), None).unwrap().body);

    let sent = send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, body(), &[("x-mock-no-usage", "1")]).await;
    let relayed = relay_stream(sent.response, false).await;
    assert_eq!(relayed.filter.usage(), None);
    assert!(relayed.filter.saw_done());
    assert_eq!(relayed.forwarded, relayed.upstream_bytes);

    let sent =
        send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, body(), &[("x-mock-disconnect-after", "3")]).await;
    let relayed = relay_stream(sent.response, false).await;
    assert!(relayed.transport_error, "the body ends in an error");
    assert_eq!(relayed.filter.usage(), None);
    assert!(!relayed.filter.saw_done());
    assert_eq!(relayed.finish, Ok(()), "the mock cuts between events");
    assert_eq!(relayed.received.len(), 1 + 3, "the role chunk and three content chunks");

    let non_stream = Bytes::from(chat_body(false, json!({})));
    let sent =
        send(&OpenAiAdapter, Operation::ChatCompletions, &ctx, Some(non_stream), &[("x-mock-no-usage", "1")]).await;
    assert_eq!(Usage::from_response(&sent.response.bytes().await.unwrap()), None);
    mock.shutdown().await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let ctx = RequestContext { base_url: &base, api_version: None, key: KEY, model: None, stream: false };
    let input = "twelve chars plus some more";
    let body = Bytes::from(serde_json::to_vec(&json!({"model": "text-embedding-3-small", "input": input})).unwrap());
    let sent = send(&OpenAiAdapter, Operation::Embeddings, &ctx, Some(body.clone()), &[]).await;
    assert_eq!(sent.status, 200);
    let tokens = (input.chars().count() as u64 / 4).max(1);
    assert_eq!(
        Usage::from_response(&sent.response.bytes().await.unwrap()),
        Some(Usage { prompt_tokens: tokens, completion_tokens: 0, total_tokens: tokens, cached_tokens: 0 })
    );

    let origin = mock.origin();
    let azure = RequestContext { base_url: &origin, api_version: None, key: KEY, model: Some("emb"), stream: false };
    let sent = send(&AzureAdapter, Operation::Embeddings, &azure, Some(body), &[]).await;
    assert_eq!(sent.status, 200);
    assert_eq!(mock.last_request_target().unwrap().1.path(), "/openai/deployments/emb/embeddings");

    let sent = send(&OpenAiAdapter, Operation::ListModels, &ctx, None, &[]).await;
    assert_eq!(sent.status, 200);
    let models: Value = sent.response.json().await.unwrap();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "gpt-4o-mini"));
    assert_eq!(mock.stats().models, 1);
    mock.shutdown().await;
}

async fn classify_answer(adapter: &dyn Adapter, ctx: &RequestContext<'_>, knobs: &[(&str, &str)]) -> UpstreamFailure {
    let body = Bytes::from(chat_body(false, json!({})));
    let sent = send(adapter, Operation::ChatCompletions, ctx, Some(body), knobs).await;
    assert!(sent.status >= 400, "{knobs:?} answered {}", sent.status);
    let body = sent.response.bytes().await.unwrap();
    adapter.classify(sent.status, &sent.headers, &body)
}

#[tokio::test]
async fn injected_failures_classify_as_the_relay_needs() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let origin = mock.origin();
    let openai = RequestContext { base_url: &base, api_version: None, key: KEY, model: None, stream: false };
    let azure =
        RequestContext { base_url: &origin, api_version: None, key: KEY, model: Some(DEPLOYMENT), stream: false };
    let adapters: [(&dyn Adapter, &RequestContext<'_>); 2] = [(&OpenAiAdapter, &openai), (&AzureAdapter, &azure)];
    for (adapter, ctx) in adapters {
        for (status, expected) in [
            ("400", UpstreamFailure::Fatal),
            ("404", UpstreamFailure::Fatal),
            ("413", UpstreamFailure::Fatal),
            ("422", UpstreamFailure::Fatal),
            ("401", UpstreamFailure::AuthFailed),
            ("403", UpstreamFailure::AuthFailed),
            ("408", UpstreamFailure::Retryable { retry_after: None }),
            ("500", UpstreamFailure::Retryable { retry_after: None }),
            ("502", UpstreamFailure::Retryable { retry_after: None }),
            ("503", UpstreamFailure::Retryable { retry_after: None }),
            ("429", UpstreamFailure::Retryable { retry_after: Some(Duration::from_secs(1)) }),
        ] {
            let got = classify_answer(adapter, ctx, &[("x-mock-status", status)]).await;
            assert_eq!(got, expected, "{} {status}", adapter.name());
        }
        let quota =
            classify_answer(adapter, ctx, &[("x-mock-status", "429"), ("x-mock-error-code", "insufficient_quota")]);
        assert_eq!(quota.await, UpstreamFailure::OutOfBalance, "{}", adapter.name());
    }

    // A channel whose key the upstream refuses.
    mock.set_fail_key(KEY, 401);
    assert_eq!(classify_answer(&OpenAiAdapter, &openai, &[]).await, UpstreamFailure::AuthFailed);
    assert_eq!(classify_answer(&AzureAdapter, &azure, &[]).await, UpstreamFailure::AuthFailed);
    mock.set_fail_key(KEY, 503);
    assert!(classify_answer(&OpenAiAdapter, &openai, &[]).await.should_retry());
    mock.clear_fail_key(KEY);
    // No key at all.
    let keyless = RequestContext { key: "", ..openai };
    assert_eq!(classify_answer(&OpenAiAdapter, &keyless, &[]).await, UpstreamFailure::AuthFailed);
    // A base URL pointing at the wrong path.
    let wrong = RequestContext { base_url: &origin, ..openai };
    assert_eq!(classify_answer(&OpenAiAdapter, &wrong, &[]).await, UpstreamFailure::Fatal);
    mock.shutdown().await;
}
