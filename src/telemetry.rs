//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.
//!
//! Label values come from the configuration (provider ids), from fixed strings in the code
//! (endpoints, store backends, error codes) or from status numbers — never from request input,
//! so the number of series stays bounded. A provider id that is not configured is `unknown`.
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds; from a fast local store call to a provider at its 30 s timeout.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus handle. The first call builds the recorder and installs it as the
/// global one; later calls (every server a test starts, say) share it.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder was installed first; /metrics stays empty"
                );
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("latch_signin_started_total", "Sign-ins sent to a provider");
    describe_counter!(
        "latch_signin_completed_total",
        "Sign-ins that ended in a session"
    );
    describe_counter!(
        "latch_signin_failed_total",
        "Refused sign-in starts and callbacks, by error code"
    );
    describe_histogram!(
        "latch_callback_duration_seconds",
        Unit::Seconds,
        "Time to answer a provider callback"
    );
    describe_histogram!(
        "latch_provider_call_duration_seconds",
        Unit::Seconds,
        "Time of outbound calls to providers, by endpoint"
    );
    describe_counter!("latch_store_errors_total", "Failed store operations");
    describe_counter!("latch_tokens_issued_total", "Access tokens issued");
    describe_counter!(
        "latch_token_refreshes_total",
        "Successful refresh-token rotations"
    );
    describe_counter!(
        "latch_refresh_reuse_detected_total",
        "Rotated refresh tokens presented again after the grace window"
    );
    describe_counter!("latch_http_requests_total", "Answered requests, by status");
    describe_counter!(
        "latch_session_cache_reads_total",
        "Session reads on a cached store: hit (memory), miss (Redis, then kept), off (Redis: no live invalidation feed), fence_timeout (Redis: the feed did not answer in time)"
    );
    describe_gauge!(
        "latch_session_cache_feed_up",
        "1 while the session cache's invalidation connection is attached, else 0"
    );
}

tokio::task_local! {
    /// The configured provider a request is about (or `none`), for outbound-call metrics.
    static PROVIDER: String;
}

/// Runs `fut` (a request) with `provider` as the label of the provider calls it makes.
pub async fn with_provider<F: Future>(provider: String, fut: F) -> F::Output {
    PROVIDER.scope(provider, fut).await
}

fn current_provider() -> String {
    PROVIDER
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "none".to_string())
}

pub fn signin_started(provider: &str) {
    metrics::counter!("latch_signin_started_total", "provider" => provider.to_string())
        .increment(1);
}

pub fn signin_completed(provider: &str) {
    metrics::counter!("latch_signin_completed_total", "provider" => provider.to_string())
        .increment(1);
}

pub fn signin_failed(provider: &str, code: &'static str) {
    metrics::counter!(
        "latch_signin_failed_total",
        "provider" => provider.to_string(),
        "code" => code
    )
    .increment(1);
}

pub fn callback_duration(provider: &str, elapsed: Duration) {
    metrics::histogram!("latch_callback_duration_seconds", "provider" => provider.to_string())
        .record(elapsed.as_secs_f64());
}

/// An outbound call to `endpoint` (a fixed name in the code) of the current request's provider.
pub fn provider_call(endpoint: &'static str, elapsed: Duration) {
    metrics::histogram!(
        "latch_provider_call_duration_seconds",
        "provider" => current_provider(),
        "endpoint" => endpoint
    )
    .record(elapsed.as_secs_f64());
}

pub fn store_error(backend: &'static str) {
    metrics::counter!("latch_store_errors_total", "backend" => backend).increment(1);
}

pub fn token_issued() {
    metrics::counter!("latch_tokens_issued_total").increment(1);
}

pub fn token_refreshed() {
    metrics::counter!("latch_token_refreshes_total").increment(1);
}

pub fn refresh_reuse_detected() {
    metrics::counter!("latch_refresh_reuse_detected_total").increment(1);
}

/// Where a session read's answer came from (see `store::cache`).
#[derive(Clone, Copy)]
pub enum CacheRead {
    Hit,
    Miss,
    Off,
    /// In memory, but its fence was not answered in time: read from the store.
    FenceTimeout,
}

/// Counts a read of a cached session key; one atomic add (this runs on every session check).
pub fn session_cache_read(read: CacheRead) {
    static COUNTERS: [OnceLock<metrics::Counter>; 4] = [const { OnceLock::new() }; 4];
    let (i, result) = match read {
        CacheRead::Hit => (0, "hit"),
        CacheRead::Miss => (1, "miss"),
        CacheRead::Off => (2, "off"),
        CacheRead::FenceTimeout => (3, "fence_timeout"),
    };
    COUNTERS[i]
        .get_or_init(|| {
            handle();
            metrics::counter!("latch_session_cache_reads_total", "result" => result)
        })
        .increment(1);
}

pub fn session_cache_feed_up(up: bool) {
    handle();
    metrics::gauge!("latch_session_cache_feed_up").set(if up { 1.0 } else { 0.0 });
}

/// Counts a response by status. Each status's counter is looked up in the registry once and
/// kept: counting a request is then one atomic add (this runs on every request).
pub fn http_request(status: u16) {
    static COUNTERS: [OnceLock<metrics::Counter>; 500] = [const { OnceLock::new() }; 500];
    let register =
        || metrics::counter!("latch_http_requests_total", "status" => status.to_string());
    match status
        .checked_sub(100)
        .and_then(|i| COUNTERS.get(usize::from(i)))
    {
        Some(kept) => kept
            .get_or_init(|| {
                // Not before the recorder exists: a counter taken earlier would count nowhere.
                handle();
                register()
            })
            .increment(1),
        None => register().increment(1),
    }
}
