//! Gemini's `generateContent`, `streamGenerateContent` (SSE with `?alt=sse`, else a streamed
//! JSON array) and `countTokens`, under `/v1beta/models/{model}:{method}` (and `/v1/...`).
//!
//! A streamed answer is one `GenerateContentResponse` per content chunk, each carrying every
//! candidate's next word and the usage so far (Gemini's `usageMetadata` is cumulative); the
//! last one carries `finishReason`. Events are framed with CRLF (`data: {...}\r\n\r\n`), as
//! Google's servers frame them.

mod error;

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::chat::{json_response, words, Plan as ChatPlan};
use crate::frames::{Cut, Frames, Role};
use crate::prompt::chars;
use crate::state::{bearer, header_value, Counters, Provider, Refusal, Shared};

pub(crate) use error::GeminiError;

/// Gemini accepts 1 to 8 candidates.
const MAX_CANDIDATES: u32 = 8;

/// The provider as admission sees it: the key in `x-goog-api-key`, `?key=`, or a Bearer
/// token (OAuth).
pub(crate) struct Gemini;

impl Provider for Gemini {
    type Error = GeminiError;

    fn key<'r>(headers: &'r HeaderMap, uri: &'r Uri) -> Option<&'r str> {
        header_value(headers, "x-goog-api-key").or_else(|| query_param(uri, "key")).or_else(|| bearer(headers))
    }

    fn refused(refusal: Refusal) -> GeminiError {
        GeminiError::refused(refusal)
    }
}

fn query_param<'u>(uri: &'u Uri, name: &str) -> Option<&'u str> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name && !value.is_empty()).then_some(value)
    })
}

#[derive(Deserialize)]
struct GenerateRequest<'a> {
    #[serde(borrow, default)]
    contents: Option<Vec<Content<'a>>>,
    #[serde(borrow, default, rename = "systemInstruction", alias = "system_instruction")]
    system_instruction: Option<Content<'a>>,
    #[serde(borrow, default)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(default, rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, default, rename = "functionDeclarations", alias = "function_declarations")]
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Deserialize)]
struct FunctionDeclaration<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GenerationConfig {
    #[serde(default, rename = "candidateCount", alias = "candidate_count")]
    candidate_count: Option<u32>,
    #[serde(default, rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
}

fn content_chars(content: &Content) -> u64 {
    content.parts.iter().map(|p| p.text.as_deref().map_or(0, chars)).sum()
}

impl GenerateRequest<'_> {
    /// `max(1, floor(C / 4))` over the text parts of `contents` and `systemInstruction`.
    fn prompt_tokens(&self) -> u64 {
        let contents: u64 = self.contents.iter().flatten().map(content_chars).sum();
        let system = self.system_instruction.as_ref().map_or(0, content_chars);
        ((contents + system) / 4).max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Generate,
    Stream,
    CountTokens,
}

pub(crate) async fn call(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    Counters::count(&shared.counters.gemini);
    let sse = query_param(&uri, "alt") == Some("sse");
    let knobs = match shared.admit_as::<Gemini>(method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let (model, call) = match target.split_once(':') {
        Some((model, "generateContent")) => (model, Call::Generate),
        Some((model, "streamGenerateContent")) => (model, Call::Stream),
        Some((model, "countTokens")) => (model, Call::CountTokens),
        _ => {
            let error = GeminiError::not_found(format!(
                "models/{target} is not found for API version v1beta, or is not supported for this method."
            ));
            return shared.reject(&knobs, error).await;
        }
    };
    let request: GenerateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, GeminiError::body_error(e)).await,
    };
    if request.contents.as_ref().is_none_or(Vec::is_empty) {
        let error = GeminiError::invalid("* GenerateContentRequest.contents: contents is not specified\n");
        return shared.reject(&knobs, error).await;
    }
    let prompt_tokens = request.prompt_tokens();
    if call == Call::CountTokens {
        shared.delay(&knobs).await;
        let count = TokenCount { total_tokens: prompt_tokens, prompt_tokens_details: [modality(prompt_tokens)] };
        return json_response(serde_json::to_vec(&count).expect("a token count serializes"));
    }
    let config = request.generation_config.as_ref();
    let candidates = config.and_then(|c| c.candidate_count).unwrap_or(1);
    if !(1..=MAX_CANDIDATES).contains(&candidates) {
        let error = GeminiError::invalid(format!(
            "* GenerateContentRequest.generation_config.candidate_count: must be between 1 and {MAX_CANDIDATES}\n"
        ));
        return shared.reject(&knobs, error).await;
    }
    let wanted = knobs.chunks(&shared.config);
    let tokens = config.and_then(|c| c.max_output_tokens).map_or(wanted, |limit| wanted.min(limit));
    let tool = knobs.tool_call().then(|| {
        let declared =
            request.tools.iter().flatten().flat_map(|t| &t.function_declarations).find_map(|f| f.name.as_deref());
        declared.unwrap_or("mock_tool").to_owned()
    });
    let plan = Plan {
        response_id: format!("mock{:018x}", shared.next_seq()),
        model: model.to_owned(),
        candidates,
        tokens,
        finish_reason: if tokens < wanted { "MAX_TOKENS" } else { "STOP" },
        tool,
        prompt_tokens,
        usage: !knobs.no_usage(),
    };
    shared.delay(&knobs).await;
    if call == Call::Generate {
        return json_response(plan.response_json());
    }
    let cut = match (knobs.disconnect_after(), knobs.stream_error_after()) {
        (Some(after), _) => Some(Cut::Disconnect { after }),
        (None, Some(after)) => {
            let error = GeminiError::overloaded().to_json();
            let frame = match (sse, after) {
                (true, _) => sse_frame(&error),
                (false, 0) => array_of(&error),
                (false, _) => array_close(&error),
            };
            Some(Cut::Error { after, frame })
        }
        (None, None) => None,
    };
    let delay = knobs.chunk_delay(&shared.config);
    if sse {
        Frames::new(plan.sse_frames(), delay, cut).into_response("text/event-stream")
    } else {
        Frames::new(plan.array_frames(), delay, cut).into_response("application/json; charset=UTF-8")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenCount {
    total_tokens: u64,
    prompt_tokens_details: [ModalityCount; 1],
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: &'static str,
    token_count: u64,
}

fn modality(token_count: u64) -> ModalityCount {
    ModalityCount { modality: "TEXT", token_count }
}

struct Plan {
    response_id: String,
    model: String,
    candidates: u32,
    /// Content chunks (= candidate tokens) per candidate.
    tokens: u64,
    finish_reason: &'static str,
    tool: Option<String>,
    prompt_tokens: u64,
    /// `false` under `x-mock-no-usage`.
    usage: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    candidates: Vec<Candidate<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageMetadata>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: CandidateContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct CandidateContent<'a> {
    parts: [OutPart<'a>; 1],
    role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutPart<'a> {
    Text {
        text: &'a str,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
    },
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Args<'a>,
}

#[derive(Serialize)]
struct Args<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    prompt_tokens_details: [ModalityCount; 1],
}

impl Plan {
    fn usage_metadata(&self, tokens: u64) -> Option<UsageMetadata> {
        let candidates_token_count = tokens * u64::from(self.candidates);
        self.usage.then(|| UsageMetadata {
            prompt_token_count: self.prompt_tokens,
            candidates_token_count,
            total_token_count: self.prompt_tokens + candidates_token_count,
            prompt_tokens_details: [modality(self.prompt_tokens)],
        })
    }

    /// One response: every candidate's `part`, with `finish_reason` and the usage of `tokens`.
    fn response(&self, part: &OutPart, finish_reason: Option<&'static str>, tokens: u64) -> Vec<u8> {
        let candidates = (0..self.candidates)
            .map(|index| Candidate {
                content: CandidateContent { parts: [part.reborrow()], role: "model" },
                finish_reason,
                index,
            })
            .collect();
        let response = GenerateResponse {
            candidates,
            usage_metadata: self.usage_metadata(tokens),
            model_version: &self.model,
            response_id: &self.response_id,
        };
        serde_json::to_vec(&response).expect("a response serializes")
    }

    fn response_json(&self) -> Vec<u8> {
        let text = words(self.tokens);
        let part = match &self.tool {
            None => OutPart::Text { text: &text },
            Some(name) => OutPart::FunctionCall { function_call: FunctionCall { name, args: Args { text: &text } } },
        };
        self.response(&part, Some(self.finish_reason), self.tokens)
    }

    /// The JSON of each streamed response, all of them content chunks: one per word, or one
    /// whole function call (Gemini does not stream call arguments).
    fn chunks(&self) -> Vec<Vec<u8>> {
        if self.tool.is_some() || self.tokens == 0 {
            return vec![self.response_json()];
        }
        (0..self.tokens)
            .map(|i| {
                let last = i + 1 == self.tokens;
                let part = OutPart::Text { text: ChatPlan::word(i) };
                self.response(&part, last.then_some(self.finish_reason), i + 1)
            })
            .collect()
    }

    fn sse_frames(&self) -> Vec<(Role, Bytes)> {
        self.chunks().iter().map(|json| (Role::Content, sse_frame(json))).collect()
    }

    /// Without `alt=sse`: the responses as one JSON array, written element by element.
    fn array_frames(&self) -> Vec<(Role, Bytes)> {
        let mut frames: Vec<(Role, Bytes)> = self
            .chunks()
            .into_iter()
            .enumerate()
            .map(|(i, json)| {
                let mut frame = Vec::with_capacity(json.len() + 3);
                frame.extend_from_slice(if i == 0 { b"[" } else { b",\r\n" });
                frame.extend_from_slice(&json);
                (Role::Content, Bytes::from(frame))
            })
            .collect();
        frames.push((Role::Other, Bytes::from_static(b"]")));
        frames
    }
}

impl OutPart<'_> {
    fn reborrow(&self) -> OutPart<'_> {
        match self {
            OutPart::Text { text } => OutPart::Text { text },
            OutPart::FunctionCall { function_call } => OutPart::FunctionCall {
                function_call: FunctionCall { name: function_call.name, args: Args { text: function_call.args.text } },
            },
        }
    }
}

fn sse_frame(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 10);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\r\n\r\n");
    Bytes::from(frame)
}

/// A JSON array of one element, for an error before any response.
fn array_of(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 2);
    frame.push(b'[');
    frame.extend_from_slice(json);
    frame.push(b']');
    Bytes::from(frame)
}

/// The error element that ends a JSON-array stream early, and the array with it.
fn array_close(json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(json.len() + 4);
    frame.extend_from_slice(b",\r\n");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"]");
    Bytes::from(frame)
}
