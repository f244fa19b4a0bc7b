//! A plain pass-through HTTP/1.1 proxy: the floor of one extra loopback hop, for the relay
//! benchmark. Every request goes to `--upstream` as it came (method, path and query,
//! headers except hop-by-hop ones, body streamed); every response comes back frame by frame
//! as the upstream sends it. A pooled keep-alive client, `TCP_NODELAY` on both sides, no
//! buffering, no caching, nothing else.
//!
//! ```sh
//! passthrough --listen 127.0.0.1:0 --upstream http://127.0.0.1:9100
//! ```
//!
//! The first line on stdout is `listening on ADDR`. Stop it with SIGTERM or Ctrl-C.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http::uri::{Authority, Scheme};
use http::{header, HeaderMap, HeaderName, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// A plain pass-through HTTP/1.1 proxy.
#[derive(Parser)]
#[command(name = "passthrough")]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to send every request, such as http://127.0.0.1:9100 (scheme and authority only: the
    /// path and query are the request's own).
    #[arg(long)]
    upstream: Uri,
}

type Body = Either<Incoming, Full<Bytes>>;

struct Proxy {
    client: Client<HttpConnector, Incoming>,
    scheme: Scheme,
    authority: Authority,
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

impl Proxy {
    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| "/".parse().expect("a valid path"));
        parts.uri = Uri::from_parts({
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(self.scheme.clone());
            uri.authority = Some(self.authority.clone());
            uri.path_and_query = Some(path);
            uri
        })
        .expect("scheme, authority and path make a URI");
        strip_hop_by_hop(&mut parts.headers);
        // The client sets Host from the upstream URI, as a reverse proxy does.
        parts.headers.remove(header::HOST);
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(res) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(parts, Either::Left(body)))
            }
            Err(e) => {
                let mut res = Response::new(Either::Right(Full::new(Bytes::from(format!("upstream: {e}\n")))));
                *res.status_mut() = StatusCode::BAD_GATEWAY;
                Ok(res)
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let (Some(scheme), Some(authority)) = (args.upstream.scheme().cloned(), args.upstream.authority().cloned()) else {
        eprintln!("error: --upstream must be an absolute URL such as http://127.0.0.1:9100");
        std::process::exit(2);
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    // Lives as long as the process; leaking it spares an Arc clone per connection and request.
    let proxy: &'static Proxy = Box::leak(Box::new(Proxy { client, scheme, authority }));

    let listener = TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|req| proxy.forward(req));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
