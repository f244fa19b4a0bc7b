//! Channel probes: `POST /api/admin/channels/{id}/test` sends a real one-token chat
//! request through the channel, and a periodic task probes auto-disabled channels,
//! turning each back on once its upstream answers again.

use super::formats::{error_answer, whole_answer, ClientFormat, RequestBody};
use crate::accounts::AdminUser;
use crate::http::{ApiResult, Json, Path};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::extract::State;
use firefly_core::time::now_ms;
use firefly_core::ErrorCode;
use firefly_providers::adapter::{Operation, RequestContext, WireFormat};
use firefly_store::{Channel, ChannelStatus};
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, ToSchema)]
pub struct ProbeResult {
    /// Whether the upstream answered the probe successfully.
    ok: bool,
    /// The model probed (the channel's first, mapped to the upstream's name).
    model: Option<String>,
    /// The upstream's HTTP status; absent when it could not be reached.
    status: Option<u16>,
    latency_ms: u64,
    /// What went wrong, or the tokens the probe used.
    message: String,
}

/// Sends one minimal chat completion through `channel`; a DashScope native channel (images
/// and speech only, both billed upstream) is asked for the status of a task that does not
/// exist instead, which its key must be valid to answer and which costs nothing.
pub async fn probe(state: &AppState, channel: &Channel) -> ProbeResult {
    let started = Instant::now();
    let result = |ok, model: Option<String>, status, message: String| ProbeResult {
        ok,
        model,
        status,
        latency_ms: started.elapsed().as_millis() as u64,
        message,
    };
    let upstream = match state.relay.routes.upstream(channel) {
        Ok(u) => u,
        Err(e) => return result(false, None, None, e),
    };
    let Some(model) = channel.spec.models.first() else {
        return result(false, None, None, "the channel serves no model".into());
    };
    let model = upstream.upstream_model(model).to_owned();
    let ctx = RequestContext {
        base_url: &upstream.base_url,
        api_version: upstream.api_version.as_deref(),
        key: upstream.key(),
        model: Some(&model),
        stream: false,
    };
    let wire = upstream.adapter.wire_format();
    let request = if wire == WireFormat::DashScope {
        match firefly_providers::dashscope::task_request(&upstream.base_url, upstream.key(), "firefly-probe") {
            Ok(head) => state.relay.client().request(head.method, head.url).headers(head.headers),
            Err(e) => return result(false, Some(model), None, e.to_string()),
        }
    } else {
        let head = match upstream.adapter.build(Operation::ChatCompletions, &ctx) {
            Ok(h) => h,
            Err(e) => return result(false, Some(model), None, e.to_string()),
        };
        // One token of an OpenAI chat request, in the channel's own format.
        let hub =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1});
        let hub_bytes = bytes::Bytes::from(hub.to_string());
        let request_body =
            RequestBody::new(ClientFormat::OpenAi, hub_bytes.clone(), Box::new(move |_| hub_bytes.clone()), 1);
        let body = match request_body.for_upstream(wire, &model) {
            Ok(body) => body,
            Err(e) => return result(false, Some(model), None, e.to_string()),
        };
        state.relay.client().request(head.method, head.url).headers(head.headers).body(body)
    };
    let response = match tokio::time::timeout(PROBE_TIMEOUT, request.send()).await {
        Err(_) => return result(false, Some(model), None, "no answer within 30 s".into()),
        Ok(Err(e)) => return result(false, Some(model), None, format!("could not reach the upstream: {}", root(&e))),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let bytes =
        tokio::time::timeout(PROBE_TIMEOUT, response.bytes()).await.ok().and_then(Result::ok).unwrap_or_default();
    if (200..300).contains(&status) && wire == WireFormat::DashScope {
        result(true, Some(model), Some(status), "the key was accepted (task status query)".into())
    } else if (200..300).contains(&status) {
        let usage = whole_answer(ClientFormat::OpenAi, wire, bytes, &model).ok().and_then(|(_, usage)| usage);
        let used = usage.map_or("no usage reported".into(), |u| format!("{} tokens", u.total_tokens));
        result(true, Some(model), Some(status), used)
    } else {
        let bytes = error_answer(ClientFormat::OpenAi, wire, status, bytes);
        let message = firefly_providers::adapter::ErrorInfo::parse(&bytes)
            .and_then(|i| i.message)
            .unwrap_or_else(|| format!("HTTP {status}"));
        result(false, Some(model), Some(status), message.chars().take(300).collect())
    }
}

fn root(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// Test an upstream channel with a real one-token request.
#[utoipa::path(post, path = "/api/admin/channels/{id}/test", tag = "channels", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ProbeResult), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn test_channel(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ProbeResult>> {
    let channel = state.store.channel(id).await?.ok_or(ErrorCode::NotFound)?;
    Ok(Json(probe(&state, &channel).await))
}

/// Probes auto-disabled channels every `period`; a channel that answers is enabled again.
pub fn start(state: &AppState, period: Duration) {
    let s = state.clone();
    state.tasks.spawn(move |shutdown| async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => reenable(&s).await,
            }
        }
    });
}

pub async fn reenable(state: &AppState) {
    let channels = match state.store.list_channels().await {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "listing channels for probes failed"),
    };
    let mut changed = false;
    for channel in channels.iter().filter(|c| c.spec.status == ChannelStatus::AutoDisabled) {
        let result = probe(state, channel).await;
        if result.ok {
            match state.store.set_channel_status(channel.id, ChannelStatus::Enabled, None, now_ms()).await {
                Ok(_) => {
                    tracing::info!(channel_id = channel.id, "auto-disabled channel answers again: enabled");
                    changed = true;
                }
                Err(e) => tracing::warn!(channel_id = channel.id, error = %e, "re-enabling failed"),
            }
        }
    }
    if changed {
        if let Err(e) = state.relay.routes.reload().await {
            tracing::warn!(error = %e, "reloading routes failed");
        }
    }
}
