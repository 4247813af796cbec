//! The bridge's state as `/health` and the web app's connection panel report it.

use app::api::health::{HealthReport, ServerHealth, UnavailableModel, WorkflowHealth};

use crate::{
    error::{ApiError, ErrorCode},
    jobs::Jobs,
    models::Models,
    routing::{self, Availability},
};

/// Each server's reachability, queue and version, and the loaded models.
pub async fn report(jobs: &Jobs, models: &Models) -> HealthReport {
    check(jobs, models).await.0
}

/// The report, and why the bridge cannot serve when no ComfyUI answers or no workflow is
/// loaded (also in the report's `error`, in the envelope's shape).
pub async fn check(jobs: &Jobs, models: &Models) -> (HealthReport, Option<ApiError>) {
    let servers = jobs.pool().servers();
    let set = models.set();
    let probes = futures::future::join_all(servers.iter().map(|s| {
        let set = &set;
        async move {
            let (probe, info) = tokio::join!(s.probe(), s.info());
            let runnable = info.map_or_else(Vec::new, |info| {
                set.iter()
                    .filter(|t| t.check(&info).is_empty())
                    .map(|t| t.id.clone())
                    .collect()
            });
            ServerHealth {
                url: s.url().to_string(),
                reachable: probe.reachable,
                socket_connected: s.socket_connected(),
                queue_remaining: probe.queue_remaining,
                comfyui_version: probe.version,
                error: probe.error,
                models: runnable,
                last_error: s.last_error(),
                name: s.name(),
                draining: s.draining(),
                down: s.is_down(),
                jobs: s.in_flight(),
            }
        }
    }))
    .await;
    let availability =
        futures::future::join_all(set.iter().map(|t| routing::availability(jobs.pool(), t))).await;
    let unavailable = set
        .iter()
        .zip(availability)
        .filter(|(_, a)| matches!(a, Availability::Unavailable(_)))
        .map(|(t, a)| UnavailableModel {
            model: t.id.clone(),
            reasons: a.reasons(),
        })
        .collect();
    let problem = if !probes.iter().any(|p| p.reachable) {
        Some(ApiError::Unavailable(
            ErrorCode::ComfyuiUnavailable,
            "No ComfyUI server answers right now; try again shortly.".into(),
        ))
    } else if set.is_empty() {
        Some(ApiError::Unavailable(
            ErrorCode::NoModels,
            "No workflow is loaded; see `workflows.errors`, fix the files and POST /reload.".into(),
        ))
    } else {
        None
    };
    let report = HealthReport {
        status: if problem.is_none() {
            "ok"
        } else {
            "unavailable"
        }
        .into(),
        demo: jobs.demo(),
        servers: probes,
        workflows: WorkflowHealth {
            models: set.iter().map(|t| t.id.clone()).collect(),
            errors: models.errors(),
            unavailable,
        },
        error: problem.as_ref().map(ApiError::body),
    };
    (report, problem)
}

/// Each server's state as `/health` reports it, without asking the servers anything.
pub fn servers_now(jobs: &Jobs) -> Vec<ServerState> {
    jobs.pool()
        .servers()
        .iter()
        .map(|s| ServerState {
            name: s.name(),
            url: s.url().to_string(),
            draining: s.draining(),
            down: s.is_down(),
            jobs: s.in_flight(),
            queue: s.queue_depth(),
            weight: s.weight(),
            max_jobs: s.max_jobs(),
        })
        .collect()
}

/// A server as `GET /admin/servers` lists it.
#[derive(Debug, serde::Serialize)]
pub struct ServerState {
    pub name: String,
    pub url: String,
    pub draining: bool,
    pub down: bool,
    pub jobs: usize,
    pub queue: u64,
    pub weight: u32,
    pub max_jobs: Option<usize>,
}
