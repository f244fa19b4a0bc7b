//! The Firefly HTTP server: one axum application whose modules own their routes.
//! It depends on the store traits only; the binary chooses the backend.

pub mod accounts;
pub mod admin;
pub mod billing;
pub mod http;
pub mod keys;
pub mod limiter;
pub mod ops;
pub mod relay;
pub mod router;
pub mod state;

pub use state::AppState;

use anyhow::Context;
use axum::serve::ListenerExt;
use firefly_core::config::Config;
use firefly_store::DynStore;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// A bound, ready-to-run server. `build` binds first, so port 0 works and tests and
/// benchmarks start the real server.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Server {
    pub async fn build(config: Config, store: DynStore) -> anyhow::Result<Server> {
        if config.database.auto_migrate {
            store.migrate().await.context("applying database migrations")?;
        }
        let listen = config.server.listen;
        let state = AppState::new(config, store)?;
        accounts::bootstrap_admin(&state).await?;
        let limiter = state.login_limiter.clone();
        let redeem = state.redeem_limiter.clone();
        state.tasks.every(Duration::from_secs(60), move || {
            limiter.shrink();
            redeem.shrink();
        });
        // The exporter keeps histogram samples until upkeep folds them in; without a
        // scraper they would pile up.
        state.tasks.every(Duration::from_secs(5), || ops::metrics::handle().run_upkeep());
        let passwords = state.passwords.clone();
        state.tasks.every(Duration::from_secs(5), move || passwords.trim_idle(Duration::from_secs(10)));
        tracing::info!(passwords = %state.passwords.describe(), "password hashing");
        // Without migrations (`--no-migrate`) there is nothing to load yet: `/readyz` says
        // so, and the periodic refresh loads the channels once the tables exist.
        if let Err(e) = state.relay.routes.reload().await {
            tracing::warn!(error = %e, "loading the relay's channels failed; retrying every 5 s");
        }
        relay::Relay::start_background(&state, &state.config.relay);
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        ops::metrics::handle();
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes; in-flight requests get `server.shutdown_grace_secs`.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Server { listener, state } = self;
        let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
        let app = router::build(state.clone());
        tracing::info!(addr = %listener.local_addr()?, database = state.store.kind(), "firefly listening");
        // Small writes must not wait for delayed ACKs on keep-alive connections.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let draining = state.clone();
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: finishing in-flight requests");
                draining.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = stopping_tx.send(true);
            });
        let deadline = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result?,
            _ = deadline => tracing::warn!("shutdown grace period over; closing remaining connections"),
        }
        state.tasks.shutdown().await;
        state.store.close().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
