//! The outermost service, one per request and without a boxed future: the request id
//! (taken from `x-request-id` or generated, and returned), the time limit on answering
//! (except the relay's `/v1` routes, which have their own upstream timeouts), a panic
//! turned into a 500, error bodies rendered with the request id, the security headers,
//! and per request the HTTP metrics and one log line. Nothing from headers or bodies is
//! logged: no secret can leak.
//!
//! It is written as a plain [`Service`] rather than `axum::middleware::from_fn` layers:
//! each of those cloned the service below it into a new box and boxed its future, for
//! every request; this is a few fields on the stack.

use super::context::{new_request_id, valid_request_id, ClientChoseId, RequestId, REQUEST_ID};
use super::error::{error_body_for, ApiError, ErrorPayload};
use super::extract::TrustedProxies;
use super::headers::add_security_headers;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use firefly_core::ErrorCode;
use http::{HeaderValue, Method};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Timeout;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

/// Settings of [`Edge`].
#[derive(Clone)]
pub struct EdgeLayer {
    pub timeout: Duration,
    pub hsts: bool,
    pub trusted_proxies: TrustedProxies,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, settings: self.clone() }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    settings: EdgeLayer,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let client_id = req.headers().get(&REQUEST_ID).and_then(valid_request_id);
        if client_id.is_some() {
            req.extensions_mut().insert(ClientChoseId);
        }
        let id = client_id.unwrap_or_else(new_request_id);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let timed = !path.starts_with("/v1/");
        req.extensions_mut().insert(RequestId(id.clone()));
        req.extensions_mut().insert(self.settings.trusted_proxies.clone());

        let span = tracing::info_span!("request", request_id = %id);
        let called = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| self.inner.call(req))));
        let state = match called {
            Ok(future) if timed => State::Timed { future: tokio::time::timeout(self.settings.timeout, future) },
            Ok(future) => State::Plain { future },
            Err(panic) => State::Done { response: Some(panicked(panic)) },
        };
        EdgeFuture {
            state: state.instrument(span),
            finish: Some(Finish { start, id, method, path, hsts: self.settings.hsts }),
        }
    }
}

pin_project! {
    pub struct EdgeFuture<F> {
        #[pin]
        state: Instrumented<State<F>>,
        finish: Option<Finish>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Plain { #[pin] future: F },
        Timed { #[pin] future: Timeout<F> },
        Done { response: Option<Response> },
    }
}

impl<F> Future for State<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let polled = catch_unwind(AssertUnwindSafe(|| match self.project() {
            StateProj::Plain { future } => future.poll(cx).map(|r| r.unwrap_or_else(|e| match e {})),
            StateProj::Timed { future } => future.poll(cx).map(|r| match r {
                Ok(r) => r.unwrap_or_else(|e| match e {}),
                Err(_) => ApiError::from(ErrorCode::Timeout).into_response(),
            }),
            StateProj::Done { response } => Poll::Ready(response.take().expect("polled after completion")),
        }));
        polled.unwrap_or_else(|panic| Poll::Ready(panicked(panic)))
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.state.poll(cx));
        let finish = this.finish.take().expect("polled after completion");
        Poll::Ready(Ok(finish.run(response)))
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    super::error::internal(format!("handler panicked: {what}")).into_response()
}

/// What is done with the response: the request's own data, kept from the call.
struct Finish {
    start: Instant,
    id: String,
    method: Method,
    path: String,
    hsts: bool,
}

impl Finish {
    fn run(self, mut response: Response) -> Response {
        let Finish { start, id, method, path, hsts } = self;
        let code = response.extensions_mut().remove::<ErrorPayload>().map(|ErrorPayload(error)| {
            let body = error_body_for(&path, &error, &id).to_string();
            let headers = response.headers_mut();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.remove(http::header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(body);
            error.code
        });
        add_security_headers(response.headers_mut(), hsts);
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID.clone(), value);
        }

        let status = response.status().as_u16();
        let elapsed = start.elapsed();
        // Set by the router when a route matched.
        let route = response.extensions().get::<MatchedPath>();
        let route = route.map_or("unmatched", |p| p.as_str());
        crate::ops::metrics::record_request(method.as_str(), route, status, elapsed);
        // Outside the request's span, with the id as a field of its own.
        tracing::info!(
            target: "firefly::http",
            request_id = id.as_str(),
            method = method.as_str(),
            path = path.as_str(),
            route,
            status,
            error_code = code.map(|c| c.as_str()),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        response
    }
}

/// Hands the matched route's template (`/api/keys/{id}`) out to [`Edge`], which runs
/// outside the router, for the metrics and the access log: a route layer.
#[derive(Clone, Copy)]
pub struct KeepMatchedPathLayer;

impl<S> Layer<S> for KeepMatchedPathLayer {
    type Service = KeepMatchedPath<S>;

    fn layer(&self, inner: S) -> KeepMatchedPath<S> {
        KeepMatchedPath { inner }
    }
}

#[derive(Clone)]
pub struct KeepMatchedPath<S> {
    inner: S,
}

impl<S> Service<Request> for KeepMatchedPath<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = WithMatchedPath<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let matched = req.extensions().get::<MatchedPath>().cloned();
        WithMatchedPath { future: self.inner.call(req), matched }
    }
}

pin_project! {
    pub struct WithMatchedPath<F> {
        #[pin]
        future: F,
        matched: Option<MatchedPath>,
    }
}

impl<F> Future for WithMatchedPath<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if let Some(matched) = this.matched.take() {
            response.extensions_mut().insert(matched);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn edge() -> EdgeLayer {
        EdgeLayer { timeout: Duration::from_secs(5), hsts: true, trusted_proxies: TrustedProxies::default() }
    }

    fn request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_panic_in_call_or_in_the_future_is_a_500_with_the_request_id() {
        let in_call = tower::service_fn(|_: Request| -> std::future::Ready<Result<Response, Infallible>> {
            panic!("boom in call")
        });
        let response = edge().layer(in_call).oneshot(request("/api/x")).await.unwrap();
        assert_eq!(response.status(), 500);
        let id = response.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "internal.error", "{body}");
        assert_eq!(body["error"]["request_id"], id.as_str());

        let in_poll = tower::service_fn(|_: Request| async move {
            tokio::task::yield_now().await;
            if true {
                panic!("boom in poll");
            }
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        });
        let response = edge().layer(in_poll).oneshot(request("/v1/chat/completions")).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(body_json(response).await["error"]["code"], "internal.error");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_time_out_except_on_the_relay_routes() {
        let slow = tower::service_fn(|_: Request| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<Response, Infallible>(Response::new(Body::from("late")))
        });
        let response = edge().layer(slow).oneshot(request("/api/slow")).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(body_json(response).await["error"]["code"], "request.timeout");

        let response = edge().layer(slow).oneshot(request("/v1/chat/completions")).await.unwrap();
        assert_eq!(response.status(), 200);
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"late");
    }

    #[tokio::test]
    async fn the_request_id_is_the_clients_when_valid_and_handlers_see_it() {
        let echo = tower::service_fn(|req: Request| async move {
            let id = req.extensions().get::<RequestId>().unwrap().0.clone();
            let chose = req.extensions().get::<ClientChoseId>().is_some();
            let mut response = Response::new(Body::from(format!("{id} {chose}")));
            // A header the handler set itself is kept.
            response.headers_mut().insert("cache-control", HeaderValue::from_static("max-age=5"));
            Ok::<Response, Infallible>(response)
        });
        let mut req = request("/api/echo");
        req.headers_mut().insert(&REQUEST_ID, HeaderValue::from_static("client-1"));
        let response = edge().layer(echo).oneshot(req).await.unwrap();
        assert_eq!(response.headers()[&REQUEST_ID], "client-1");
        assert_eq!(response.headers()["cache-control"], "max-age=5");
        assert!(response.headers().contains_key("strict-transport-security"));
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"client-1 true");

        let mut req = request("/api/echo");
        req.headers_mut().insert(&REQUEST_ID, HeaderValue::from_static("bad id with spaces"));
        let response = edge().layer(echo).oneshot(req).await.unwrap();
        let id = response.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(bytes, format!("{id} false"));
    }
}
