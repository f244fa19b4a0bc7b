//! A closed-loop HTTP/1.1 load generator for the relay benchmark. N workers, each on its
//! own keep-alive connection (`TCP_NODELAY`), send the same request again as soon as the
//! previous answer has been read to the end. Prints one JSON line.
//!
//! ```sh
//! loadgen --url http://127.0.0.1:9100/v1/chat/completions -c 64 --duration 5 --warmup 1 \
//!     -H 'authorization: Bearer sk-x' --body '{"model":"m","messages":[]}' [--stream]
//! ```
//!
//! An Anthropic Messages stream ends in `message_stop` rather than `data: [DONE]`:
//!
//! ```sh
//! loadgen --url http://127.0.0.1:9100/v1/messages -H 'x-api-key: sk-x' -H 'anthropic-version: 2023-06-01' \
//!     --body '{"model":"m","max_tokens":32,"stream":true,"messages":[]}' --stream \
//!     --stream-end 'data: {"type":"message_stop"}'
//! ```
//!
//! It runs on one current-thread Tokio runtime by default (`--threads 1`): all workers share
//! one OS thread, so the generator never takes more than one core from the server under
//! test, and pays for no work stealing or cross-thread wake-ups. One thread drives well over
//! the request rates seen here; `--threads N` uses a multi-thread runtime when it does not.
//! hyper's connection API is used directly (no pool, no reqwest) to keep the per-request
//! cost to building the request, parsing the response and two clock reads.
//!
//! Counting: a request is measured when it starts after the warm-up. `requests` counts
//! measured requests that finished (any status, or an I/O error or timeout); `ok` those with
//! a 2xx status (and, with `--stream`, a body ending in `--stream-end`, by default
//! `data: [DONE]`, trailing whitespace aside); `errors` the rest.
//! Latencies and `rps` are over `ok` only, so a failing target does not look fast. Latency is
//! from sending the request to the last body byte; `ttfb` (with `--stream`) to the first
//! body byte. Warm-up requests are counted separately (`warmup_requests`, `warmup_ok`), so
//! a caller can match the total against an upstream's own counter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

/// A closed-loop HTTP/1.1 load generator; prints one JSON line.
#[derive(Parser)]
#[command(name = "loadgen")]
struct Args {
    /// Target URL (http only).
    #[arg(long)]
    url: Uri,
    /// Workers, each with its own keep-alive connection and one request in flight.
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// Measured seconds (after the warm-up). Default 10 unless --requests is given.
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Measured requests in total (after the warm-up); with --duration, whichever ends first.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// A request header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body (the method defaults to POST, content-type to application/json).
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Request body from a file.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Method; default POST with a body, GET without.
    #[arg(long)]
    method: Option<Method>,
    /// The response is an SSE stream: also measure time to first byte, and require the body to
    /// end with --stream-end.
    #[arg(long)]
    stream: bool,
    /// With --stream, the text a complete body ends with, trailing whitespace aside, taken
    /// literally (no escapes; pass a newline as a newline). Anthropic's streams end with
    /// `data: {"type":"message_stop"}`.
    #[arg(long, default_value = "data: [DONE]", value_name = "TEXT")]
    stream_end: String,
    /// Seconds before one request counts as an error (timeout) and its connection is dropped.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Runtime threads: 1 = current-thread runtime (the cheapest); more = multi-thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What every worker sends, and when to stop.
struct Plan {
    addr: String,
    method: Method,
    path: Uri,
    headers: HeaderMap,
    body: Bytes,
    stream: bool,
    /// What a complete stream ends with (trailing whitespace aside).
    stream_end: String,
    /// Bytes of the body's tail kept to look for `stream_end`.
    tail_len: usize,
    timeout: Duration,
    measure_from: Instant,
    end: Option<Instant>,
    max_requests: Option<u64>,
    tickets: AtomicU64,
}

#[derive(Default)]
struct Stats {
    /// Microseconds, successful measured requests only.
    latency_us: Vec<u32>,
    ttfb_us: Vec<u32>,
    requests: u64,
    ok: u64,
    io_errors: u64,
    timeouts: u64,
    incomplete_streams: u64,
    statuses: BTreeMap<u16, u64>,
    warmup_requests: u64,
    warmup_ok: u64,
    body_bytes: u64,
    connects: u64,
    last_done: Option<Instant>,
    first_error: Option<String>,
}

impl Stats {
    fn error(&mut self, message: String) {
        self.first_error.get_or_insert(message);
    }

    fn merge(&mut self, other: Stats) {
        self.latency_us.extend(other.latency_us);
        self.ttfb_us.extend(other.ttfb_us);
        self.requests += other.requests;
        self.ok += other.ok;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.incomplete_streams += other.incomplete_streams;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.warmup_requests += other.warmup_requests;
        self.warmup_ok += other.warmup_ok;
        self.body_bytes += other.body_bytes;
        self.connects += other.connects;
        self.last_done = self.last_done.max(other.last_done);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One finished exchange.
struct Answer {
    status: StatusCode,
    ttfb: Option<Duration>,
    total: Duration,
    bytes: u64,
    /// The body ended with the plan's `stream_end` (trailing whitespace aside).
    complete: bool,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

async fn connect(plan: &Plan) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(&plan.addr).await.map_err(|e| format!("connect {}: {e}", plan.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn exchange(sender: &mut SendRequest<Full<Bytes>>, plan: &Plan) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let mut req = Request::new(Full::new(plan.body.clone()));
    *req.method_mut() = plan.method.clone();
    *req.uri_mut() = plan.path.clone();
    *req.headers_mut() = plan.headers.clone();
    let t0 = Instant::now();
    let res = sender.send_request(req).await?;
    let status = res.status();
    let mut body = res.into_body();
    let (mut ttfb, mut bytes) = (None, 0u64);
    // The last bytes of the body, to check that a stream ended with `plan.stream_end`.
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else { continue };
        if data.is_empty() {
            continue;
        }
        ttfb.get_or_insert_with(|| t0.elapsed());
        bytes += data.len() as u64;
        if plan.stream {
            tail.extend_from_slice(&data[data.len().saturating_sub(plan.tail_len)..]);
            let excess = tail.len().saturating_sub(plan.tail_len);
            tail.drain(..excess);
        }
    }
    let total = t0.elapsed();
    let text = String::from_utf8_lossy(&tail);
    let complete = text.trim_end().ends_with(plan.stream_end.as_str());
    Ok(Answer { status, ttfb, total, bytes, complete })
}

async fn worker(plan: Arc<Plan>) -> Stats {
    let mut stats = Stats::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let start = Instant::now();
        if plan.end.is_some_and(|end| start >= end) {
            break;
        }
        let measured = start >= plan.measure_from;
        if measured && plan.max_requests.is_some_and(|max| plan.tickets.fetch_add(1, Ordering::Relaxed) >= max) {
            break;
        }
        // A connection the server closed (say after an error answer) is replaced silently; a
        // failed connect is an error.
        let conn = match sender.as_mut() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(&plan).await {
                Ok(s) => {
                    stats.connects += 1;
                    sender.insert(s)
                }
                Err(e) => {
                    if measured {
                        stats.requests += 1;
                        stats.io_errors += 1;
                    } else {
                        stats.warmup_requests += 1;
                    }
                    stats.error(e);
                    // Do not spin on a target that is down.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let outcome = tokio::time::timeout(plan.timeout, exchange(conn, &plan)).await;
        let ok = match outcome {
            Ok(Ok(answer)) => {
                let complete = !plan.stream || answer.complete;
                let ok = answer.status.is_success() && complete;
                if measured {
                    *stats.statuses.entry(answer.status.as_u16()).or_default() += 1;
                    stats.body_bytes += answer.bytes;
                    if answer.status.is_success() && !complete {
                        stats.incomplete_streams += 1;
                        stats.error(format!(
                            "status {} but the stream did not end with {}",
                            answer.status, plan.stream_end
                        ));
                    } else if !ok {
                        stats.error(format!("status {}", answer.status));
                    }
                    if ok {
                        stats.latency_us.push(micros(answer.total));
                        if let Some(ttfb) = answer.ttfb {
                            stats.ttfb_us.push(micros(ttfb));
                        }
                    }
                }
                ok
            }
            Ok(Err(e)) => {
                sender = None;
                if measured {
                    stats.io_errors += 1;
                }
                stats.error(format!("request: {e}"));
                false
            }
            Err(_) => {
                sender = None;
                if measured {
                    stats.timeouts += 1;
                }
                stats.error(format!("no complete answer within {:?}", plan.timeout));
                false
            }
        };
        if measured {
            stats.requests += 1;
            stats.ok += u64::from(ok);
            stats.last_done = Some(Instant::now());
        } else {
            stats.warmup_requests += 1;
            stats.warmup_ok += u64::from(ok);
        }
    }
    stats
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = line.split_once(':').ok_or_else(|| format!("--header {line:?}: expected `name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("--header {line:?}: {e}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("--header {line:?}: {e}"))?;
    Ok((name, value))
}

fn plan(args: &Args) -> Result<Plan, String> {
    if args.url.scheme_str() != Some("http") {
        return Err("--url must be an http:// URL".into());
    }
    let authority = args.url.authority().ok_or("--url needs a host")?.clone();
    let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let path: Uri = args.url.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|e| format!("{e}"))?;
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (None, Some(f)) => Bytes::from(std::fs::read(f).map_err(|e| format!("--body-file {}: {e}", f.display()))?),
        (None, None) => Bytes::new(),
    };
    let has_body = args.body.is_some() || args.body_file.is_some();
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority.as_str()).map_err(|e| format!("{e}"))?);
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    for line in &args.headers {
        let (name, value) = parse_header(line)?;
        headers.insert(name, value);
    }
    if args.concurrency == 0 || args.threads == 0 {
        return Err("--concurrency and --threads must be at least 1".into());
    }
    let seconds = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s).map_err(|_| format!("{what} must be a non-negative number of seconds"))
    };
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d.map(|d| seconds(d, "--duration")).transpose()?,
    };
    let stream_end = args.stream_end.trim_end().to_owned();
    if args.stream && stream_end.is_empty() {
        return Err("--stream-end must not be empty or only whitespace".into());
    }
    let measure_from = Instant::now() + seconds(args.warmup, "--warmup")?;
    Ok(Plan {
        addr,
        method: args.method.clone().unwrap_or(if has_body { Method::POST } else { Method::GET }),
        path,
        headers,
        body,
        stream: args.stream,
        // 32 bytes for the default `data: [DONE]`; longer markers keep room for as much
        // trailing whitespace.
        tail_len: 32.max(stream_end.len() + 20),
        stream_end,
        timeout: seconds(args.timeout, "--timeout")?,
        measure_from,
        end: duration.map(|d| measure_from + d),
        max_requests: args.requests,
        tickets: AtomicU64::new(0),
    })
}

/// User plus system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

async fn run(plan: Arc<Plan>, concurrency: usize) -> Stats {
    let workers: Vec<_> = (0..concurrency).map(|_| tokio::spawn(worker(plan.clone()))).collect();
    let mut total = Stats::default();
    for w in workers {
        total.merge(w.await.expect("a worker panicked"));
    }
    total
}

fn main() {
    let args = Args::parse();
    let plan = match plan(&args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .expect("building the Tokio runtime");
    let cpu_before = cpu_seconds();
    let mut stats = runtime.block_on(run(plan.clone(), args.concurrency));
    let cpu = cpu_seconds() - cpu_before;

    let elapsed = stats.last_done.map_or(0.0, |t| t.saturating_duration_since(plan.measure_from).as_secs_f64());
    stats.latency_us.sort_unstable();
    stats.ttfb_us.sort_unstable();
    let p = |sorted: &[u32], q: f64| percentile(sorted, q);
    let mut out = json!({
        "url": args.url.to_string(),
        "concurrency": args.concurrency,
        "stream": args.stream,
        "requests": stats.requests,
        "ok": stats.ok,
        "errors": stats.requests - stats.ok,
        "io_errors": stats.io_errors,
        "timeouts": stats.timeouts,
        "statuses": stats.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "elapsed_s": elapsed,
        "rps": if elapsed > 0.0 { stats.ok as f64 / elapsed } else { 0.0 },
        "p50_us": p(&stats.latency_us, 50.0),
        "p90_us": p(&stats.latency_us, 90.0),
        "p99_us": p(&stats.latency_us, 99.0),
        "max_us": stats.latency_us.last(),
        "mean_us": if stats.latency_us.is_empty() { None } else {
            Some(stats.latency_us.iter().map(|&v| u64::from(v)).sum::<u64>() / stats.latency_us.len() as u64)
        },
        "body_bytes": stats.body_bytes,
        "warmup_requests": stats.warmup_requests,
        "warmup_ok": stats.warmup_ok,
        "connects": stats.connects,
        "threads": args.threads,
        "cpu_s": cpu,
        "first_error": stats.first_error,
    });
    if args.stream {
        out["incomplete_streams"] = json!(stats.incomplete_streams);
        out["ttfb_p50_us"] = json!(p(&stats.ttfb_us, 50.0));
        out["ttfb_p99_us"] = json!(p(&stats.ttfb_us, 99.0));
    }
    println!("{out}");
}
