//! `POST /v1/embeddings` and Azure's `POST /openai/deployments/{d}/embeddings`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::chat::{json_response, parse_error};
use crate::error::ApiError;
use crate::prompt::EmbeddingInput;
use crate::state::{Counters, Incoming, Shared};

/// A ceiling on `dimensions` (text-embedding-3-large has 3072).
const MAX_DIMENSIONS: usize = 4096;

#[derive(Deserialize)]
struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    input: Option<EmbeddingInput>,
    dimensions: Option<usize>,
    #[serde(borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct EmbeddingsResponse<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingsUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: u64,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    /// `encoding_format: "base64"`: the little-endian f32s, base64-encoded.
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingsUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `POST` on this endpoint's OpenAI route, or on its Azure route (`{deployment}` in the path).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Incoming) -> Response {
    Counters::count(&shared.counters.embeddings);
    answer(&shared, request).await
}

async fn answer(shared: &Shared, request: Incoming) -> Response {
    let Incoming { flavor, deployment, method, uri, headers, body } = request;
    let knobs = match shared.admit(flavor, method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let request: EmbeddingsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, parse_error(e)).await,
    };
    let json = match respond(shared, &request, deployment.as_deref()) {
        Ok(json) => json,
        Err(error) => return shared.reject(&knobs, error).await,
    };
    shared.delay(&knobs).await;
    json_response(json)
}

fn respond(shared: &Shared, request: &EmbeddingsRequest, deployment: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let model = match (request.model.as_deref(), deployment) {
        (Some(model), _) if !model.is_empty() => model,
        (_, Some(deployment)) => deployment,
        _ => return Err(ApiError::missing_model()),
    };
    if shared.config.strict_models && deployment.is_none() && !shared.config.models.iter().any(|m| m == model) {
        return Err(ApiError::model_not_found(model));
    }
    let Some(input) = request.input else {
        return Err(ApiError::missing_parameter("input"));
    };
    if input.inputs == 0 {
        return Err(ApiError::invalid_value("input", "'$.input' is invalid: an empty array".into()));
    }
    let dimensions = request.dimensions.unwrap_or(shared.config.embedding_dimensions);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(ApiError::invalid_value(
            "dimensions",
            format!("{dimensions} is not between 1 and {MAX_DIMENSIONS} - 'dimensions'"),
        ));
    }
    let base64 = request.encoding_format.as_deref() == Some("base64");
    let data = (0..input.inputs)
        .map(|index| {
            let floats = vector(index, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(floats)
            };
            Embedding { object: "embedding", index, embedding }
        })
        .collect();
    let prompt_tokens = (input.chars / 4 + input.token_ids).max(1);
    let response = EmbeddingsResponse {
        object: "list",
        data,
        model,
        usage: EmbeddingsUsage { prompt_tokens, total_tokens: prompt_tokens },
    };
    Ok(serde_json::to_vec(&response).expect("an embeddings response serializes"))
}

/// Input `index`'s vector: multiples of 1/16 between -0.5 and 0.5, exact in binary, so they
/// print and compare exactly.
pub fn vector(index: u64, dimensions: usize) -> Vec<f32> {
    (0..dimensions as u64).map(|j| ((index * 7 + j * 3) % 17) as f32 / 16.0 - 0.5).collect()
}
