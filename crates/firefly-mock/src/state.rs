//! What every handler shares: configuration, counters, the last request seen, fail keys, and
//! the admission steps all API requests go through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode, Uri};

use crate::error::ApiError;
use crate::knobs::Knobs;
use crate::{MockConfig, MockStats};

/// Which provider's URL and key header a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `/v1/...` with `Authorization: Bearer <key>`.
    OpenAi,
    /// `/openai/deployments/{deployment}/...?api-version=...` with `api-key: <key>`
    /// (a Bearer token is accepted too, as Azure does for Entra ID tokens).
    Azure,
}

/// One counter per endpoint, so a request touches one shared cache line, not two.
#[derive(Default)]
pub(crate) struct Counters {
    pub chat: AtomicU64,
    pub embeddings: AtomicU64,
    pub models: AtomicU64,
    pub other: AtomicU64,
    pub errors: AtomicU64,
    pub messages: AtomicU64,
    pub count_tokens: AtomicU64,
    pub gemini: AtomicU64,
    pub images: AtomicU64,
    pub speech: AtomicU64,
    pub transcriptions: AtomicU64,
    pub image_synthesis: AtomicU64,
    pub tasks: AtomicU64,
    pub multimodal_generation: AtomicU64,
    pub files: AtomicU64,
}

impl Counters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MockStats {
        let chat_completions = self.chat.load(Ordering::Relaxed);
        let embeddings = self.embeddings.load(Ordering::Relaxed);
        let models = self.models.load(Ordering::Relaxed);
        let other = self.other.load(Ordering::Relaxed);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut stats = MockStats {
            requests: 0,
            chat_completions,
            embeddings,
            models,
            errors: load(&self.errors),
            messages: load(&self.messages),
            count_tokens: load(&self.count_tokens),
            gemini: load(&self.gemini),
            images: load(&self.images),
            speech: load(&self.speech),
            transcriptions: load(&self.transcriptions),
            image_synthesis: load(&self.image_synthesis),
            tasks: load(&self.tasks),
            multimodal_generation: load(&self.multimodal_generation),
            files: load(&self.files),
        };
        stats.requests = chat_completions
            + embeddings
            + models
            + other
            + stats.messages
            + stats.count_tokens
            + stats.gemini
            + stats.images
            + stats.speech
            + stats.transcriptions
            + stats.image_synthesis
            + stats.tasks
            + stats.multimodal_generation;
        stats
    }
}

/// The last API request, as received (headers moved, body shared, nothing copied).
pub(crate) struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub(crate) struct Shared {
    pub config: MockConfig,
    pub counters: Counters,
    pub last: Mutex<Option<Recorded>>,
    fail_keys: RwLock<HashMap<String, u16>>,
    /// Lets requests skip the fail-key lock while no key is set (the benchmark's case).
    fail_key_count: AtomicUsize,
    seq: AtomicU64,
    /// `GET /v1/models`, serialized once.
    pub models_body: Bytes,
    /// The listening address, for URLs of generated files when a request has no `Host`.
    pub addr: SocketAddr,
    /// DashScope's asynchronous tasks, by id.
    pub tasks: crate::dashscope::Tasks,
}

/// Why admission refused a request, before a provider puts it in its own words.
pub(crate) enum Refusal {
    /// No key where the provider looks for one.
    MissingKey,
    /// A key listed in the fail keys, with its status.
    FailKey(StatusCode),
    /// `x-mock-status`, with `x-mock-error-code`.
    Injected(StatusCode, Option<String>),
}

/// How a provider other than OpenAI takes a request in: where its key is, which headers it
/// insists on, and how it words a refusal.
pub(crate) trait Provider {
    type Error: IntoResponse;

    fn key<'r>(headers: &'r HeaderMap, uri: &'r Uri) -> Option<&'r str>;

    /// Requirements checked once the key is there (Anthropic's `anthropic-version`).
    fn check(_headers: &HeaderMap) -> Result<(), Self::Error> {
        Ok(())
    }

    fn refused(refusal: Refusal) -> Self::Error;
}

impl Shared {
    pub(crate) fn new(mut config: MockConfig, addr: SocketAddr) -> Shared {
        let fail_keys = std::mem::take(&mut config.fail_keys);
        let models_body = crate::models::list_body(&config.models);
        Shared {
            counters: Counters::default(),
            last: Mutex::new(None),
            fail_key_count: AtomicUsize::new(fail_keys.len()),
            fail_keys: RwLock::new(fail_keys),
            seq: AtomicU64::new(0),
            models_body,
            addr,
            tasks: crate::dashscope::Tasks::default(),
            config,
        }
    }

    /// A number unique to this mock's lifetime, for response and tool call ids.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn set_fail_key(&self, key: String, status: u16) {
        let mut keys = self.fail_keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(key, status);
        self.fail_key_count.store(keys.len(), Ordering::Release);
    }

    pub(crate) fn clear_fail_key(&self, key: &str) {
        let mut keys = self.fail_keys.write().unwrap_or_else(|e| e.into_inner());
        keys.remove(key);
        self.fail_key_count.store(keys.len(), Ordering::Release);
    }

    fn fail_status(&self, key: &str) -> Option<u16> {
        if self.fail_key_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.fail_keys.read().unwrap_or_else(|e| e.into_inner()).get(key).copied()
    }

    /// The steps every API request takes before its endpoint's own work: read the `x-mock-*`
    /// headers, record the request, check the key (missing → 401, fail key → its status),
    /// answer an `x-mock-status`. `Err` is the finished error response, already delayed by the
    /// request's latency.
    pub(crate) async fn admit(
        &self,
        flavor: Flavor,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: &Bytes,
    ) -> Result<Knobs, Response> {
        let mut knobs = Knobs::from_headers(&headers);
        let verdict = match api_key(&headers, flavor) {
            _ if flavor == Flavor::Azure && !has_api_version(&uri) => Err(ApiError::azure_missing_api_version()),
            None => Err(ApiError::missing_key()),
            Some(key) => match self.fail_status(key).and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(status) => Err(ApiError::injected(status, None)),
                None => Ok(()),
            },
        };
        let verdict = verdict.and_then(|()| match knobs.status() {
            Some(status) => Err(ApiError::injected(status, knobs.take_error_code())),
            None => Ok(()),
        });
        self.record(Recorded { method, uri, headers, body: body.clone() });
        match verdict {
            Ok(()) => Ok(knobs),
            Err(error) => Err(self.reject(&knobs, error).await),
        }
    }

    /// [`admit`](Self::admit) for the providers with their own key headers and error bodies.
    pub(crate) async fn admit_as<P: Provider>(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: &Bytes,
    ) -> Result<Knobs, Response> {
        let mut knobs = Knobs::from_headers(&headers);
        let verdict = match P::key(&headers, &uri) {
            None => Err(P::refused(Refusal::MissingKey)),
            Some(key) => match self.fail_status(key).and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(status) => Err(P::refused(Refusal::FailKey(status))),
                None => P::check(&headers),
            },
        };
        let verdict = verdict.and_then(|()| match knobs.status() {
            Some(status) => Err(P::refused(Refusal::Injected(status, knobs.take_error_code()))),
            None => Ok(()),
        });
        self.record(Recorded { method, uri, headers, body: body.clone() });
        match verdict {
            Ok(()) => Ok(knobs),
            Err(error) => Err(self.reject(&knobs, error).await),
        }
    }

    /// The `http://host:port` clients reach this mock at, for the URLs of generated files:
    /// the request's `Host`, else the listening address.
    pub(crate) fn origin(&self, headers: &HeaderMap) -> String {
        match headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| !h.is_empty()) {
            Some(host) => format!("http://{host}"),
            None => format!("http://{}", self.addr),
        }
    }

    /// Answers `error` after the request's latency, counting it.
    pub(crate) async fn reject(&self, knobs: &Knobs, error: impl IntoResponse) -> Response {
        Counters::count(&self.counters.errors);
        self.delay(knobs).await;
        error.into_response()
    }

    /// Waits the request's latency (time before the response head).
    pub(crate) async fn delay(&self, knobs: &Knobs) {
        let latency = knobs.latency(&self.config);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    fn record(&self, recorded: Recorded) {
        let previous = self.last.lock().unwrap_or_else(|e| e.into_inner()).replace(recorded);
        // The previous request's buffers are freed outside the lock.
        drop(previous);
    }
}

/// The key a request presents, if any.
pub(crate) fn api_key(headers: &HeaderMap, flavor: Flavor) -> Option<&str> {
    if flavor == Flavor::Azure {
        if let Some(key) = headers.get("api-key").and_then(|v| v.to_str().ok()) {
            let key = key.trim();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    bearer(headers)
}

/// Whether the query string has an `api-version` parameter with a value.
pub(crate) fn has_api_version(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|pair| pair.strip_prefix("api-version=").is_some_and(|v| !v.is_empty())))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `Authorization: Bearer <token>`'s token, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A non-empty header value.
pub(crate) fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// A request to an endpoint that has an OpenAI route and an Azure route
/// (`/openai/deployments/{deployment}/...`): what its handler needs, the headers moved out
/// rather than copied.
pub(crate) struct Incoming {
    pub flavor: Flavor,
    pub deployment: Option<String>,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let deployment = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .ok()
            .and_then(|params| params.iter().find(|(name, _)| *name == "deployment").map(|(_, v)| v.to_owned()));
        let flavor = if deployment.is_some() { Flavor::Azure } else { Flavor::OpenAi };
        let (method, uri, headers) = (parts.method.clone(), parts.uri.clone(), std::mem::take(&mut parts.headers));
        // The body limit (`DefaultBodyLimit`) is read from the extensions, which stay.
        let body =
            Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        Ok(Incoming { flavor, deployment, method, uri, headers, body })
    }
}
