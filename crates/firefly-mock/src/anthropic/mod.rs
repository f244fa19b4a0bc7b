//! Anthropic's Messages API: `POST /v1/messages` (JSON or SSE), `POST /v1/messages/count_tokens`,
//! and `GET /v1/models` in Anthropic's shape when the request carries `anthropic-version`.

mod error;
mod message;

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::chat::json_response;
use crate::knobs::{Knobs, Metadata};
use crate::prompt::{AnthropicMessages, BlocksChars};
use crate::state::{bearer, header_value, Counters, Provider, Refusal, Shared};

pub(crate) use error::AnthropicError;
use message::Plan;

/// The provider as admission sees it: the key in `x-api-key` (or a Bearer token, as for
/// OAuth), and `anthropic-version` required.
pub(crate) struct Anthropic;

impl Provider for Anthropic {
    type Error = AnthropicError;

    fn key<'r>(headers: &'r HeaderMap, _uri: &'r Uri) -> Option<&'r str> {
        header_value(headers, "x-api-key").or_else(|| bearer(headers))
    }

    fn check(headers: &HeaderMap) -> Result<(), AnthropicError> {
        match header_value(headers, "anthropic-version") {
            Some(_) => Ok(()),
            None => Err(AnthropicError::missing_version()),
        }
    }

    fn refused(refusal: Refusal) -> AnthropicError {
        AnthropicError::refused(refusal)
    }
}

/// What the mock reads of a Messages request; everything else is accepted and ignored.
#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<AnthropicMessages>,
    system: Option<BlocksChars>,
    max_tokens: Option<u64>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

impl MessagesRequest<'_> {
    /// `max(1, floor(C / 4))` over the system prompt and all message text.
    fn input_tokens(&self) -> u64 {
        let chars = self.messages.map_or(0, |m| m.chars) + self.system.map_or(0, |s| s.0);
        (chars / 4).max(1)
    }

    /// The model and message count, or Anthropic's 400 for what is missing.
    fn validate(&self) -> Result<&str, AnthropicError> {
        let model = match self.model.as_deref() {
            Some(model) if !model.is_empty() => model,
            _ => return Err(AnthropicError::missing_field("model")),
        };
        match self.messages {
            None => Err(AnthropicError::missing_field("messages")),
            Some(m) if m.messages == 0 => Err(AnthropicError::invalid("messages: at least one message is required")),
            Some(_) => Ok(model),
        }
    }
}

/// Admits the request and parses its body, with the `metadata` knobs folded in.
async fn admit<'b>(
    shared: &Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: &'b Bytes,
) -> Result<(Knobs, MessagesRequest<'b>), Response> {
    let knobs = shared.admit_as::<Anthropic>(method, uri, headers, body).await?;
    let request: MessagesRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return Err(shared.reject(&knobs, AnthropicError::body_error(e)).await),
    };
    let mut knobs = match &request.metadata {
        Some(metadata) => knobs.or(Knobs::from_metadata(metadata)),
        None => knobs,
    };
    if let Some(status) = knobs.status() {
        let code = knobs.take_error_code();
        return Err(shared.reject(&knobs, AnthropicError::injected(status, code)).await);
    }
    Ok((knobs, request))
}

pub(crate) async fn messages(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::count(&shared.counters.messages);
    let (knobs, request) = match admit(&shared, method, uri, headers, &body).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let model = match request.validate() {
        Ok(model) => model,
        Err(error) => return shared.reject(&knobs, error).await,
    };
    let max_tokens = match request.max_tokens {
        None => return shared.reject(&knobs, AnthropicError::missing_field("max_tokens")).await,
        Some(0) => {
            let error = AnthropicError::invalid("max_tokens: Input should be greater than or equal to 1");
            return shared.reject(&knobs, error).await;
        }
        Some(max_tokens) => max_tokens,
    };
    let tool = knobs.tool_call().then(|| {
        let declared = request.tools.iter().flatten().find_map(|t| t.name.as_deref());
        declared.unwrap_or("mock_tool").to_owned()
    });
    let wanted = knobs.chunks(&shared.config);
    let plan = Plan {
        id: format!("msg_01{:022x}", shared.next_seq()),
        model: model.to_owned(),
        input_tokens: request.input_tokens(),
        tokens: wanted.min(max_tokens),
        capped: max_tokens < wanted,
        thinking: knobs.thinking(),
        tool,
    };
    shared.delay(&knobs).await;
    if request.stream == Some(true) {
        plan.stream(&knobs, &shared.config)
    } else {
        json_response(plan.message_json())
    }
}

#[derive(Serialize)]
struct TokenCount {
    input_tokens: u64,
}

pub(crate) async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::count(&shared.counters.count_tokens);
    let (knobs, request) = match admit(&shared, method, uri, headers, &body).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if let Err(error) = request.validate() {
        return shared.reject(&knobs, error).await;
    }
    shared.delay(&knobs).await;
    let count = TokenCount { input_tokens: request.input_tokens() };
    json_response(serde_json::to_vec(&count).expect("a token count serializes"))
}

/// The `created_at` every listed model reports.
const CREATED_AT: &str = "2025-02-19T00:00:00Z";

#[derive(Serialize)]
struct ModelInfo<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

#[derive(Serialize)]
struct ModelPage<'a> {
    data: Vec<ModelInfo<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

fn model_info(id: &str) -> ModelInfo<'_> {
    ModelInfo { kind: "model", id, display_name: id, created_at: CREATED_AT }
}

/// `GET /v1/models` for a request with `anthropic-version` (counted by the caller).
pub(crate) async fn list_models(shared: &Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let knobs = match shared.admit_as::<Anthropic>(method, uri, headers, &Bytes::new()).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    shared.delay(&knobs).await;
    let models = &shared.config.models;
    let page = ModelPage {
        data: models.iter().map(|m| model_info(m)).collect(),
        has_more: false,
        first_id: models.first().map(String::as_str),
        last_id: models.last().map(String::as_str),
    };
    json_response(serde_json::to_vec(&page).expect("a model page serializes"))
}

/// `GET /v1/models/{id}` for a request with `anthropic-version` (counted by the caller).
pub(crate) async fn retrieve_model(
    shared: &Shared,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let knobs = match shared.admit_as::<Anthropic>(method, uri, headers, &Bytes::new()).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    if !shared.config.models.contains(&id) {
        return shared.reject(&knobs, AnthropicError::not_found(format!("model: {id}"))).await;
    }
    shared.delay(&knobs).await;
    json_response(serde_json::to_vec(&model_info(&id)).expect("a model serializes"))
}
