use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    ComfyError,
    events::JobEvent,
    fleet::{ServerOptions, Standing},
    schema::ObjectInfo,
};

/// One image a finished job produced, as ComfyUI's `/view` served it.
#[derive(Debug, Clone)]
pub struct OutputImage {
    pub node_id: String,
    pub filename: String,
    pub data: Bytes,
}

/// A quick look at a server, for `/health`.
#[derive(Debug, Clone)]
pub struct ServerProbe {
    pub reachable: bool,
    pub queue_remaining: Option<u64>,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// The bridge's connection to one ComfyUI server.
pub struct ComfyServer {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) client_id: String,
    pub(crate) waiters: Mutex<HashMap<String, mpsc::UnboundedSender<JobEvent>>>,
    pub(crate) connected: AtomicBool,
    pub(crate) in_flight: AtomicUsize,
    /// The prompt running right now as the socket saw it; plain preview frames carry no id.
    pub(crate) running: Mutex<Option<String>>,
    jobs_api: OnceCell<bool>,
    pub(crate) shutdown: CancellationToken,
    /// What the server can run, read from `/object_info` when first needed and again after
    /// every reconnect (it may have restarted with other nodes or models).
    info: Mutex<Option<Arc<ObjectInfo>>>,
    /// One read of `/object_info` at a time; callers that need it meanwhile wait for it.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// Told after every read of `/object_info`, for whatever depends on the servers' nodes.
    info_read: tokio::sync::watch::Sender<()>,
    /// Prompts in ComfyUI's queue (running and pending, every client's), as its last `status`
    /// message said; `u64::MAX` until one arrives.
    pub(crate) queue_remaining: AtomicU64,
    pub(crate) positions: super::positions::Positions,
    /// The last thing that went wrong talking to it, for `/health`.
    last_error: Mutex<Option<String>>,
    /// The model files its last job used, so jobs that use them can skip loading them again.
    last_models: Mutex<Vec<String>>,
    pub(crate) standing: Standing,
}

/// After a failed read of `/object_info`, how long before a job may try again: a server that
/// is down must not cost every request a connection attempt.
const INFO_RETRY: Duration = Duration::from_secs(2);

/// The most memory reserved up front for an image ComfyUI announces; larger ones still arrive,
/// growing the buffer as they do.
const MAX_PREALLOCATION: u64 = 256 * 1024 * 1024;

/// How long one HTTP call to ComfyUI may take. Generation time is not bounded by this: the
/// bridge waits for events, not for a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ComfyServer {
    /// Connects to a server: starts its event socket in the background and returns at once.
    pub fn connect(
        url: &str,
        options: ServerOptions,
        slot_freed: Arc<tokio::sync::Notify>,
        info_read: tokio::sync::watch::Sender<()>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        let server = Arc::new(ComfyServer {
            url: url.trim_end_matches('/').to_string(),
            http,
            client_id: uuid::Uuid::new_v4().to_string(),
            waiters: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            running: Mutex::new(None),
            jobs_api: OnceCell::new(),
            shutdown,
            info: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(None),
            info_read,
            queue_remaining: AtomicU64::new(u64::MAX),
            positions: Default::default(),
            last_error: Mutex::new(None),
            last_models: Mutex::new(Vec::new()),
            standing: Standing::new(options, slot_freed),
        });
        super::ws::spawn(&server);
        server
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn socket_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The server's name in messages a client sees: the configured one, else its host and
    /// port, never credentials or paths.
    pub fn name(&self) -> String {
        if let Some(name) = self.standing.name() {
            return name.to_string();
        }
        reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| self.url.clone())
    }

    /// Prompts waiting or running on it as far as the bridge knows: its own queue report, or
    /// this bridge's jobs there if that is more (the report lags behind a burst of submits).
    pub fn queue_depth(&self) -> u64 {
        let reported = match self.queue_remaining.load(Ordering::Relaxed) {
            u64::MAX => 0,
            n => n,
        };
        reported.max(self.in_flight() as u64)
    }

    /// What the server can run; read now if it is not known yet (unless a read failed a
    /// moment ago). `None` when it cannot be read.
    pub async fn info(&self) -> Option<Arc<ObjectInfo>> {
        if let Some(info) = self.cached_info() {
            return Some(info);
        }
        let mut fetching = self.fetching.lock().await;
        if let Some(info) = self.cached_info() {
            return Some(info);
        }
        if fetching.is_some_and(|failed| failed.elapsed() < INFO_RETRY) {
            return None;
        }
        match self.read_info().await {
            Ok(info) => {
                *fetching = None;
                Some(info)
            }
            Err(e) => {
                *fetching = Some(Instant::now());
                self.note_error(format!("could not read /object_info: {e}"));
                None
            }
        }
    }

    /// The last `/object_info` read, without reading it.
    pub fn cached_info(&self) -> Option<Arc<ObjectInfo>> {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets what the server could run and reads it again: after a reconnect it may be
    /// another process with other nodes or model files.
    pub(crate) async fn refresh_info(&self) {
        let mut fetching = self.fetching.lock().await;
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *fetching = match self.read_info().await {
            Ok(_) => None,
            Err(e) => {
                self.note_error(format!("could not read /object_info: {e}"));
                Some(Instant::now())
            }
        };
    }

    async fn read_info(&self) -> Result<Arc<ObjectInfo>, ComfyError> {
        let res = self.http.get(self.endpoint("/object_info")).send().await?;
        if !res.status().is_success() {
            return Err(ComfyError::BadResponse(format!(
                "GET /object_info answered HTTP {}",
                res.status().as_u16()
            )));
        }
        let body = res.text().await?;
        let info = ObjectInfo::from_json(&body)
            .map_err(|e| ComfyError::BadResponse(format!("/object_info is not JSON: {e}")))?;
        drop(body);
        let info = Arc::new(info);
        tracing::info!(server = %self.url, classes = info.len(), "read what the server can run");
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
        self.info_read.send_replace(());
        Ok(info)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn note_error(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub fn last_models(&self) -> Vec<String> {
        self.last_models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_last_models(&self, files: Vec<String>) {
        *self.last_models.lock().unwrap_or_else(|p| p.into_inner()) = files;
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Queues a prompt under the given id. The caller registers its waiter first, so no event
    /// can arrive before anyone listens.
    pub(crate) async fn submit(&self, prompt_id: &str, graph: &Value) -> Result<u64, ComfyError> {
        let body = json!({ "prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id });
        let res = self
            .http
            .post(self.endpoint("/prompt"))
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        if status.is_success() {
            let reply: Value = serde_json::from_str(&text).map_err(|_| {
                ComfyError::BadResponse("POST /prompt returned invalid JSON".into())
            })?;
            let errors = &reply["node_errors"];
            if errors.as_object().is_some_and(|m| !m.is_empty()) {
                // ComfyUI queued only the outputs that validated; the job would be incomplete.
                let message = describe_node_errors(errors);
                self.cancel(prompt_id).await;
                return Err(ComfyError::Validation(message));
            }
            return Ok(reply["number"].as_f64().unwrap_or(0.0).max(0.0) as u64);
        }
        if status.as_u16() == 400
            && let Ok(reply) = serde_json::from_str::<Value>(&text)
        {
            return Err(ComfyError::Validation(describe_prompt_error(&reply)));
        }
        tracing::warn!(server = %self.url, %status, body = %truncate(&text, 300), "POST /prompt failed");
        Err(ComfyError::BadResponse(format!(
            "POST /prompt answered HTTP {}",
            status.as_u16()
        )))
    }

    /// The history entry of a prompt, or `None` while it is queued, running, or unknown.
    pub(crate) async fn history(&self, prompt_id: &str) -> Result<Option<Value>, ComfyError> {
        let res = self
            .http
            .get(self.endpoint(&format!("/history/{prompt_id}")))
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(ComfyError::BadResponse(format!(
                "GET /history answered HTTP {}",
                res.status().as_u16()
            )));
        }
        let mut all: Value = res.json().await?;
        Ok(all.get_mut(prompt_id).map(Value::take))
    }

    pub(super) async fn queue(&self) -> Result<Value, ComfyError> {
        Ok(self
            .http
            .get(self.endpoint("/queue"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Whether the prompt is running or waiting in ComfyUI's queue.
    pub(crate) async fn in_queue(&self, prompt_id: &str) -> Result<bool, ComfyError> {
        let queue = self.queue().await?;
        let listed = |key: &str| {
            queue[key].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|item| item.get(1).and_then(Value::as_str) == Some(prompt_id))
            })
        };
        Ok(listed("queue_running") || listed("queue_pending"))
    }

    /// How many prompts run or wait ahead of this one; `None` when it is not queued (any more).
    pub(crate) async fn queue_position(
        &self,
        prompt_id: &str,
    ) -> Result<Option<usize>, ComfyError> {
        Ok(super::positions::position(&self.queue().await?, prompt_id))
    }

    pub(crate) async fn view(&self, file: &Value) -> Result<Bytes, ComfyError> {
        let field = |k: &str| file.get(k).and_then(Value::as_str).unwrap_or("");
        let res = self
            .http
            .get(self.endpoint("/view"))
            .query(&[
                ("filename", field("filename")),
                ("subfolder", field("subfolder")),
                ("type", field("type")),
            ])
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(ComfyError::BadResponse(format!(
                "GET /view of {} answered HTTP {}",
                field("filename"),
                res.status().as_u16()
            )));
        }
        // Sized once from Content-Length, where collecting chunks would grow the buffer by
        // doubling and briefly hold the image about twice.
        let expected = res.content_length().unwrap_or(0).min(MAX_PREALLOCATION) as usize;
        let mut image = BytesMut::with_capacity(expected);
        let mut res = res;
        while let Some(chunk) = res.chunk().await? {
            image.extend_from_slice(&chunk);
        }
        Ok(image.freeze())
    }

    /// Drops a finished prompt's history entry so ComfyUI's memory stays flat.
    pub(crate) async fn delete_history(&self, prompt_id: &str) {
        let res = self
            .http
            .post(self.endpoint("/history"))
            .json(&json!({ "delete": [prompt_id] }))
            .send()
            .await;
        if let Err(e) = res {
            tracing::debug!(server = %self.url, error = %e, "could not delete a history entry");
        }
    }

    /// Removes a prompt from ComfyUI: dequeued if pending, interrupted if running. Only this
    /// prompt: never a global interrupt, which would hit other users' jobs.
    pub(crate) async fn cancel(&self, prompt_id: &str) {
        let result = if self.has_jobs_api().await {
            self.http
                .post(self.endpoint(&format!("/api/jobs/{prompt_id}/cancel")))
                .send()
                .await
                .map(drop)
        } else {
            let dequeued = self
                .http
                .post(self.endpoint("/queue"))
                .json(&json!({ "delete": [prompt_id] }))
                .send()
                .await;
            let interrupted = self
                .http
                .post(self.endpoint("/interrupt"))
                .json(&json!({ "prompt_id": prompt_id }))
                .send()
                .await;
            dequeued.and(interrupted).map(drop)
        };
        match result {
            Ok(()) => tracing::info!(server = %self.url, prompt_id, "cancelled in ComfyUI"),
            Err(e) => tracing::warn!(server = %self.url, prompt_id, error = %e, "could not cancel"),
        }
    }

    /// Newer ComfyUI has `/api/jobs`, whose cancel handles pending and running jobs in one call.
    async fn has_jobs_api(&self) -> bool {
        *self
            .jobs_api
            .get_or_init(|| async {
                match self
                    .http
                    .get(self.endpoint("/api/jobs"))
                    .query(&[("limit", "1")])
                    .send()
                    .await
                {
                    Ok(res) => res.status().is_success(),
                    Err(_) => false,
                }
            })
            .await
    }

    async fn get_json(&self, path: &str) -> Result<Value, reqwest::Error> {
        self.http
            .get(self.endpoint(path))
            .timeout(Duration::from_secs(3))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    pub async fn probe(&self) -> ServerProbe {
        let stats = async {
            let stats = self.get_json("/system_stats").await?;
            let queue = self.get_json("/prompt").await?;
            Ok::<_, reqwest::Error>((stats, queue))
        };
        match stats.await {
            Ok((stats, queue)) => ServerProbe {
                reachable: true,
                queue_remaining: queue["exec_info"]["queue_remaining"].as_u64(),
                version: stats["system"]["comfyui_version"]
                    .as_str()
                    .map(str::to_string),
                error: None,
            },
            Err(e) => ServerProbe {
                reachable: false,
                queue_remaining: None,
                version: None,
                error: Some(if e.is_connect() {
                    "connection refused".to_string()
                } else if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    format!(
                        "unexpected answer ({})",
                        e.status().map_or(0, |s| s.as_u16())
                    )
                }),
            },
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A 400 from `POST /prompt`, in one line a person can act on.
fn describe_prompt_error(reply: &Value) -> String {
    let mut out = reply["error"]["message"]
        .as_str()
        .unwrap_or("the workflow is invalid")
        .trim_end_matches('.')
        .to_string();
    if let Some(details) = reply["error"]["details"].as_str().filter(|d| !d.is_empty())
        && reply["node_errors"]
            .as_object()
            .is_none_or(|m| m.is_empty())
    {
        out.push_str(&format!(" ({details})"));
    }
    let nodes = describe_node_errors(&reply["node_errors"]);
    if !nodes.is_empty() {
        out.push_str(": ");
        out.push_str(&nodes);
    }
    out
}

fn describe_node_errors(node_errors: &Value) -> String {
    let Some(map) = node_errors.as_object() else {
        return String::new();
    };
    let mut ids: Vec<&String> = map.keys().collect();
    ids.sort();
    ids.iter()
        .map(|id| {
            let node = &map[id.as_str()];
            let class = node["class_type"].as_str().unwrap_or("?");
            let errors: Vec<String> = node["errors"]
                .as_array()
                .map(|errs| {
                    errs.iter()
                        .map(|e| {
                            let msg = e["message"].as_str().unwrap_or("invalid");
                            match e["details"].as_str().filter(|d| !d.is_empty()) {
                                Some(d) => format!("{msg} ({d})"),
                                None => msg.to_string(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("node {id} ({class}): {}", errors.join("; "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_node_and_input() {
        let reply = json!({"error": {"type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
            "node_errors": {"2": {"errors": [{"type": "value_bigger_than_max",
                "message": "Value 1.5 bigger than max of 1.0", "details": "strength",
                "extra_info": {}}], "dependent_outputs": ["3"], "class_type": "ImageAddNoise"},
                "1": {"errors": [{"type": "value_smaller_than_min",
                "message": "Value 0 smaller than min of 1", "details": "width",
                "extra_info": {}}], "dependent_outputs": ["3"], "class_type": "EmptyImage"}}});
        assert_eq!(
            describe_prompt_error(&reply),
            "Prompt outputs failed validation: node 1 (EmptyImage): Value 0 smaller than min of 1 (width); \
             node 2 (ImageAddNoise): Value 1.5 bigger than max of 1.0 (strength)"
        );
    }

    #[test]
    fn unknown_class_keeps_details() {
        let reply = json!({"error": {"type": "invalid_prompt",
            "message": "Cannot execute because node NoSuchNodeClass does not exist.",
            "details": "Node ID '#2'", "extra_info": {}}, "node_errors": {}});
        assert_eq!(
            describe_prompt_error(&reply),
            "Cannot execute because node NoSuchNodeClass does not exist (Node ID '#2')"
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
