//! OpenAI's embeddings request, as far as a relay needs it: the model (to route, price and
//! map) and a check that there is input. The upstream body is the client's bytes with at
//! most the model replaced.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::RequestError;
use crate::json::{span_in, Shape};

#[derive(Clone, Debug)]
pub struct EmbeddingsRequest {
    body: Bytes,
    model: Box<str>,
    model_span: Range<usize>,
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    input: Option<Shape>,
}

impl EmbeddingsRequest {
    /// Validates the body: a JSON object with a non-empty string `model` and an `input` that
    /// is a string or a non-empty array. Nothing else is looked at.
    pub fn parse(body: Bytes) -> Result<EmbeddingsRequest, RequestError> {
        // Derived structs also accept arrays: only an object is a request.
        if body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'{') {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                Ok(_) => RequestError::NotAnObject,
                Err(e) => RequestError::InvalidJson(e.to_string()),
            });
        }
        let top: Top<'_> = serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data if e.to_string().starts_with("duplicate field") => {
                RequestError::Duplicate { field: if e.to_string().contains("`model`") { "model" } else { "input" } }
            }
            serde_json::error::Category::Data => RequestError::NotAnObject,
            _ => RequestError::InvalidJson(e.to_string()),
        })?;
        let model_raw = top.model.ok_or(RequestError::Missing { field: "model" })?;
        let model = match serde_json::from_str::<Option<String>>(model_raw.get()) {
            Ok(Some(model)) if !model.is_empty() => model,
            Ok(Some(_)) => return Err(RequestError::InvalidValue { field: "model", reason: "must not be empty" }),
            Ok(None) => return Err(RequestError::Missing { field: "model" }),
            Err(_) => return Err(RequestError::InvalidType { field: "model", expected: "a string" }),
        };
        match top.input {
            None | Some(Shape::Null) => return Err(RequestError::Missing { field: "input" }),
            Some(Shape::Array(0)) => {
                return Err(RequestError::InvalidValue { field: "input", reason: "expected a non-empty array" })
            }
            Some(Shape::Array(_)) | Some(Shape::Other) => {}
            Some(_) => return Err(RequestError::InvalidType { field: "input", expected: "a string or an array" }),
        }
        Ok(EmbeddingsRequest { model_span: span_in(&body, model_raw.get()), body, model: model.into_boxed_str() })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's bytes with `model` set to `upstream_model` when given and different.
    pub fn upstream_body(&self, upstream_model: Option<&str>) -> Bytes {
        let Some(model) = upstream_model.filter(|m| *m != &*self.model) else {
            return self.body.clone();
        };
        let mut out = Vec::with_capacity(self.body.len() + model.len() + 2);
        out.extend_from_slice(&self.body[..self.model_span.start]);
        serde_json::to_writer(&mut out, model).expect("a string serializes into a Vec");
        out.extend_from_slice(&self.body[self.model_span.end..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbeddingsRequest, RequestError> {
        EmbeddingsRequest::parse(Bytes::copy_from_slice(body.as_bytes()))
    }

    #[test]
    fn reads_the_model_and_maps_it_in_place() {
        let req = parse(r#"{"input":["a","b"], "model" : "text-embedding-3-small","dimensions":8}"#).unwrap();
        assert_eq!(req.model(), "text-embedding-3-small");
        let same = req.upstream_body(Some("text-embedding-3-small"));
        assert_eq!(same.as_ptr(), req.body().as_ptr(), "nothing to change: the same buffer");
        let mapped = req.upstream_body(Some("emb-\"prod\""));
        assert_eq!(&mapped[..], br#"{"input":["a","b"], "model" : "emb-\"prod\"","dimensions":8}"#);
    }

    #[test]
    fn refuses_bad_bodies_with_the_field() {
        let cases = [
            ("nope", "invalid_json", None),
            ("[1]", "invalid_type", None),
            (r#"{"input":"x"}"#, "missing_required_parameter", Some("model")),
            (r#"{"model":"","input":"x"}"#, "invalid_value", Some("model")),
            (r#"{"model":7,"input":"x"}"#, "invalid_type", Some("model")),
            (r#"{"model":"m"}"#, "missing_required_parameter", Some("input")),
            (r#"{"model":"m","input":[]}"#, "invalid_value", Some("input")),
            (r#"{"model":"m","input":true}"#, "invalid_type", Some("input")),
            (r#"{"model":"m","model":"n","input":"x"}"#, "duplicate_parameter", Some("model")),
        ];
        for (body, code, param) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!((err.code(), err.param()), (code, param), "{body}");
        }
    }
}
