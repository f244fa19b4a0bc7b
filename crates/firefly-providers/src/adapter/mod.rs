//! Provider adapters: how to address one upstream channel, and what its failures mean.
//!
//! An [`Adapter`] turns an [`Operation`] on a channel ([`RequestContext`]: base URL, API
//! version, provider key, upstream model) into the method, URL and headers of the upstream
//! request, and sorts the upstream's error answers into [`UpstreamFailure`]s that tell the
//! relay whether to retry, fail the client, or disable the channel. A [`Registry`] maps the
//! channel's provider type to its adapter, so a provider is added by registering one more
//! adapter, without touching the relay's routing.
//!
//! | provider | adapter | URL | key |
//! |---|---|---|---|
//! | `openai` | [`OpenAiAdapter`] | `{base}/chat/completions`, `{base}/embeddings`, `{base}/models`, the base ending in its version (`https://api.openai.com/v1`, `https://api.deepseek.com/v1`, `https://dashscope.aliyuncs.com/compatible-mode/v1`, `http://localhost:11434/v1`) | `Authorization: Bearer` |
//! | `azure` | [`AzureAdapter`] | `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…` | `api-key` |
//! | `anthropic` | [`AnthropicAdapter`] | `{base}/v1/messages`, `{base}/v1/messages/count_tokens`, `{base}/v1/models` (`https://api.anthropic.com`, a base ending in `/v1` accepted) | `x-api-key`, `anthropic-version` |
//! | `gemini` | [`GeminiAdapter`](crate::gemini::GeminiAdapter) | `{base}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` for streams), `{base}/v1beta/models`; the base `https://generativelanguage.googleapis.com`, with or without its version | `x-goog-api-key` |
//! | `dashscope` | [`DashScopeAdapter`](crate::dashscope::DashScopeAdapter) | `{base}/api/v1/services/aigc/text2image/image-synthesis` (images, asynchronous: `X-DashScope-Async: enable`, then `{base}/api/v1/tasks/{task_id}`), `{base}/api/v1/services/aigc/multimodal-generation/generation` (speech), the base `https://dashscope.aliyuncs.com` or `https://dashscope-intl.aliyuncs.com`; its chat goes through an `openai` channel on `{base}/compatible-mode/v1` | `Authorization: Bearer` |

mod azure;
mod failure;
mod openai;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use url::Url;

pub use azure::{AzureAdapter, AZURE_DEFAULT_API_VERSION};
pub use failure::{classify_openai_compatible, retry_after, ErrorInfo, UpstreamFailure};
pub use openai::OpenAiAdapter;

use crate::anthropic::AnthropicAdapter;

/// What the relay asks an upstream to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A chat turn in the adapter's wire format: OpenAI's chat completions, Anthropic's
    /// messages, Gemini's `generateContent` (`streamGenerateContent` when
    /// [`RequestContext::stream`]).
    ChatCompletions,
    Embeddings,
    ListModels,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI's `POST /images/generations`; DashScope's asynchronous image synthesis.
    ImageGenerations,
    /// OpenAI's `POST /audio/speech`; DashScope's speech synthesis.
    AudioSpeech,
    /// OpenAI's `POST /audio/transcriptions` (multipart).
    AudioTranscriptions,
}

impl Operation {
    pub fn method(self) -> Method {
        match self {
            Operation::ListModels => Method::GET,
            _ => Method::POST,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::ChatCompletions => "chat completions",
            Operation::Embeddings => "embeddings",
            Operation::ListModels => "list models",
            Operation::CountTokens => "count tokens",
            Operation::ImageGenerations => "image generations",
            Operation::AudioSpeech => "speech",
            Operation::AudioTranscriptions => "transcriptions",
        })
    }
}

/// The request and response bodies an adapter's upstream speaks. The relay passes bytes
/// through when the client speaks the same format, and transcodes otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireFormat {
    /// OpenAI's chat completions, embeddings and models API.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`generateContent`).
    Gemini,
    /// DashScope's native API (asynchronous image synthesis, speech synthesis); its chat
    /// goes through the OpenAI-compatible mode, an `openai` channel.
    DashScope,
}

/// The channel an operation goes to, and the model it is for.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// The channel's base URL (see the table in the [module docs](self)).
    pub base_url: &'a str,
    /// The channel's API version, where the provider has one (Azure's `api-version`).
    pub api_version: Option<&'a str>,
    /// The provider key; empty for upstreams that take none (a local Ollama).
    pub key: &'a str,
    /// The upstream's name for the model, after the channel's mapping: Azure's deployment.
    pub model: Option<&'a str>,
    /// Whether the client asked for a stream (Gemini streams at another URL).
    pub stream: bool,
}

/// The head of an upstream request; the relay adds the body.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    /// A `url::Url`, which `reqwest` takes as it is; [`uri`](Self::uri) for `hyper`.
    pub url: Url,
    /// Authentication and `content-type`; key headers are marked sensitive.
    pub headers: HeaderMap,
}

impl UpstreamRequest {
    pub fn uri(&self) -> http::Uri {
        self.url.as_str().parse().expect("a url::Url is a valid URI")
    }
}

/// Why a channel's configuration cannot make a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
    #[error("{provider} needs the upstream model (deployment) for {operation}")]
    MissingModel { provider: &'static str, operation: Operation },
    #[error("the provider key cannot be sent in an HTTP header")]
    InvalidKey,
    #[error("{provider} does not support {operation}")]
    Unsupported { provider: &'static str, operation: Operation },
}

/// One provider's addressing and error semantics.
pub trait Adapter: Send + Sync + 'static {
    /// The provider type channels name, e.g. `openai`.
    fn name(&self) -> &'static str;

    fn wire_format(&self) -> WireFormat {
        WireFormat::OpenAi
    }

    /// The method, URL and headers of `op` on the channel.
    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError>;

    /// What an error answer (status, headers, body) means for the relay. Connection errors
    /// and timeouts, which have no answer, are [`UpstreamFailure::CONNECTION`].
    fn classify(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
        classify_openai_compatible(status, headers, body)
    }
}

/// Provider types and their adapters. [`Registry::default`] knows `openai`, `azure`,
/// `anthropic`, `gemini` and `dashscope`.
#[derive(Clone)]
pub struct Registry {
    adapters: Vec<Arc<dyn Adapter>>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry::empty();
        registry.register(Arc::new(OpenAiAdapter));
        registry.register(Arc::new(AzureAdapter));
        registry.register(Arc::new(AnthropicAdapter));
        registry.register(Arc::new(crate::gemini::GeminiAdapter));
        registry.register(Arc::new(crate::dashscope::DashScopeAdapter));
        registry
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.providers()).finish()
    }
}

impl Registry {
    pub fn empty() -> Registry {
        Registry { adapters: Vec::new() }
    }

    /// Adds `adapter` under its name, returning the adapter it replaces.
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) -> Option<Arc<dyn Adapter>> {
        match self.adapters.iter_mut().find(|a| a.name() == adapter.name()) {
            Some(slot) => Some(std::mem::replace(slot, adapter)),
            None => {
                self.adapters.push(adapter);
                None
            }
        }
    }

    /// The adapter for a channel's provider type. A handful of providers: a scan beats a hash.
    pub fn get(&self, provider: &str) -> Option<&dyn Adapter> {
        self.adapters.iter().find(|a| a.name() == provider).map(|a| &**a)
    }

    /// The adapter, shared, for callers that keep it beyond the registry's borrow.
    pub fn get_shared(&self, provider: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters.iter().find(|a| a.name() == provider).cloned()
    }

    pub fn providers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.adapters.iter().map(|a| a.name())
    }
}

/// Parses a channel's base URL (HTTP or HTTPS) and appends path segments, each
/// percent-encoded as one segment.
pub(crate) fn join(base: &str, drop_last: Option<&str>, segments: &[&str]) -> Result<Url, BuildError> {
    let invalid = |reason: &str| BuildError::InvalidBaseUrl { url: base.to_owned(), reason: reason.to_owned() };
    let mut url = Url::parse(base.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    url.set_fragment(None);
    // Tolerates a base that already ends in the prefix the provider adds.
    let drop = drop_last.is_some_and(|last| {
        url.path_segments().and_then(|mut segments| segments.rfind(|s| !s.is_empty())) == Some(last)
    });
    {
        let mut path = url.path_segments_mut().map_err(|()| invalid("cannot be a base"))?;
        path.pop_if_empty();
        if drop {
            path.pop();
        }
        path.extend(segments);
    }
    Ok(url)
}

/// A header value holding a key, marked sensitive so it is never logged.
fn key_header(prefix: &str, key: &str) -> Result<HeaderValue, BuildError> {
    let mut value =
        if prefix.is_empty() { HeaderValue::from_str(key) } else { HeaderValue::from_str(&format!("{prefix}{key}")) }
            .map_err(|_| BuildError::InvalidKey)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `content-type: application/json` on a POST; a multipart upload's content type (with its
/// boundary) is the client's, which the relay sets.
fn json_headers(op: Operation) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    if op.method() == Method::POST && op != Operation::AudioTranscriptions {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers
}
