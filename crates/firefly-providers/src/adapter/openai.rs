//! Any OpenAI-compatible upstream: OpenAI, DeepSeek, DashScope's compatible mode, Ollama,
//! vLLM, other relays.

use http::header::AUTHORIZATION;

use super::{join, json_headers, key_header, Adapter, BuildError, Operation, RequestContext, UpstreamRequest};

/// `{base}/chat/completions` (and `/embeddings`, `/models`) with `Authorization: Bearer
/// <key>`; no header when the key is empty. The model travels in the body.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenAiAdapter;

impl Adapter for OpenAiAdapter {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn build(&self, op: Operation, ctx: &RequestContext<'_>) -> Result<UpstreamRequest, BuildError> {
        let path: &[&str] = match op {
            Operation::ChatCompletions => &["chat", "completions"],
            Operation::Embeddings => &["embeddings"],
            Operation::ListModels => &["models"],
            Operation::ImageGenerations => &["images", "generations"],
            Operation::AudioSpeech => &["audio", "speech"],
            Operation::AudioTranscriptions => &["audio", "transcriptions"],
            Operation::CountTokens => return Err(BuildError::Unsupported { provider: "openai", operation: op }),
        };
        let url = join(ctx.base_url, None, path)?;
        let mut headers = json_headers(op);
        if !ctx.key.is_empty() {
            headers.insert(AUTHORIZATION, key_header("Bearer ", ctx.key)?);
        }
        Ok(UpstreamRequest { method: op.method(), url, headers })
    }
}
