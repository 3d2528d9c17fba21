//! HTTP request metrics: a counter per (route, method, status) and a
//! duration histogram per (route, method), on whatever `metrics` recorder
//! the binary gives. `route` is the route's template from the route table
//! (`/posts/{id}`), or [`UNMATCHED`], so the label sets stay bounded
//! whatever paths clients ask for.
//!
//! Recording costs a few atomic operations: each route's handles are made
//! once, on the first request that needs them, and found again by the
//! route's index and the method's, without hashing or allocating.

use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};

/// Requests served, by route template, method and status.
pub const REQUESTS: &str = "portcullis_http_requests_total";
/// How long requests took, by route template and method.
pub const DURATION: &str = "portcullis_http_request_duration_seconds";
/// The `route` of requests that matched no route, or were answered before
/// routing (a refused CSRF token, a full hashing pool).
pub const UNMATCHED: &str = "unmatched";
/// Buckets of [`DURATION`], in seconds.
pub const DURATION_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The route that answered a request, as a response extension (set by the
/// route table on every route it serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchedRoute {
    /// The route's template, as written in the route table.
    pub template: &'static str,
    /// The route's place in the route table.
    pub index: usize,
}

/// Methods as labelled; any other is `other`.
const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// One (route, method)'s handles.
struct Series {
    duration: Histogram,
    by_status: RwLock<Vec<(u16, Counter)>>,
}

/// The recorder's handles for every route and method.
pub struct HttpMetrics {
    recorder: Box<dyn Recorder + Send + Sync>,
    /// Route templates by table index, [`UNMATCHED`] last.
    templates: Vec<&'static str>,
    series: Vec<[OnceLock<Series>; METHODS.len()]>,
}

static METADATA: Metadata<'static> = Metadata::new("portcullis_web::metrics", metrics::Level::INFO, None);

impl HttpMetrics {
    /// Handles on `recorder` for the routes of [`crate::routes::route_list`]
    /// and of the API ([`crate::api::route_templates`]).
    pub fn new(recorder: Box<dyn Recorder + Send + Sync>) -> Self {
        let mut templates: Vec<&'static str> = crate::routes::route_list().into_iter().map(|(_, p)| p).collect();
        templates.extend_from_slice(crate::api::route_templates());
        templates.push(UNMATCHED);
        recorder.describe_counter(
            KeyName::from_const_str(REQUESTS),
            None,
            SharedString::const_str("HTTP requests served, by route template, method and status."),
        );
        recorder.describe_histogram(
            KeyName::from_const_str(DURATION),
            Some(Unit::Seconds),
            SharedString::const_str("Time from a request's arrival to its answer, by route template and method."),
        );
        let series = templates.iter().map(|_| std::array::from_fn(|_| OnceLock::new())).collect();
        Self { recorder, templates, series }
    }

    /// Counts one request that `route` answered with `status` in `elapsed`.
    pub fn record(&self, route: Option<MatchedRoute>, method: &Method, status: StatusCode, elapsed: Duration) {
        let index = route.map_or(self.templates.len() - 1, |r| self.index_of(r));
        let m = method_index(method);
        let series = self.series[index][m].get_or_init(|| {
            let key = Key::from_parts(DURATION, self.labels(index, m));
            Series { duration: self.recorder.register_histogram(&key, &METADATA), by_status: RwLock::default() }
        });
        series.duration.record(elapsed.as_secs_f64());
        let code = status.as_u16();
        {
            let known = series.by_status.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, c)) = known.iter().find(|(s, _)| *s == code) {
                c.increment(1);
                return;
            }
        }
        let mut known = series.by_status.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = known.iter().find(|(s, _)| *s == code) {
            c.increment(1);
            return;
        }
        let mut labels = self.labels(index, m);
        labels.push(Label::new("status", code.to_string()));
        let counter = self.recorder.register_counter(&Key::from_parts(REQUESTS, labels), &METADATA);
        counter.increment(1);
        known.push((code, counter));
    }

    /// The route's place: its index, when that names its template, else
    /// unmatched (a route table that disagrees with this one).
    fn index_of(&self, route: MatchedRoute) -> usize {
        if self.templates.get(route.index) == Some(&route.template) { route.index } else { self.templates.len() - 1 }
    }

    fn labels(&self, index: usize, method: usize) -> Vec<Label> {
        vec![
            Label::from_static_parts("route", self.templates[index]),
            Label::from_static_parts("method", METHODS[method]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_list_share_one_label() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        assert_eq!(METHODS[method_index(&Method::from_bytes(b"BREW").expect("a method"))], "other");
        assert_eq!(METHODS[method_index(&Method::CONNECT)], "other");
    }
}
