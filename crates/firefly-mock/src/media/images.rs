//! `POST /v1/images/generations` (and Azure's deployment route).
//!
//! `gpt-image*` models answer as gpt-image-1 does: `b64_json` always, with `usage` in tokens.
//! Every other model answers as DALL·E: a URL (or `b64_json` on request), no `usage`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::files::image_name;
use crate::chat::{json_response, parse_error};
use crate::error::ApiError;
use crate::prompt::chars;
use crate::state::{unix_now, Counters, Incoming, Shared};

/// OpenAI allows 1 to 10 images per request.
const MAX_IMAGES: u32 = 10;

/// Output tokens per gpt-image image (what gpt-image-1 bills for a low-quality 1024×1024).
pub(crate) const IMAGE_OUTPUT_TOKENS: u64 = 272;

#[derive(Deserialize)]
struct ImagesRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    prompt: Option<Cow<'a, str>>,
    n: Option<u32>,
    #[serde(borrow)]
    size: Option<Cow<'a, str>>,
    #[serde(borrow)]
    quality: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response_format: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct ImagesResponse<'a> {
    created: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    background: Option<&'static str>,
    data: Vec<Image<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ImageUsage>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Image<'a> {
    Url {
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        revised_prompt: Option<&'a str>,
    },
    B64 {
        b64_json: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        revised_prompt: Option<&'a str>,
    },
}

#[derive(Serialize)]
struct ImageUsage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputDetails {
    image_tokens: u64,
    text_tokens: u64,
}

/// `POST` on this endpoint's OpenAI route, or on its Azure route (`{deployment}` in the path).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Incoming) -> Response {
    Counters::count(&shared.counters.images);
    answer(&shared, request).await
}

async fn answer(shared: &Shared, request: Incoming) -> Response {
    let Incoming { flavor, deployment, method, uri, headers, body } = request;
    let origin = shared.origin(&headers);
    let knobs = match shared.admit(flavor, method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let request: ImagesRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, parse_error(e)).await,
    };
    match respond(shared, &origin, &request, deployment.as_deref()) {
        Ok(json) => {
            shared.delay(&knobs).await;
            json_response(json)
        }
        Err(error) => shared.reject(&knobs, error).await,
    }
}

fn respond(
    shared: &Shared,
    origin: &str,
    request: &ImagesRequest,
    deployment: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    let Some(prompt) = request.prompt.as_deref() else {
        return Err(ApiError::missing_parameter("prompt"));
    };
    let model = request.model.as_deref().filter(|m| !m.is_empty()).or(deployment).unwrap_or("dall-e-2");
    let n = request.n.unwrap_or(1);
    if !(1..=MAX_IMAGES).contains(&n) {
        return Err(ApiError::invalid_value("n", format!("{n} is not between 1 and {MAX_IMAGES} - 'n'")));
    }
    if model.starts_with("dall-e-3") && n != 1 {
        return Err(ApiError::invalid_value("n", "Invalid 'n': dall-e-3 only supports n=1.".into()));
    }
    let gpt_image = model.starts_with("gpt-image");
    let b64 = gpt_image || request.response_format.as_deref() == Some("b64_json");
    let encoded = if b64 { base64::engine::general_purpose::STANDARD.encode(super::png()) } else { String::new() };
    let revised_prompt = model.starts_with("dall-e-3").then_some(prompt);
    let data = (0..n)
        .map(|_| match b64 {
            true => Image::B64 { b64_json: &encoded, revised_prompt },
            false => {
                let url = format!("{origin}/_mock/files/{}", image_name(shared.next_seq()));
                Image::Url { url, revised_prompt }
            }
        })
        .collect();
    let usage = gpt_image.then(|| {
        let text_tokens = (chars(prompt) / 4).max(1);
        let output_tokens = IMAGE_OUTPUT_TOKENS * u64::from(n);
        ImageUsage {
            input_tokens: text_tokens,
            input_tokens_details: InputDetails { image_tokens: 0, text_tokens },
            output_tokens,
            total_tokens: text_tokens + output_tokens,
        }
    });
    let response = ImagesResponse {
        created: unix_now(),
        background: gpt_image.then_some("opaque"),
        data,
        output_format: gpt_image.then_some("png"),
        quality: gpt_image.then(|| request.quality.as_deref().unwrap_or("medium")),
        size: gpt_image.then(|| request.size.as_deref().unwrap_or("1024x1024")),
        usage,
    };
    Ok(serde_json::to_vec(&response).expect("an images response serializes"))
}
