//! Prometheus metrics. The names follow seed 004's alert rules:
//! `http_requests_total{method,route,status}` and the histogram
//! `http_request_duration_seconds`; plus database pool gauges.

use foldhash::HashMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{OnceLock, RwLock};
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

/// The request metrics' handles, by route, then method and status: registering a labelled
/// metric allocates its labels and hashes them into the registry, which a request should
/// not pay for after the first of its kind. Routes are the router's templates, so the
/// map stays small.
type Handles = (metrics::Counter, metrics::Histogram);
/// Route → (method, status) → handles.
type HandleMap = HashMap<String, Vec<((String, u16), Handles)>>;
static REQUEST_HANDLES: OnceLock<RwLock<HandleMap>> = OnceLock::new();

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let handles = REQUEST_HANDLES.get_or_init(|| {
        // Handles taken before the recorder exists would record nowhere, for good.
        handle();
        Default::default()
    });
    let found = handles
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(route)
        .and_then(|by| by.iter().find(|((m, s), _)| m == method && *s == status).map(|(_, h)| h.clone()));
    let (counter, histogram) = found.unwrap_or_else(|| {
        let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        let made = (
            metrics::counter!("http_requests_total", &labels),
            metrics::histogram!("http_request_duration_seconds", &labels),
        );
        let mut map = handles.write().unwrap_or_else(|e| e.into_inner());
        map.entry(route.to_owned()).or_default().push(((method.to_owned(), status), made.clone()));
        made
    });
    counter.increment(1);
    histogram.record(elapsed.as_secs_f64());
}

pub fn record_pools(stats: &[firefly_store::PoolStats]) {
    for s in stats {
        let idle = s.idle.min(s.size);
        metrics::gauge!("db_pool_connections", "pool" => s.pool, "state" => "idle").set(idle as f64);
        metrics::gauge!("db_pool_connections", "pool" => s.pool, "state" => "in_use").set((s.size - idle) as f64);
        metrics::gauge!("db_pool_max_connections", "pool" => s.pool).set(s.max as f64);
    }
}
