//! The Prometheus listener: `/metrics` on `PORTCULLIS_METRICS_BIND`, its own
//! socket, never the site's. Request metrics are recorded as requests finish
//! (`portcullis_web::metrics`); counters the use cases keep and the live
//! gauges (sessions, outbox, pools) are read at scrape time, just before the
//! text is rendered, so no request pays for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use portcullis_app::meter::LoginOutcome;
use portcullis_web::metrics::{DURATION, DURATION_BUCKETS, HttpMetrics};
use tokio::net::TcpListener;

use crate::config::ConfigError;
use crate::server::{Services, StartError};

/// The recorder every family lives in, shared by the request metrics and
/// the scrape.
#[derive(Clone)]
pub struct Exporter {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

/// A shared recorder, as the request metrics take one.
struct Shared(Arc<PrometheusRecorder>);

impl Recorder for Shared {
    fn describe_counter(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_counter(k, u, d);
    }
    fn describe_gauge(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_gauge(k, u, d);
    }
    fn describe_histogram(&self, k: KeyName, u: Option<Unit>, d: SharedString) {
        self.0.describe_histogram(k, u, d);
    }
    fn register_counter(&self, k: &Key, m: &Metadata<'_>) -> metrics::Counter {
        self.0.register_counter(k, m)
    }
    fn register_gauge(&self, k: &Key, m: &Metadata<'_>) -> metrics::Gauge {
        self.0.register_gauge(k, m)
    }
    fn register_histogram(&self, k: &Key, m: &Metadata<'_>) -> metrics::Histogram {
        self.0.register_histogram(k, m)
    }
}

static METADATA: Metadata<'static> = Metadata::new("portcullis::metrics", metrics::Level::INFO, None);

/// Families read at scrape time: (name, help, is a counter).
const FAMILIES: &[(&str, &str, bool)] = &[
    ("portcullis_logins_total", "Sign-in attempts, by outcome (success, failure, locked).", true),
    ("portcullis_lockouts_total", "Names and accounts locked by failed sign-ins.", true),
    ("portcullis_rate_limited_total", "Requests refused by a per-client rate limit, by action.", true),
    ("portcullis_hash_pool_in_use", "Password hashes running now.", false),
    ("portcullis_hash_pool_waiting", "Password hashes queued for a thread.", false),
    ("portcullis_hash_pool_refused_total", "Password checks refused because the hashing pool was full.", true),
    ("portcullis_outbox_pending", "Mails waiting in the outbox.", false),
    ("portcullis_outbox_oldest_age_seconds", "Age of the oldest mail waiting in the outbox (0 when none).", false),
    ("portcullis_sessions_active", "Sessions neither expired nor idle too long.", false),
    ("portcullis_db_pool_connections", "Database pool connections, by state (idle, in_use).", false),
];

/// Rate-limited actions shown at zero before their first refusal.
const LIMITED_ACTIONS: &[&str] =
    &["login", "register", "forgot", "reset", "verify", "password-check", "two-factor", "passkey", "setup"];

impl Exporter {
    /// A recorder with every family described and the duration buckets set.
    pub fn new() -> Result<Self, StartError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), DURATION_BUCKETS)
            .map_err(|e| StartError::Other(format!("metrics: {e}")))?
            .build_recorder();
        let handle = recorder.handle();
        let recorder = Arc::new(recorder);
        for (name, help, counter) in FAMILIES {
            let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
            if *counter {
                recorder.describe_counter(name, None, help);
            } else {
                recorder.describe_gauge(name, None, help);
            }
        }
        Ok(Self { recorder, handle })
    }

    /// Request metrics recording into this exporter.
    pub fn http(&self) -> HttpMetrics {
        HttpMetrics::new(Box::new(Shared(Arc::clone(&self.recorder))))
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        self.recorder.register_counter(&Key::from_parts(name, labels), &METADATA).absolute(value);
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA).set(value);
    }

    /// Reads the counters and gauges kept elsewhere, then renders every family.
    pub async fn scrape(&self, services: &Services) -> String {
        let meter = services.accounts.meter();
        for outcome in LoginOutcome::ALL {
            self.counter(
                "portcullis_logins_total",
                vec![Label::new("outcome", outcome.label())],
                meter.logins(outcome),
            );
        }
        self.counter("portcullis_lockouts_total", vec![], meter.lockouts());
        let refusals = services.limiter.refusals();
        for action in LIMITED_ACTIONS {
            if !refusals.iter().any(|(a, _)| a == action) {
                self.counter("portcullis_rate_limited_total", vec![Label::new("action", *action)], 0);
            }
        }
        for (action, n) in refusals {
            self.counter("portcullis_rate_limited_total", vec![Label::new("action", action)], n);
        }
        let (running, queued, refused) = services.accounts.hasher().load();
        self.gauge("portcullis_hash_pool_in_use", vec![], running as f64);
        self.gauge("portcullis_hash_pool_waiting", vec![], queued as f64);
        self.counter("portcullis_hash_pool_refused_total", vec![], refused);
        let pool = services.store.pool();
        let (size, idle) = (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
        self.gauge("portcullis_db_pool_connections", vec![Label::new("state", "idle")], f64::from(idle));
        self.gauge(
            "portcullis_db_pool_connections",
            vec![Label::new("state", "in_use")],
            f64::from(size.saturating_sub(idle)),
        );
        match services.overview.gauges().await {
            Ok(g) => {
                self.gauge("portcullis_sessions_active", vec![], g.active_sessions as f64);
                self.gauge("portcullis_outbox_pending", vec![], g.outbox.pending as f64);
                let age = g.outbox.oldest_at.map_or(0.0, |at| (g.now - at).max(0) as f64 / 1000.0);
                self.gauge("portcullis_outbox_oldest_age_seconds", vec![], age);
            }
            // The last values stay; the scrape still answers.
            Err(e) => tracing::warn!(error = %e, "metrics: the database did not answer"),
        }
        self.handle.render()
    }

    /// Drains recorded histogram samples into their buckets now and then,
    /// so memory stays bounded between scrapes.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }
}

/// Binds the metrics listener, failing with the variable named.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| {
        StartError::Config(ConfigError {
            var: "PORTCULLIS_METRICS_BIND".into(),
            message: format!("cannot listen on {addr}: {e}"),
        })
    })
}

/// Serves `/metrics` (and 404 for anything else) on `listener` until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    exporter: Exporter,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(scrape)).with_state(Arc::new((exporter, services)));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// `GET /metrics`: Prometheus text.
async fn scrape(State(s): State<Arc<(Exporter, Services)>>) -> Response {
    let body = s.0.scrape(&s.1).await;
    (StatusCode::OK, [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
