use app::api::{
    error::ErrorEnvelope,
    health::{HealthReport, ServerHealth, WorkflowHealth},
};
use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use crate::{error::ApiError, state::AppState, state::Bridge};

/// 200 when at least one ComfyUI answers and workflows are loaded, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let report = report(&state.bridge).await;
    let status = if report.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

pub async fn report(bridge: &Bridge) -> HealthReport {
    let probes = futures::future::join_all(bridge.pool.servers().iter().map(|s| async move {
        let probe = s.probe().await;
        ServerHealth {
            url: s.url().to_string(),
            reachable: probe.reachable,
            socket_connected: s.socket_connected(),
            queue_remaining: probe.queue_remaining,
            comfyui_version: probe.version,
            error: probe.error,
        }
    }))
    .await;
    let set = bridge.templates();
    let ok = probes.iter().any(|p| p.reachable) && !set.is_empty();
    HealthReport {
        status: if ok { "ok" } else { "unavailable" }.into(),
        demo: bridge.demo,
        servers: probes,
        workflows: WorkflowHealth {
            models: set.iter().map(|t| t.id.clone()).collect(),
            errors: bridge.template_errors(),
        },
    }
}

/// Loads the workflows again; on any error the last good set keeps serving.
pub async fn reload(State(state): State<AppState>) -> axum::response::Response {
    let bridge = state.bridge.clone();
    let result = tokio::task::spawn_blocking(move || bridge.reload()).await;
    match result {
        Ok(Ok(set)) => Json(json!({
            "reloaded": true,
            "models": set.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Err(errors)) => {
            let err = ApiError::InvalidRequest {
                message: format!(
                    "The workflows were not reloaded; the previous set stays in use. {}",
                    errors.join(" | ")
                ),
                param: None,
                code: Some("invalid_workflow"),
            };
            let ErrorEnvelope { error } = err.envelope();
            (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": error, "errors": errors })),
            )
                .into_response()
        }
        Err(e) => ApiError::Internal(format!("reload task failed: {e}")).into_response(),
    }
}
