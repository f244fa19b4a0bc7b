//! `POST /v1/images/generations`.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;

use super::fields::{pick, required_string, splice_string, string, uint};
use crate::json::{span_in, Shape};
use crate::openai::RequestError;

/// The most images one request may ask for (OpenAI's limit; dall-e-3 allows only 1, which
/// the upstream enforces).
pub const MAX_IMAGES: u64 = 10;

/// The largest side accepted in `size`, a sanity bound well above any model's.
const MAX_SIDE: u32 = 16_384;

/// `size`: `auto` or `{width}x{height}` in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageSize {
    Auto,
    Pixels { width: u32, height: u32 },
}

/// `response_format`: how the images come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Url,
    B64Json,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Url => "url",
            ImageFormat::B64Json => "b64_json",
        }
    }
}

/// A validated image-generation request, holding the client's body.
#[derive(Clone, Debug)]
pub struct ImageRequest {
    body: Bytes,
    model: Box<str>,
    model_span: Range<usize>,
    prompt: Box<str>,
    n: u64,
    size: Option<ImageSize>,
    response_format: Option<ImageFormat>,
    quality: Option<Box<str>>,
    style: Option<Box<str>>,
}

impl ImageRequest {
    /// Validates the body: a JSON object with a non-empty string `model` and `prompt`; `n`
    /// from 1 to 10 (default 1); `size` `auto` or `WxH`; `response_format` `url` or
    /// `b64_json`; `quality` and `style` strings. Other members are not read.
    pub fn parse(body: Bytes) -> Result<ImageRequest, RequestError> {
        let [model_raw, prompt, n, size, response_format, quality, style] =
            pick(&body, ["model", "prompt", "n", "size", "response_format", "quality", "style"])?;
        let model = required_string(model_raw, "model")?;
        let prompt = required_string(prompt, "prompt")?;
        let n = match uint(n, "n")? {
            None => 1,
            Some(n @ 1..=MAX_IMAGES) => n,
            Some(_) => return Err(RequestError::InvalidValue { field: "n", reason: "must be between 1 and 10" }),
        };
        let size = match string(size, "size")? {
            None => None,
            Some(size) => Some(parse_size(&size).ok_or(RequestError::InvalidValue {
                field: "size",
                reason: "expected 'auto' or '{width}x{height}', such as '1024x1024'",
            })?),
        };
        let response_format = match string(response_format, "response_format")?.as_deref() {
            None => None,
            Some("url") => Some(ImageFormat::Url),
            Some("b64_json") => Some(ImageFormat::B64Json),
            Some(_) => {
                return Err(RequestError::InvalidValue {
                    field: "response_format",
                    reason: "expected 'url' or 'b64_json'",
                })
            }
        };
        let quality = string(quality, "quality")?.map(String::into_boxed_str);
        let style = string(style, "style")?.map(String::into_boxed_str);
        let model_span = model_raw.map_or(0..0, |raw| span_in(&body, raw.get()));
        Ok(ImageRequest {
            body,
            model: model.into_boxed_str(),
            model_span,
            prompt: prompt.into_boxed_str(),
            n,
            size,
            response_format,
            quality,
            style,
        })
    }

    /// The model the client asked for (before any mapping).
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Images asked for: what to reserve credit for (1 to 10).
    pub fn n(&self) -> u64 {
        self.n
    }

    /// `None`: the model's default.
    pub fn size(&self) -> Option<ImageSize> {
        self.size
    }

    /// `None`: the model's default (`url` for DALL·E; gpt-image models always answer
    /// `b64_json`).
    pub fn response_format(&self) -> Option<ImageFormat> {
        self.response_format
    }

    /// `standard`, `hd`, `low`, `medium`, `high`, `auto`…: not checked here, since the set
    /// depends on the model; prices may depend on it.
    pub fn quality(&self) -> Option<&str> {
        self.quality.as_deref()
    }

    pub fn style(&self) -> Option<&str> {
        self.style.as_deref()
    }

    /// The client's body, as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's bytes with `model` set to `upstream_model` when given and different; the
    /// client's buffer itself otherwise.
    pub fn upstream_body(&self, upstream_model: Option<&str>) -> Bytes {
        match upstream_model.filter(|m| *m != &*self.model) {
            Some(model) => splice_string(&self.body, self.model_span.clone(), model),
            None => self.body.clone(),
        }
    }
}

fn parse_size(size: &str) -> Option<ImageSize> {
    if size == "auto" {
        return Some(ImageSize::Auto);
    }
    let (width, height) = size.split_once('x')?;
    let side = |s: &str| -> Option<u32> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|v| (1..=MAX_SIDE).contains(v))
    };
    Some(ImageSize::Pixels { width: side(width)?, height: side(height)? })
}

/// The images an answer holds: the entries of its `data` array; 0 when the body is not an
/// image answer. This is what is billed, whatever `n` asked for.
pub fn images_billed(response_body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        data: Option<Shape>,
    }
    match serde_json::from_slice::<Answer>(response_body) {
        Ok(Answer { data: Some(Shape::Array(len)) }) => len as u64,
        _ => 0,
    }
}

/// The tokens a gpt-image model reports in `usage` (its price is per token, not per image).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ImageUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// An image answer's `usage`, when it has one (gpt-image models; DALL·E reports none).
pub fn image_usage(response_body: &[u8]) -> Option<ImageUsage> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<ImageUsage>,
    }
    serde_json::from_slice::<Answer>(response_body).ok()?.usage
}
