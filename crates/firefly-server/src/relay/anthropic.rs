//! The Anthropic-compatible API: `POST /v1/messages` (streaming and not) and
//! `POST /v1/messages/count_tokens`, authenticated by API key (`x-api-key`, as the
//! Anthropic SDKs send it, or `Authorization: Bearer`). Any channel serves it: an Anthropic
//! upstream gets the client's bytes, any other gets them transcoded (see `formats`).
//! Errors take Anthropic's shape, rendered for these paths by the request-context
//! middleware.

use super::admit::{model_not_found, Ask};
use super::formats::{ClientFormat, RequestBody};
use super::forward::{relay, Call};
use super::openai::{read_body, Caller};
use crate::http::{ApiError, ApiResult};
use crate::keys::auth::{CachedKey, KeyAuth};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use firefly_core::{Error, ErrorCode};
use firefly_providers::adapter::{Operation, RequestContext, WireFormat};
use firefly_providers::anthropic;
use firefly_providers::transcode::TranscodeError;
use http::{HeaderValue, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

const TAG: &str = "anthropic";

/// A message, streamed (`"stream": true`: Anthropic's event stream) or not: Anthropic's
/// request and response bodies, on any channel serving the model.
#[utoipa::path(post, path = "/v1/messages", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "Anthropic's Messages request", content_type = "application/json"),
    responses((status = 200, description = "A `message`, or Anthropic's event stream"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn messages(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    let hub = anthropic::request_to_openai(&bytes).map_err(invalid)?;
    let model = hub.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    let stream = hub.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_tokens =
        hub.get("max_tokens").and_then(Value::as_u64).unwrap_or(state.relay.settings.default_output_reserve);
    let ask = Ask { model: &model, input_bytes: bytes.len(), output_tokens: max_tokens, media: None };
    let admission = state.relay.admit(&key, ask).await?;
    let source = bytes.clone();
    let client_model = model.clone();
    let pass_through =
        Box::new(
            move |upstream_model: &str| {
                if upstream_model == client_model {
                    source.clone()
                } else {
                    with_model(&source, upstream_model)
                }
            },
        );
    let body = RequestBody::new(
        ClientFormat::Anthropic,
        bytes.clone(),
        pass_through,
        state.relay.settings.default_output_reserve,
    )
    .with_hub(hub);
    let call = Call {
        stream,
        client_wants_usage: true,
        input_bytes: bytes.len(),
        ..Call::new(Operation::ChatCompletions, ClientFormat::Anthropic, model, request_id, body)
    };
    Ok(relay(state.clone(), admission, call).await)
}

/// The input tokens a Messages request would count: asked of an Anthropic channel serving
/// the model when there is one; otherwise estimated here (a quarter of the characters of
/// the text, tool definitions included), marked with `x-firefly-estimate: true`. Free.
#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "Anthropic's count-tokens request", content_type = "application/json"),
    responses((status = 200, description = "`{\"input_tokens\": N}`"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn count_tokens(State(state): State<AppState>, KeyAuth(key): KeyAuth, body: Body) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    // Count-tokens requests carry no `max_tokens`; the converter wants one.
    let mut probe: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(TranscodeError::invalid(format!("the request is not JSON: {e}"), None)))?;
    if let Some(object) = probe.as_object_mut() {
        object.entry("max_tokens").or_insert(Value::from(1));
    }
    let probe_bytes = serde_json::to_vec(&probe).expect("a Value always serializes");
    let hub = anthropic::request_to_openai(&probe_bytes).map_err(invalid)?;
    let model = hub.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    allowed(&state, &key, &model)?;
    if let Some(answer) = upstream_count(&state, &model, &bytes).await {
        return Ok(answer);
    }
    let tokens = estimate_tokens(&hub);
    let mut response = axum::Json(serde_json::json!({ "input_tokens": tokens })).into_response();
    response.headers_mut().insert("x-firefly-estimate", HeaderValue::from_static("true"));
    Ok(response)
}

/// The key may use the model and some channel serves it.
fn allowed(state: &AppState, key: &CachedKey, model: &str) -> ApiResult<()> {
    let k = &key.auth.key;
    if !k.models.is_empty() && !k.models.iter().any(|m| m == model) {
        return Err(ErrorCode::ApiKeyModelDenied.into());
    }
    if !state.relay.routes.current().serves(model) {
        return Err(model_not_found(model));
    }
    Ok(())
}

/// The first Anthropic channel's own count, or `None` when no Anthropic channel serves
/// the model or none answered. A refusal of the request itself (4xx other than auth and
/// rate limits) is the client's answer.
async fn upstream_count(state: &AppState, model: &str, body: &Bytes) -> Option<Response> {
    let plan = state.relay.routes.current().plan(model, Instant::now())?;
    let upstream = plan.iter().find(|u| u.adapter.wire_format() == WireFormat::Anthropic)?;
    let upstream_model = upstream.upstream_model(model);
    let ctx = RequestContext {
        base_url: &upstream.base_url,
        api_version: upstream.api_version.as_deref(),
        key: upstream.key(),
        model: Some(upstream_model),
        stream: false,
    };
    let head = upstream.adapter.build(Operation::CountTokens, &ctx).ok()?;
    let body = if upstream_model == model { body.clone() } else { with_model(body, upstream_model) };
    let request = state.relay.client.request(head.method, head.url).headers(head.headers).body(body);
    let response = tokio::time::timeout(Duration::from_secs(10), request.send()).await.ok()?.ok()?;
    let status = response.status();
    let passes = status.is_success() || (status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 429));
    if !passes {
        return None;
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), response.bytes()).await.ok()?.ok()?;
    let mut out = Response::new(Body::from(answer));
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).ok()?;
    out.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(out)
}

/// A quarter of the characters of the request's text (message contents and text parts,
/// tool calls' names and arguments, tool definitions), at least one; images and other
/// binary parts count nothing.
fn estimate_tokens(hub: &Value) -> u64 {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.chars().count() as u64);
    let mut chars = 0u64;
    for message in hub.get("messages").and_then(Value::as_array).into_iter().flatten() {
        match message.get("content") {
            Some(Value::String(s)) => chars += s.chars().count() as u64,
            Some(Value::Array(parts)) => chars += parts.iter().map(|p| text(p.get("text"))).sum::<u64>(),
            _ => {}
        }
        for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let function = call.get("function");
            chars += text(function.and_then(|f| f.get("name"))) + text(function.and_then(|f| f.get("arguments")));
        }
    }
    if let Some(tools) = hub.get("tools") {
        chars += tools.to_string().chars().count() as u64;
    }
    (chars / 4).max(1)
}

/// The body with its `model` replaced (a channel that maps the model name).
fn with_model(body: &Bytes, model: &str) -> Bytes {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) if value.is_object() => {
            value["model"] = Value::String(model.to_owned());
            Bytes::from(serde_json::to_vec(&value).expect("a Value always serializes"))
        }
        _ => body.clone(),
    }
}

fn invalid(e: TranscodeError) -> ApiError {
    let mut error = Error::with_message(ErrorCode::InvalidRequest, e.to_string());
    if let TranscodeError::InvalidRequest { param: Some(param), .. } = &e {
        error.details = Some(serde_json::json!({ "param": param }));
    }
    ApiError(error)
}
