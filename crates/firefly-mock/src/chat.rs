//! `POST /v1/chat/completions` and Azure's `POST /openai/deployments/{d}/chat/completions`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue};
use serde::Deserialize;

use crate::error::ApiError;
use crate::knobs::{Knobs, Metadata};
use crate::prompt::MessagesChars;
use crate::state::{unix_now, Counters, Incoming, Shared};
use crate::stream::ChatStream;
use crate::wire::{self, Usage};

/// OpenAI caps `n` at 128.
const MAX_CHOICES: u32 = 128;

/// The completion text, one word per chunk, cycling. Every word has a leading space except
/// the very first one of a completion, so any number of chunks reads as text.
const WORDS: [&str; 8] = [" Firefly", " mock", " says", " hello", " from", " the", " local", " upstream."];

/// What the request asks for; everything else in the body is accepted and ignored
/// (`response_format`, `temperature`, `user`, ...).
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<MessagesChars>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    function: Option<ToolFunction<'a>>,
}

#[derive(Deserialize)]
struct ToolFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// `POST` on this endpoint's OpenAI route, or on its Azure route (`{deployment}` in the path).
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Incoming) -> Response {
    Counters::count(&shared.counters.chat);
    answer(&shared, request).await
}

async fn answer(shared: &Shared, request: Incoming) -> Response {
    let Incoming { flavor, deployment, method, uri, headers, body } = request;
    let knobs = match shared.admit(flavor, method, uri, headers, &body).await {
        Ok(knobs) => knobs,
        Err(response) => return response,
    };
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return shared.reject(&knobs, parse_error(e)).await,
    };
    let mut knobs = match &request.metadata {
        Some(metadata) => knobs.or(Knobs::from_metadata(metadata)),
        None => knobs,
    };
    if let Some(status) = knobs.status() {
        let code = knobs.take_error_code();
        return shared.reject(&knobs, ApiError::injected(status, code)).await;
    }
    let plan = match Plan::new(shared, &knobs, &request, deployment.as_deref()) {
        Ok(plan) => plan,
        Err(error) => return shared.reject(&knobs, error).await,
    };
    shared.delay(&knobs).await;
    if request.stream == Some(true) {
        let include_usage = request.stream_options.and_then(|o| o.include_usage) == Some(true);
        let stream = ChatStream::new(plan, include_usage, knobs.chunk_delay(&shared.config), knobs.disconnect_after());
        let mut response = Body::from_stream(stream).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        response
    } else {
        json_response(plan.completion_json())
    }
}

pub(crate) fn parse_error(e: serde_json::Error) -> ApiError {
    match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid_body(e.to_string()),
        _ => ApiError::unparsable_json(),
    }
}

pub(crate) fn json_response(body: Vec<u8>) -> Response {
    let mut response = Bytes::from(body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Everything a completion consists of, decided once for both response shapes.
pub(crate) struct Plan {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub choices: u32,
    /// Content chunks (= completion tokens) per choice.
    pub tokens: u64,
    pub finish_reason: &'static str,
    /// The function name, when the answer is a tool call.
    pub tool: Option<String>,
    /// `None` under `x-mock-no-usage`.
    pub usage: Option<Usage>,
}

impl Plan {
    fn new(shared: &Shared, knobs: &Knobs, request: &ChatRequest, deployment: Option<&str>) -> Result<Plan, ApiError> {
        let model = match (request.model.as_deref(), deployment) {
            (Some(model), _) if !model.is_empty() => model,
            (_, Some(deployment)) => deployment,
            _ => return Err(ApiError::missing_model()),
        };
        if shared.config.strict_models && deployment.is_none() && !shared.config.models.iter().any(|m| m == model) {
            return Err(ApiError::model_not_found(model));
        }
        let Some(messages) = request.messages else {
            return Err(ApiError::missing_parameter("messages"));
        };
        if messages.messages == 0 {
            return Err(ApiError::invalid_value("messages", "[] is too short - 'messages'".into()));
        }
        let choices = request.n.unwrap_or(1);
        if !(1..=MAX_CHOICES).contains(&choices) {
            return Err(ApiError::invalid_value("n", format!("{choices} is not between 1 and {MAX_CHOICES} - 'n'")));
        }
        let wanted = knobs.chunks(&shared.config);
        let tokens = match request.max_completion_tokens.or(request.max_tokens) {
            Some(limit) => wanted.min(limit),
            None => wanted,
        };
        let tool = knobs.tool_call().then(|| {
            let declared = request.tools.iter().flatten().find_map(|t| t.function.as_ref());
            declared.map_or_else(|| "mock_tool".to_owned(), |f| f.name.clone().into_owned())
        });
        let finish_reason = if tokens < wanted {
            "length"
        } else if tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        let prompt_tokens = (messages.chars / 4).max(1);
        let usage = (!knobs.no_usage()).then(|| Usage::new(prompt_tokens, tokens * u64::from(choices)));
        Ok(Plan {
            id: format!("chatcmpl-{:024x}", shared.next_seq()),
            created: unix_now(),
            model: model.to_owned(),
            choices,
            tokens,
            finish_reason,
            tool,
            usage,
        })
    }

    /// The `i`-th content token.
    pub(crate) fn word(i: u64) -> &'static str {
        let word = WORDS[(i % WORDS.len() as u64) as usize];
        if i == 0 {
            &word[1..]
        } else {
            word
        }
    }

    pub(crate) fn content(&self) -> String {
        words(self.tokens)
    }

    pub(crate) fn tool_call_id(&self, choice: u32) -> String {
        format!("call_{}{choice:04x}", &self.id["chatcmpl-".len() + 4..])
    }

    /// The `i`-th fragment of the tool call's arguments, `{"text":"<content>"}` in all.
    pub(crate) fn arguments_fragment(&self, i: u64) -> Cow<'static, str> {
        arguments_fragment(i, self.tokens)
    }

    /// The arguments carried by the tool call's first chunk: empty, as OpenAI sends them, unless
    /// there are no fragments to follow.
    pub(crate) fn arguments_head(&self) -> &'static str {
        if self.tokens == 0 {
            EMPTY_ARGUMENTS
        } else {
            ""
        }
    }

    pub(crate) fn arguments(&self) -> String {
        if self.tokens == 0 {
            return EMPTY_ARGUMENTS.to_owned();
        }
        format!("{ARGUMENTS_OPEN}{}{ARGUMENTS_CLOSE}", self.content())
    }

    fn completion_json(&self) -> Vec<u8> {
        let content = if self.tool.is_some() { self.arguments() } else { self.content() };
        let call_ids: Vec<String> = match &self.tool {
            Some(_) => (0..self.choices).map(|c| self.tool_call_id(c)).collect(),
            None => Vec::new(),
        };
        let choices = (0..self.choices)
            .map(|index| wire::Choice {
                index,
                message: match &self.tool {
                    None => wire::Message {
                        role: "assistant",
                        content: Some(&content),
                        tool_calls: None,
                        refusal: (),
                        annotations: [],
                    },
                    Some(name) => wire::Message {
                        role: "assistant",
                        content: None,
                        tool_calls: Some([wire::ToolCall {
                            id: &call_ids[index as usize],
                            kind: "function",
                            function: wire::Function { name, arguments: &content },
                        }]),
                        refusal: (),
                        annotations: [],
                    },
                },
                logprobs: (),
                finish_reason: self.finish_reason,
            })
            .collect();
        let completion = wire::Completion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices,
            usage: self.usage,
            service_tier: wire::SERVICE_TIER,
            system_fingerprint: wire::FINGERPRINT,
        };
        serde_json::to_vec(&completion).expect("a completion serializes")
    }
}

const ARGUMENTS_OPEN: &str = "{\"text\":\"";
const ARGUMENTS_CLOSE: &str = "\"}";
const EMPTY_ARGUMENTS: &str = "{\"text\":\"\"}";

/// The `i`-th of `tokens` fragments of the arguments `{"text":"<words>"}`: the first opens the
/// object, the last closes it, the others are bare words.
pub(crate) fn arguments_fragment(i: u64, tokens: u64) -> Cow<'static, str> {
    let first = i == 0;
    let last = i + 1 == tokens;
    match (first, last) {
        (false, false) => Cow::Borrowed(Plan::word(i)),
        _ => {
            let mut fragment = String::with_capacity(24);
            if first {
                fragment.push_str(ARGUMENTS_OPEN);
            }
            fragment.push_str(Plan::word(i));
            if last {
                fragment.push_str(ARGUMENTS_CLOSE);
            }
            Cow::Owned(fragment)
        }
    }
}

/// The first `tokens` words of the completion text.
pub(crate) fn words(tokens: u64) -> String {
    let mut text = String::with_capacity(tokens as usize * 8);
    for i in 0..tokens {
        text.push_str(Plan::word(i));
    }
    text
}
