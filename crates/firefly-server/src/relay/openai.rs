//! The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions` (streaming
//! and not) and `POST /v1/embeddings`, authenticated by API key. Errors take OpenAI's
//! shape (`{"error": {"message", "type", "param", "code"}}`), rendered for every `/v1`
//! path by the request-context middleware.

use super::admit::{model_not_found, Ask};
use super::formats::{ClientFormat, RequestBody};
use super::forward::{relay, Call};
use crate::http::context::{ClientChoseId, RequestId};
use crate::http::error::internal;
use crate::http::{ApiError, ApiResult, Path};
use crate::keys::auth::{CachedKey, KeyAuth};
use crate::ops::openapi::ErrorResponse;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use firefly_core::{Error, ErrorCode};
use firefly_providers::adapter::Operation;
use firefly_providers::openai::{ChatRequest, EmbeddingsRequest, RequestError};
use http::HeaderMap;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

const TAG: &str = "openai";

#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    #[schema(example = "gpt-4o-mini")]
    id: String,
    #[schema(example = "model")]
    object: &'static str,
    created: i64,
    #[schema(example = "firefly")]
    owned_by: &'static str,
}

impl ModelObject {
    fn new(id: String) -> Self {
        ModelObject { id, object: "model", created: 0, owned_by: "firefly" }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    object: &'static str,
    data: Vec<ModelObject>,
}

/// The models this key may use: served by an enabled channel, priced, and on the key's
/// allow-list when it has one.
async fn usable_models(state: &AppState, key: &CachedKey) -> ApiResult<Vec<String>> {
    let table = state.relay.routes.current();
    let prices = state.relay.prices().await?;
    let allowed = &key.auth.key.models;
    Ok(table
        .models()
        .iter()
        .filter(|m| prices.contains_key(*m) && (allowed.is_empty() || allowed.contains(m)))
        .cloned()
        .collect())
}

/// List the models this API key may use.
///
/// In Anthropic's shape (`{data: [{type, id, display_name, created_at}], has_more,
/// first_id, last_id}`) when the request carries `anthropic-version`, as the Anthropic SDKs
/// send it.
#[utoipa::path(get, path = "/v1/models", tag = TAG, security(("api_key" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = ErrorResponse)))]
pub async fn list_models(
    State(state): State<AppState>,
    KeyAuth(key): KeyAuth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let models = usable_models(&state, &key).await?;
    if headers.contains_key(ANTHROPIC_VERSION) {
        let data: Vec<serde_json::Value> = models.iter().map(|m| anthropic_model(m)).collect();
        let body = serde_json::json!({
            "data": data, "has_more": false, "first_id": models.first(), "last_id": models.last(),
        });
        return Ok(Json(body).into_response());
    }
    let data = models.into_iter().map(ModelObject::new).collect();
    Ok(Json(ModelList { object: "list", data }).into_response())
}

const ANTHROPIC_VERSION: &str = "anthropic-version";

fn anthropic_model(id: &str) -> serde_json::Value {
    serde_json::json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
}

/// One model this API key may use.
#[utoipa::path(get, path = "/v1/models/{model}", tag = TAG, params(("model" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = ModelObject), (status = 404, body = ErrorResponse)))]
pub async fn get_model(
    State(state): State<AppState>,
    KeyAuth(key): KeyAuth,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !usable_models(&state, &key).await?.contains(&model) {
        Err(model_not_found(&model))
    } else if headers.contains_key(ANTHROPIC_VERSION) {
        Ok(Json(anthropic_model(&model)).into_response())
    } else {
        Ok(Json(ModelObject::new(model)).into_response())
    }
}

/// A chat completion, streamed (`"stream": true`, Server-Sent Events) or not: OpenAI's
/// request and response bodies, passed through to the upstream channel.
#[utoipa::path(post, path = "/v1/chat/completions", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "OpenAI's chat-completions request", content_type = "application/json"),
    responses((status = 200, description = "`chat.completion`, or an SSE stream of `chat.completion.chunk`"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    let request = ChatRequest::parse(bytes).map_err(invalid)?;
    let per_choice = request.output_limit().unwrap_or(state.relay.settings.default_output_reserve);
    let ask = Ask {
        model: request.model(),
        input_bytes: request.body().len(),
        output_tokens: per_choice.saturating_mul(request.n()),
        media: None,
    };
    let admission = state.relay.admit(&key, ask).await?;
    let source = request.body().clone();
    let (model, stream, client_wants_usage) =
        (request.model().to_owned(), request.stream(), request.client_wants_usage());
    let (choices, input_bytes) = (request.n().min(u64::from(u32::MAX)) as u32, request.body().len());
    let pass = Box::new(move |model: &str| request.upstream_body(Some(model)));
    let body = RequestBody::new(ClientFormat::OpenAi, source, pass, state.relay.settings.default_output_reserve);
    let call = Call {
        stream,
        client_wants_usage,
        choices,
        input_bytes,
        ..Call::new(Operation::ChatCompletions, ClientFormat::OpenAi, model, request_id, body)
    };
    Ok(relay(state.clone(), admission, call).await)
}

/// Embeddings: OpenAI's request and response bodies, passed through.
#[utoipa::path(post, path = "/v1/embeddings", tag = TAG, security(("api_key" = [])),
    request_body(content = serde_json::Value, description = "OpenAI's embeddings request", content_type = "application/json"),
    responses((status = 200, description = "OpenAI's embeddings list"),
              (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse), (status = 402, body = ErrorResponse),
              (status = 404, body = ErrorResponse), (status = 429, body = ErrorResponse), (status = 502, body = ErrorResponse)))]
pub async fn embeddings(
    State(state): State<AppState>,
    Caller { key, request_id }: Caller,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(&state, body).await?;
    let request = EmbeddingsRequest::parse(bytes).map_err(invalid)?;
    let ask = Ask { model: request.model(), input_bytes: request.body().len(), output_tokens: 0, media: None };
    let admission = state.relay.admit(&key, ask).await?;
    let (model, input_bytes) = (request.model().to_owned(), request.body().len());
    let body =
        RequestBody::pass_through_only(ClientFormat::OpenAi, Box::new(move |model| request.upstream_body(Some(model))));
    let call = Call { input_bytes, ..Call::new(Operation::Embeddings, ClientFormat::OpenAi, model, request_id, body) };
    Ok(relay(state.clone(), admission, call).await)
}

/// An authenticated caller of the AI API (`Authorization: Bearer` or `x-api-key`), and the
/// id its request is billed under ([`RequestId::unique`]).
pub struct Caller {
    pub key: Arc<CachedKey>,
    pub request_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let KeyAuth(key) = KeyAuth::from_request_parts(parts, state).await?;
        let client_chose = parts.extensions.get::<ClientChoseId>().is_some();
        let id = parts.extensions.get::<RequestId>().ok_or_else(|| internal("no request id on a relay request"))?;
        Ok(Caller { key, request_id: id.unique(client_chose) })
    }
}

pub(super) async fn read_body(state: &AppState, body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, state.relay.settings.max_body_bytes).await.map_err(|_| ErrorCode::BodyTooLarge.into())
}

fn invalid(e: RequestError) -> ApiError {
    let mut error = Error::with_message(ErrorCode::InvalidRequest, e.to_string());
    error.details = Some(serde_json::json!({ "param": e.param(), "reason": e.code() }));
    ApiError(error)
}
