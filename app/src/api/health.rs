use serde::{Deserialize, Serialize};

use super::error::ErrorBody;

/// The body of `GET /health`, also shown by the web app.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HealthReport {
    /// `ok` when at least one ComfyUI server answers and the workflows are loaded, else `unavailable`.
    pub status: String,
    /// True when the bridge runs against its built-in ComfyUI simulator instead of a real ComfyUI.
    pub demo: bool,
    pub servers: Vec<ServerHealth>,
    pub workflows: WorkflowHealth,
    /// When unavailable: why, in OpenAI's error shape, as every other error of the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl HealthReport {
    /// The report as told to a caller without the API key of a server that needs one: whether
    /// the servers answer, their queues and the models, and nothing that names or locates a
    /// server or a file (addresses, host names, the errors that quote them, workflow problems).
    pub fn without_internals(mut self) -> HealthReport {
        for (i, s) in self.servers.iter_mut().enumerate() {
            s.url = String::new();
            s.name = format!("server {}", i + 1);
            s.error = None;
            s.last_error = None;
        }
        self.workflows.errors.clear();
        for model in &mut self.workflows.unavailable {
            model.reasons.clear();
        }
        self
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServerHealth {
    pub url: String,
    pub reachable: bool,
    /// Whether the bridge's event socket to this server is open right now.
    pub socket_connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comfyui_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The models this server can run (it has their nodes and model files).
    #[serde(default)]
    pub models: Vec<String>,
    /// The last thing that went wrong with this server, even if it answers now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What messages and `/metrics` call it.
    #[serde(default)]
    pub name: String,
    /// Taking no new jobs until resumed (`POST /admin/servers/{name}/resume`).
    #[serde(default)]
    pub draining: bool,
    /// Resting after failing, until it answers again.
    #[serde(default)]
    pub down: bool,
    /// This bridge's jobs on it now.
    #[serde(default)]
    pub jobs: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkflowHealth {
    pub models: Vec<String>,
    /// Problems found by the last load or reload; the models above are the last good set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Loaded models that no server can run now, each with why (per server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<UnavailableModel>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnavailableModel {
    pub model: String,
    pub reasons: Vec<String>,
}
