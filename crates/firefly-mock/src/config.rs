use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How a [`MockUpstream`](crate::MockUpstream) behaves when a request does not say otherwise.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Content chunks (= completion tokens) per choice. Default 8.
    pub chunks: u32,
    /// Delay before each content chunk of a stream. Default zero.
    pub chunk_delay: Duration,
    /// Delay before the response head, on every endpoint. Default zero.
    pub latency: Duration,
    /// The models `GET /v1/models` lists.
    pub models: Vec<String>,
    /// When set, chat and embedding requests for a model not in `models` get OpenAI's 404
    /// `model_not_found`. Off by default, so any model name is answered.
    pub strict_models: bool,
    /// Length of the vectors `/v1/embeddings` returns when the request has no `dimensions`.
    pub embedding_dimensions: usize,
    /// API keys that fail with the given HTTP status (with OpenAI's error body for it).
    pub fail_keys: HashMap<String, u16>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            chunks: 8,
            chunk_delay: Duration::ZERO,
            latency: Duration::ZERO,
            models: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"].map(String::from).to_vec(),
            strict_models: false,
            embedding_dimensions: 8,
            fail_keys: HashMap::new(),
        }
    }
}
