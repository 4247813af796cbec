//! One prompt's life on one server: submit, follow its events, resolve it from history, fetch
//! its images, and clean up, including when the caller goes away mid-way.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{
    sync::mpsc,
    time::{Instant, sleep, sleep_until},
};
use tracing::Instrument;

use super::{
    ComfyError, ComfyServer, OutputImage,
    events::{JobEvent, JobUpdate},
};

/// With the socket up, silence this long makes the job check history itself.
const QUIET_POLL: Duration = Duration::from_secs(5);
/// With the socket down, history is the only source of truth; ask it this often.
const DOWN_POLL: Duration = Duration::from_secs(1);
/// Consecutive failed history checks after which ComfyUI counts as gone: a busy server may miss
/// a few, but one whose event socket is down too is most likely not running at all, and its
/// job should move to another server soon.
const MAX_POLL_FAILURES: u32 = 10;
const MAX_POLL_FAILURES_SOCKET_DOWN: u32 = 3;

/// Removes the waiter, and cancels the prompt in ComfyUI if the job did not run to its end
/// (the client disconnected, or the generation timed out): dropping the future is enough.
struct JobGuard {
    server: Arc<ComfyServer>,
    prompt_id: String,
    submitted: bool,
    settled: bool,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.server
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.prompt_id);
        self.server.positions.forget(&self.prompt_id);
        if self.submitted && !self.settled {
            let server = self.server.clone();
            let prompt_id = std::mem::take(&mut self.prompt_id);
            tokio::spawn(async move {
                server.cancel(&prompt_id).await;
                server.forget_when_done(&prompt_id).await;
            });
        }
    }
}

/// Which prompt a run is: its id in ComfyUI, and whether another bridge may have submitted it
/// already (a job taken over from a bridge that died), so that it is looked for first.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// A lowercase UUID: newer ComfyUI refuses a client-chosen id in any other form.
    pub id: String,
    pub resume: bool,
}

impl Prompt {
    pub fn fresh() -> Prompt {
        Prompt {
            id: uuid::Uuid::new_v4().to_string(),
            resume: false,
        }
    }

    /// The same id each time for the same `name`, so a bridge taking a job over finds the
    /// prompts its first bridge submitted.
    pub fn named(name: &[u8], resume: bool) -> Prompt {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(name);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        Prompt {
            id: uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string(),
            resume,
        }
    }
}

impl ComfyServer {
    /// Runs a prompt to its end and returns the images of `outputs` (node ids, in that order;
    /// empty means every image output, by node id). `updates` receives progress as it happens.
    /// Everything it logs carries the server and the prompt id.
    pub async fn run(
        self: &Arc<Self>,
        prompt: Prompt,
        graph: &Value,
        outputs: &[String],
        updates: Option<mpsc::UnboundedSender<JobUpdate>>,
        timeout: Duration,
    ) -> Result<Vec<OutputImage>, ComfyError> {
        let span = tracing::info_span!("job", server = %self.name(), prompt_id = %prompt.id);
        self.run_prompt(prompt, graph, outputs, updates, timeout)
            .instrument(span)
            .await
    }

    async fn run_prompt(
        self: &Arc<Self>,
        prompt: Prompt,
        graph: &Value,
        outputs: &[String],
        updates: Option<mpsc::UnboundedSender<JobUpdate>>,
        timeout: Duration,
    ) -> Result<Vec<OutputImage>, ComfyError> {
        let Prompt {
            id: prompt_id,
            resume,
        } = prompt;
        let deadline = Instant::now() + timeout;
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(prompt_id.clone(), tx);
        let mut guard = JobGuard {
            server: self.clone(),
            prompt_id: prompt_id.clone(),
            submitted: false,
            settled: false,
        };

        let send = |update: JobUpdate| {
            if let Some(tx) = &updates {
                let _ = tx.send(update);
            }
        };

        // A prompt another bridge submitted is followed, or collected, where it is; one this
        // server does not know is submitted as if new.
        let found = if resume {
            match self.resolve(&prompt_id).await {
                Ok(Some(entry)) => Some(Some(entry)),
                Ok(None) => Some(None),
                Err(ComfyError::Lost) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if let Some(entry) = found.clone().flatten() {
            tracing::info!(server = %self.url, prompt_id, "collecting a prompt another bridge ran");
            guard.settled = true;
            return self.finish(prompt_id, &entry, outputs, Vec::new()).await;
        }
        // Counted as submitted before the request goes out: a caller that leaves while the
        // POST is in flight may leave a queued prompt behind, which the guard then cancels.
        guard.submitted = true;
        if found.is_some() {
            tracing::info!(server = %self.url, prompt_id, "following a prompt another bridge submitted");
        } else {
            let queued = tokio::select! {
                r = self.submit(&prompt_id, graph) => r.inspect_err(|_| guard.settled = true)?,
                () = sleep_until(deadline) => return Err(ComfyError::Timeout(timeout)),
            };
            tracing::debug!(server = %self.url, prompt_id, number = queued, "prompt queued");
        }
        if updates.is_some() {
            let position = self.queue_position(&prompt_id);
            let ahead = tokio::time::timeout(Duration::from_secs(2), position)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            send(JobUpdate::Queued { ahead });
            if ahead != Some(0) {
                self.positions.watch(&prompt_id, ahead);
            }
        }

        let mut failures = 0u32;
        let mut socket_images: Vec<(Option<String>, bytes::Bytes)> = Vec::new();
        let mut heard = Heard::default();
        let entry = loop {
            let wait = if self.socket_connected() {
                QUIET_POLL
            } else {
                DOWN_POLL
            };
            let check_history = tokio::select! {
                event = rx.recv() => match event {
                    Some(JobEvent::Update(update)) => {
                        heard.started |= matches!(update, JobUpdate::Started);
                        send(update);
                        false
                    }
                    Some(JobEvent::Image { node, data }) => {
                        send(JobUpdate::Preview { mime: "image/png", data: data.clone(), whole: true });
                        socket_images.push((node, data));
                        false
                    }
                    Some(JobEvent::Executed { node, output }) => {
                        heard.outputs.insert(node, output);
                        false
                    }
                    Some(JobEvent::Succeeded) => { heard.succeeded = true; false }
                    Some(JobEvent::Finished) => {
                        if let Some(entry) = heard.entry() {
                            break entry;
                        }
                        true
                    }
                    Some(JobEvent::SocketUp) => { heard.gap = true; true }
                    Some(JobEvent::SocketDown) => { heard.gap = true; false }
                    None => false,
                },
                () = sleep(wait) => true,
                () = sleep_until(deadline) => return Err(ComfyError::Timeout(timeout)),
            };
            if !check_history {
                continue;
            }
            match self.resolve(&prompt_id).await {
                Ok(Some(entry)) => break entry,
                Ok(None) => failures = 0,
                Err(ComfyError::Lost) => {
                    guard.settled = true;
                    return Err(ComfyError::Lost);
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(server = %self.url, prompt_id, error = %e, "history check failed");
                    let limit = if self.socket_connected() {
                        MAX_POLL_FAILURES
                    } else {
                        MAX_POLL_FAILURES_SOCKET_DOWN
                    };
                    if failures >= limit {
                        guard.settled = true;
                        return Err(match e {
                            ComfyError::Unavailable { reason } => ComfyError::Gone { reason },
                            other => other,
                        });
                    }
                }
            }
        };
        guard.settled = true;
        self.finish(prompt_id, &entry, outputs, socket_images).await
    }

    /// The images of a finished prompt; its history entry is then dropped.
    async fn finish(
        self: &Arc<Self>,
        prompt_id: String,
        entry: &Value,
        outputs: &[String],
        socket_images: Vec<(Option<String>, bytes::Bytes)>,
    ) -> Result<Vec<OutputImage>, ComfyError> {
        let result = self.collect(entry, outputs, socket_images).await;
        let server = self.clone();
        tokio::spawn(async move { server.delete_history(&prompt_id).await });
        result
    }

    /// The finished entry, `None` while the prompt is still queued or running, or `Lost` when
    /// ComfyUI no longer knows it (a restart dropped it).
    async fn resolve(&self, prompt_id: &str) -> Result<Option<Value>, ComfyError> {
        if let Some(entry) = self.history(prompt_id).await? {
            return Ok(Some(entry));
        }
        if self.in_queue(prompt_id).await? {
            return Ok(None);
        }
        // ComfyUI writes history and leaves the queue under one lock, so a prompt absent from
        // the queue has its entry by now, unless the server forgot it.
        match self.history(prompt_id).await? {
            Some(entry) => Ok(Some(entry)),
            None => Err(ComfyError::Lost),
        }
    }

    /// The images of `outputs` (all, by node id, when empty): those history lists, then those
    /// `SaveImageWebsocket` nodes sent over the socket, which history never holds.
    async fn collect(
        &self,
        entry: &Value,
        outputs: &[String],
        socket_images: Vec<(Option<String>, bytes::Bytes)>,
    ) -> Result<Vec<OutputImage>, ComfyError> {
        let status = &entry["status"];
        if status["status_str"].as_str() == Some("error") {
            return Err(failure(status));
        }
        let empty = serde_json::Map::new();
        let all = entry["outputs"].as_object().unwrap_or(&empty);
        let mut nodes: Vec<&String> = if outputs.is_empty() {
            all.keys().collect()
        } else {
            outputs.iter().filter(|id| all.contains_key(*id)).collect()
        };
        if outputs.is_empty() {
            nodes.sort();
        }
        let mut images = Vec::new();
        for node in nodes {
            for file in all[node.as_str()]["images"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let data = self.view(file).await?;
                images.push(OutputImage {
                    node_id: node.clone(),
                    filename: file["filename"].as_str().unwrap_or("").to_string(),
                    data,
                });
            }
        }
        if images.is_empty() {
            let wanted = |node: &Option<String>| match node {
                Some(n) => outputs.is_empty() || outputs.contains(n),
                None => true,
            };
            images = socket_images
                .into_iter()
                .filter(|(node, _)| wanted(node))
                .map(|(node, data)| OutputImage {
                    node_id: node.unwrap_or_default(),
                    filename: String::new(),
                    data,
                })
                .collect();
        }
        if images.is_empty() {
            return Err(ComfyError::NoOutput);
        }
        Ok(images)
    }

    /// After a cancel, waits for the prompt to settle and drops its history entry.
    async fn forget_when_done(&self, prompt_id: &str) {
        for _ in 0..60 {
            match self.resolve(prompt_id).await {
                Ok(Some(_)) => break,
                Ok(None) => sleep(Duration::from_millis(500)).await,
                // Dequeued prompts never get an entry; nothing to forget.
                Err(_) => return,
            }
        }
        self.delete_history(prompt_id).await;
    }
}

/// What the socket told of one prompt. When it heard the whole run, from its start to its
/// success, it knows the outputs as history would list them, and saves a history round trip
/// on every job; anything less, and history decides.
#[derive(Default)]
struct Heard {
    started: bool,
    succeeded: bool,
    /// The socket dropped or reconnected while the prompt ran: events may be missing.
    gap: bool,
    outputs: serde_json::Map<String, Value>,
}

impl Heard {
    /// A history entry built from the socket's messages, when they tell the whole run.
    fn entry(&mut self) -> Option<Value> {
        if !(self.started && self.succeeded) || self.gap {
            return None;
        }
        let outputs = std::mem::take(&mut self.outputs);
        Some(serde_json::json!({
            "status": {"status_str": "success", "completed": true},
            "outputs": outputs,
        }))
    }
}

/// Reads why a prompt failed from the last message of its history status.
fn failure(status: &Value) -> ComfyError {
    let last = status["messages"].as_array().and_then(|m| {
        m.iter()
            .rev()
            .find(|m| m[0].as_str().is_some_and(|t| t != "execution_cached"))
    });
    match last {
        Some(m) if m[0] == "execution_interrupted" => ComfyError::Interrupted,
        Some(m) if m[0] == "execution_error" => {
            let d = &m[1];
            let text = |k: &str| d[k].as_str().unwrap_or("").trim().to_string();
            ComfyError::Execution {
                node_id: text("node_id"),
                node_type: text("node_type"),
                exception_type: text("exception_type"),
                message: text("exception_message"),
            }
        }
        _ => ComfyError::BadResponse("the job failed without an error message".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn execution_errors_carry_node_and_exception() {
        let status = json!({"status_str": "error", "completed": false, "messages": [
            ["execution_start", {"prompt_id": "p"}],
            ["execution_cached", {"nodes": [], "prompt_id": "p"}],
            ["execution_error", {"prompt_id": "p", "node_id": "2", "node_type": "ImageToMask",
                "exception_message": "index 3 is out of bounds for dimension 3 with size 3\n",
                "exception_type": "IndexError"}]]});
        assert_eq!(
            failure(&status).to_string(),
            "ComfyUI failed while running node 2 (ImageToMask): IndexError: index 3 is out of bounds for dimension 3 with size 3"
        );
    }

    #[test]
    fn the_socket_stands_in_for_history_only_when_it_heard_the_whole_run() {
        let image = json!({"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]});
        let whole = || Heard {
            started: true,
            succeeded: true,
            gap: false,
            outputs: [("9".to_string(), image.clone())].into_iter().collect(),
        };
        let entry = whole().entry().expect("a whole run");
        assert_eq!(entry["status"]["status_str"], "success");
        assert_eq!(entry["outputs"]["9"], image);

        let partial = [
            Heard {
                started: false,
                ..whole()
            },
            Heard {
                succeeded: false,
                ..whole()
            },
            Heard {
                gap: true,
                ..whole()
            },
        ];
        for mut heard in partial {
            assert!(heard.entry().is_none());
        }
    }

    #[test]
    fn interrupts_are_told_apart_from_errors() {
        let status = json!({"status_str": "error", "completed": false, "messages": [
            ["execution_start", {"prompt_id": "p"}],
            ["execution_interrupted", {"prompt_id": "p", "node_id": "4"}]]});
        assert!(matches!(failure(&status), ComfyError::Interrupted));
    }
}
