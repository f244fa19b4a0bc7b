//! Azure OpenAI: OpenAI's bodies behind per-deployment URLs and an `api-key` header.

use http::HeaderName;

use super::{join, json_headers, key_header, Adapter, BuildError, Operation, RequestContext, UpstreamRequest};

/// The `api-version` used when a channel names none: the latest generally available dated
/// version of the data-plane inference API.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// Azure OpenAI, with the resource endpoint (`https://{resource}.openai.azure.com`) as the
/// base URL and the channel's upstream model name as the deployment:
///
/// - dated API versions: `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={v}`
///   (and `/embeddings`); models are listed at `{endpoint}/openai/models?api-version={v}`;
/// - API version `v1` (Azure's version-less API): `{endpoint}/openai/v1/chat/completions`,
///   where the body's `model` names the deployment, as [`ChatRequest::upstream_body`]
///   already sets it.
///
/// The key goes in `api-key`. A base URL that already ends in `/openai` is accepted.
///
/// [`ChatRequest::upstream_body`]: crate::openai::ChatRequest::upstream_body
#[derive(Clone, Copy, Debug, Default)]
pub struct AzureAdapter;

const API_KEY: HeaderName = HeaderName::from_static("api-key");

impl Adapter for AzureAdapter {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
        let version = ctx.api_version.map(str::trim).filter(|v| !v.is_empty()).unwrap_or(AZURE_DEFAULT_API_VERSION);
        let operation: &[&str] = match op {
            Operation::ChatCompletions => &["chat", "completions"],
            Operation::Embeddings => &["embeddings"],
            Operation::ListModels => &["models"],
            Operation::ImageGenerations => &["images", "generations"],
            Operation::AudioSpeech => &["audio", "speech"],
            Operation::AudioTranscriptions => &["audio", "transcriptions"],
            Operation::CountTokens => return Err(BuildError::Unsupported { provider: "azure", operation: op }),
        };
        let url = if version.eq_ignore_ascii_case("v1") {
            let mut url = join(ctx.base_url, Some("openai"), &["openai", "v1"])?;
            url.path_segments_mut().expect("checked by join").extend(operation);
            url
        } else {
            let mut url = match op {
                Operation::ListModels => join(ctx.base_url, Some("openai"), &["openai", "models"])?,
                _ => {
                    let deployment = ctx
                        .model
                        .filter(|m| !m.is_empty())
                        .ok_or(BuildError::MissingModel { provider: "azure", operation: op })?;
                    let mut url = join(ctx.base_url, Some("openai"), &["openai", "deployments", deployment])?;
                    url.path_segments_mut().expect("checked by join").extend(operation);
                    url
                }
            };
            url.query_pairs_mut().append_pair("api-version", version);
            url
        };
        let mut headers = json_headers(op);
        if !ctx.key.is_empty() {
            headers.insert(API_KEY, key_header("", ctx.key)?);
        }
        Ok(UpstreamRequest { method: op.method(), url, headers })
    }
}
