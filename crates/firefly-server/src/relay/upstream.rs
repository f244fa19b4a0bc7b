//! The HTTP client of the relay's hot path: hyper's pooled HTTP/1.1 client with rustls
//! (webpki roots) for HTTPS, no redirects, `TCP_NODELAY`, a connect timeout.
//!
//! reqwest serves everything else (probes, task polls, fetches); here it cost about a
//! tenth of the relay's CPU per request: a `Url` parsed and re-rendered as an `http::Uri`
//! on every send, plus its redirect and retry layers, which the relay never uses. Request
//! heads are built once per channel, operation, model and key ([`Upstream::head`]) and
//! sent as a cheap clone.
//!
//! Proxies: as with reqwest, `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either
//! case) are honoured, read once at start. Upstreams are reached through the proxy with
//! `CONNECT` (TLS end to end for HTTPS upstreams); the proxy itself is spoken to in plain
//! HTTP, with `user:password@` in its URL sent as basic authentication.
//!
//! [`Upstream::head`]: super::table::Upstream::head

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;

type Connector = hyper_rustls::HttpsConnector<ProxyConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP to the upstream, or a `CONNECT` tunnel through the proxy the environment names
/// for it.
#[derive(Clone)]
pub struct ProxyConnector {
    http: HttpConnector,
    proxies: Arc<Matcher>,
}

impl tower::Service<Uri> for ProxyConnector {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.proxies.intercept(&dst) {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.http.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { tunnel.oneshot(dst).await.map_err(Into::into) })
            }
            None => {
                let http = self.http.clone();
                Box::pin(async move { http.oneshot(dst).await.map_err(Into::into) })
            }
        }
    }
}

/// A request head ready to send: built once, cloned per request.
#[derive(Clone, Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl Head {
    /// From an adapter's request; `None` when its URL is not a valid URI (never for an
    /// `http`/`https` URL).
    pub fn new(request: firefly_providers::adapter::UpstreamRequest) -> Option<Head> {
        let uri = request.url.as_str().parse().ok()?;
        Some(Head { method: request.method, uri, headers: request.headers })
    }
}

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, Full<Bytes>>,
}

/// Why a request got no answer; the message never names the URL (it names the channel's
/// host, which clients must not learn).
#[derive(Debug)]
pub struct SendError {
    pub connect: bool,
    pub message: String,
}

impl UpstreamClient {
    /// With the proxies the environment names.
    pub fn new(connect_timeout: Duration) -> anyhow::Result<UpstreamClient> {
        Self::with_proxies(connect_timeout, Matcher::from_env())
    }

    pub fn with_proxies(connect_timeout: Duration, proxies: Matcher) -> anyhow::Result<UpstreamClient> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ProxyConnector { http, proxies: Arc::new(proxies) });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(UpstreamClient { client })
    }

    pub async fn send(
        &self,
        head: &Head,
        extra: Option<HeaderMap>,
        body: Bytes,
    ) -> Result<Response<Incoming>, SendError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&head.headers);
        if let Some(extra) = extra {
            headers.extend(extra);
        }
        self.client.request(request).await.map_err(|e| {
            let connect = e.is_connect();
            let mut detail = String::new();
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            let kind = if connect { "connect" } else { "request" };
            SendError { connect, message: format!("{kind}: {detail}") }
        })
    }
}

/// The next data chunk of a body (trailers and other frames skipped); `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Whatever proxy the environment running the tests names.
    fn direct() -> UpstreamClient {
        UpstreamClient::with_proxies(Duration::from_secs(5), Matcher::builder().build()).unwrap()
    }

    fn head(uri: &str) -> Head {
        Head { method: Method::POST, uri: uri.parse().unwrap(), headers: HeaderMap::new() }
    }

    #[tokio::test]
    async fn https_upstreams_are_spoken_to_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 3];
            socket.read_exact(&mut first).await.unwrap();
            first
            // Dropping the socket ends the handshake: the client must report a failure.
        });
        let client = direct();
        let sent =
            client.send(&head(&format!("https://127.0.0.1:{port}/v1/chat/completions")), None, Bytes::new()).await;
        let first = server.await.unwrap();
        // A TLS record of type handshake (22), protocol 3.x: a ClientHello, not plain HTTP.
        assert_eq!(first[0], 22, "the first byte was {:?}", first);
        assert_eq!(first[1], 3);
        let error = sent.expect_err("no TLS server answered");
        assert!(error.connect, "{error:?}");
    }

    /// A one-connection `CONNECT` proxy: returns the head it was sent.
    async fn connect_proxy(listener: tokio::net::TcpListener) -> String {
        use tokio::io::AsyncWriteExt;
        let (mut client, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split_whitespace().nth(1).unwrap().to_owned();
        let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        head
    }

    #[tokio::test]
    async fn upstreams_are_reached_through_the_configured_proxy() {
        // The upstream: one fixed HTTP answer.
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nthrough").await.unwrap();
        });
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy.local_addr().unwrap().port();
        let seen = tokio::spawn(connect_proxy(proxy));

        let proxies = Matcher::builder().http(format!("http://user:secret@127.0.0.1:{proxy_port}")).build();
        let client = UpstreamClient::with_proxies(Duration::from_secs(5), proxies).unwrap();
        let response = client
            .send(&head(&format!("http://127.0.0.1:{upstream_port}/v1/chat/completions")), None, Bytes::new())
            .await;
        let response = response.expect("answered through the proxy");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"through");
        drop(client);
        let head = seen.await.unwrap();
        assert!(head.starts_with(&format!("CONNECT 127.0.0.1:{upstream_port} HTTP/1.1\r\n")), "{head}");
        // user:secret, base64.
        assert!(head.to_ascii_lowercase().contains("proxy-authorization: basic dxnlcjpzzwnyzxq="), "{head}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = direct();
        let error = client.send(&head(&format!("http://127.0.0.1:{port}/x")), None, Bytes::new()).await.unwrap_err();
        assert!(error.connect);
        assert!(error.message.starts_with("connect: "), "{}", error.message);
        assert!(!error.message.contains(&port.to_string()), "{}", error.message);
    }
}
