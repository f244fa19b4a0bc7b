//! The HTTP client of the relay's hot path: hyper's pooled HTTP/1.1 client with rustls
//! (webpki roots) for HTTPS, no redirects, `TCP_NODELAY`, a connect timeout.
//!
//! reqwest serves everything else (probes, task polls, fetches); here it cost about a
//! tenth of the relay's CPU per request: a `Url` parsed and re-rendered as an `http::Uri`
//! on every send, plus its redirect and retry layers, which the relay never uses. Request
//! heads are built once per channel, operation, model and key ([`Upstream::head`]) and
//! sent as a cheap clone.
//!
//! [`Upstream::head`]: super::table::Upstream::head

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

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
    pub fn new(connect_timeout: Duration) -> anyhow::Result<UpstreamClient> {
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
            .wrap_connector(http);
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
        let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
        let sent =
            client.send(&head(&format!("https://127.0.0.1:{port}/v1/chat/completions")), None, Bytes::new()).await;
        let first = server.await.unwrap();
        // A TLS record of type handshake (22), protocol 3.x: a ClientHello, not plain HTTP.
        assert_eq!(first[0], 22, "the first byte was {:?}", first);
        assert_eq!(first[1], 3);
        let error = sent.expect_err("no TLS server answered");
        assert!(error.connect, "{error:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_without_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
        let error = client.send(&head(&format!("http://127.0.0.1:{port}/x")), None, Bytes::new()).await.unwrap_err();
        assert!(error.connect);
        assert!(error.message.starts_with("connect: "), "{}", error.message);
        assert!(!error.message.contains(&port.to_string()), "{}", error.message);
    }
}
