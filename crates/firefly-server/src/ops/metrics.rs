//! Prometheus metrics. The names follow seed 004's alert rules:
//! `http_requests_total{method,route,status}` and the histogram
//! `http_request_duration_seconds`; plus database pool gauges.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (several servers in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), &buckets)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // If another recorder is already installed (an embedding program's), ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

pub fn record_pools(stats: &[firefly_store::PoolStats]) {
    for s in stats {
        let idle = s.idle.min(s.size);
        metrics::gauge!("db_pool_connections", "pool" => s.pool, "state" => "idle").set(idle as f64);
        metrics::gauge!("db_pool_connections", "pool" => s.pool, "state" => "in_use").set((s.size - idle) as f64);
        metrics::gauge!("db_pool_max_connections", "pool" => s.pool).set(s.max as f64);
    }
}
