use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    auth::{Auth, presented},
    error::ApiError,
    extract::ApiPath,
    health,
    jobs::Jobs,
    models::Models,
};

/// 200 when at least one ComfyUI answers and workflows are loaded, else 503 with
/// `Retry-After`. Either way the body is the report, with the reason in `error` when
/// unavailable. It stays open for load balancers and monitors; where the server needs a key,
/// only callers with one see where the ComfyUI servers are.
pub async fn health(
    State(jobs): State<Jobs>,
    State(models): State<Models>,
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Response {
    let (mut report, problem) = health::check(&jobs, &models).await;
    if !auth.accepts(presented(&headers)) {
        report = report.without_internals();
    }
    let Some(problem) = problem else {
        return Json(report).into_response();
    };
    let mut res = (problem.status(), Json(report)).into_response();
    problem.retry_headers(res.headers_mut());
    res
}

/// Loads the workflows again; on any error the last good set keeps serving.
pub async fn reload(State(models): State<Models>) -> Result<Response, ApiError> {
    let reloaded = tokio::task::spawn_blocking(move || models.reload())
        .await
        .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?;
    let set = reloaded.map_err(ApiError::InvalidWorkflows)?;
    Ok(Json(json!({
        "reloaded": true,
        "models": set.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /admin/servers`: every server's name, URL, draining, resting, jobs and queue.
pub async fn servers(State(jobs): State<Jobs>) -> Json<Vec<health::ServerState>> {
    Json(health::servers_now(&jobs))
}

/// `POST /admin/servers/{name}/drain`: no new jobs go to the server; running ones finish.
pub async fn drain(
    State(jobs): State<Jobs>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<health::ServerState>>, ApiError> {
    set_draining(&jobs, &name, true)
}

/// `POST /admin/servers/{name}/resume`: the server takes new jobs again.
pub async fn resume(
    State(jobs): State<Jobs>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<health::ServerState>>, ApiError> {
    set_draining(&jobs, &name, false)
}

fn set_draining(
    jobs: &Jobs,
    name: &str,
    draining: bool,
) -> Result<Json<Vec<health::ServerState>>, ApiError> {
    let server = jobs.pool().find(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "No ComfyUI server is called '{name}'; GET /admin/servers lists them."
        ))
    })?;
    server.set_draining(draining);
    Ok(Json(health::servers_now(jobs)))
}
