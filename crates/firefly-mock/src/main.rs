//! `firefly-mock`: the mock upstream as a process, for benchmarks and manual runs. Prints its
//! base URL on stdout, serves until SIGTERM or Ctrl-C, then prints the request counts (JSON)
//! on stderr.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use firefly_mock::{MockConfig, MockUpstream};

/// A local upstream speaking OpenAI, Azure OpenAI, Anthropic, Gemini and DashScope, with
/// deterministic answers.
#[derive(Parser)]
#[command(name = "firefly-mock", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Content chunks (= completion tokens) per choice.
    #[arg(long, default_value_t = 8)]
    chunks: u32,
    /// Delay before each content chunk of a stream, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Delay before each response head, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Models listed by GET /v1/models (comma-separated).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Answer 404 model_not_found for models not in --models.
    #[arg(long)]
    strict_models: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut config = MockConfig {
        listen: args.listen,
        chunks: args.chunks,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        latency: Duration::from_millis(args.latency_ms),
        strict_models: args.strict_models,
        ..MockConfig::default()
    };
    if !args.models.is_empty() {
        config.models = args.models;
    }
    let mock = MockUpstream::start(config).await?;
    println!("{}", mock.base_url());
    shutdown_signal().await;
    let stats = mock.stats();
    mock.shutdown().await;
    eprintln!("{}", serde_json::to_string(&stats).expect("stats serialize"));
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
