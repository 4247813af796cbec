//! Prometheus metrics at `/metrics`: per route, requests, errors (by code) and latency; per
//! ComfyUI server, its queue, this bridge's jobs there, jobs done, failures and failovers.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    comfy::{ComfyPool, ComfyServer},
    error::{ApiError, ErrorCode},
};

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<Answered, Counter>,
    errors: Family<Failed, Counter>,
    latency: Family<Route, Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failed {
    route: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Server {
    server: String,
}

impl Metrics {
    pub fn new(pool: ComfyPool) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Answered, Counter>::default();
        let errors = Family::<Failed, Counter>::default();
        // 5 ms to about 20 minutes: a health check to the longest generation.
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 18))
        });
        registry.register(
            "bridge_http_requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "bridge_http_errors",
            "Requests answered with an error, by route, method and error code",
            errors.clone(),
        );
        registry.register(
            "bridge_http_request_duration_seconds",
            "Time until the answer began (a stream's first event), by route and method",
            latency.clone(),
        );
        registry.register_collector(Box::new(Servers(pool)));
        Metrics(Arc::new(Inner {
            registry,
            requests,
            errors,
            latency,
        }))
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}

/// Counts and times every request; errors by the code their envelope carries.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let inner = &metrics.0;
    inner
        .latency
        .get_or_create(&Route {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    if let Some(code) = res.extensions().get::<ErrorCode>() {
        inner
            .errors
            .get_or_create(&Failed {
                route: route.clone(),
                method: method.clone(),
                code: code.as_str().to_string(),
            })
            .inc();
    }
    inner
        .requests
        .get_or_create(&Answered {
            route,
            method,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

/// `GET /metrics`, in Prometheus's text format.
pub async fn handler(State(metrics): State<Metrics>) -> Result<Response, ApiError> {
    let body = metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("could not write the metrics: {e}")))?;
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    Ok(res)
}

/// One metric per server: its name, help, and how to read it off a server.
type Series<T> = (&'static str, &'static str, fn(&ComfyServer) -> T);

/// The servers' figures, read at each scrape.
struct Servers(ComfyPool);

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servers")
            .field("servers", &self.0.servers().len())
            .finish()
    }
}

impl Collector for Servers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges: [Series<i64>; 5] = [
            (
                "bridge_comfyui_queue_depth",
                "Prompts waiting or running on the server, every client's",
                |s| s.queue_depth() as i64,
            ),
            (
                "bridge_comfyui_jobs_in_flight",
                "This bridge's jobs on the server now",
                |s| s.in_flight() as i64,
            ),
            (
                "bridge_comfyui_up",
                "1 while the bridge's event socket to the server is open",
                |s| i64::from(s.socket_connected()),
            ),
            (
                "bridge_comfyui_draining",
                "1 while the server takes no new jobs",
                |s| i64::from(s.draining()),
            ),
            (
                "bridge_comfyui_down",
                "1 while the server rests after failing",
                |s| i64::from(s.is_down()),
            ),
        ];
        for (name, help, read) in gauges {
            let family = Family::<Server, Gauge>::default();
            for s in self.0.servers() {
                family
                    .get_or_create(&Server { server: s.name() })
                    .set(read(s));
            }
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        let counters: [Series<u64>; 3] = [
            (
                "bridge_comfyui_jobs",
                "Jobs the server finished for this bridge",
                |s| s.counts().jobs,
            ),
            (
                "bridge_comfyui_failures",
                "Times the server could not be reached or lost a job",
                |s| s.counts().failures,
            ),
            (
                "bridge_comfyui_failovers",
                "Jobs moved from the server to another after it failed",
                |s| s.counts().failovers,
            ),
        ];
        for (name, help, read) in counters {
            let family = Family::<Server, Counter>::default();
            for s in self.0.servers() {
                family
                    .get_or_create(&Server { server: s.name() })
                    .inc_by(read(s));
            }
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}
