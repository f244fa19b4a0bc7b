//! `GET /v1/models` and `GET /v1/models/{model}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Uri};
use serde::Serialize;

use crate::chat::json_response;
use crate::error::ApiError;
use crate::state::{Counters, Flavor, Shared};

/// The `created` every listed model reports (a fixed date, so responses are stable).
const CREATED: u64 = 1_686_935_002;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

fn model(id: &str) -> Model<'_> {
    Model { id, object: "model", created: CREATED, owned_by: "openai" }
}

pub(crate) fn list_body(models: &[String]) -> Bytes {
    let list = ModelList { object: "list", data: models.iter().map(|m| model(m)).collect() };
    Bytes::from(serde_json::to_vec(&list).expect("a model list serializes"))
}

pub(crate) async fn list(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    Counters::count(&shared.counters.models);
    if headers.contains_key("anthropic-version") {
        return crate::anthropic::list_models(&shared, method, uri, headers).await;
    }
    let knobs = match shared.admit(Flavor::OpenAi, method, uri, headers, &Bytes::new()).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    shared.delay(&knobs).await;
    let mut response = shared.models_body.clone().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) async fn retrieve(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    Counters::count(&shared.counters.models);
    if headers.contains_key("anthropic-version") {
        return crate::anthropic::retrieve_model(&shared, Path(id), method, uri, headers).await;
    }
    let knobs = match shared.admit(Flavor::OpenAi, method, uri, headers, &Bytes::new()).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    if !shared.config.models.contains(&id) {
        return shared.reject(&knobs, ApiError::model_not_found(&id)).await;
    }
    shared.delay(&knobs).await;
    json_response(serde_json::to_vec(&model(&id)).expect("a model serializes"))
}
