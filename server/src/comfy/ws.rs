//! The event socket: one per server, reconnecting with backoff, routing every message to the
//! job that owns its prompt id and ignoring the rest (a shared ComfyUI is noisy).

use std::{
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{
    ComfyServer,
    events::{JobEvent, JobUpdate},
};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) fn spawn(server: &Arc<ComfyServer>) {
    let weak = Arc::downgrade(server);
    let shutdown = server.shutdown.clone();
    let url = socket_url(&server.url, &server.client_id);
    tokio::spawn(async move {
        tokio::select! {
            () = run(weak, url) => {}
            () = shutdown.cancelled() => {}
        }
    });
}

fn socket_url(base: &str, client_id: &str) -> String {
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        format!("ws://{base}")
    };
    format!("{ws_base}/ws?clientId={client_id}")
}

/// Keeps a socket open for as long as the server handle lives.
async fn run(weak: Weak<ComfyServer>, url: String) {
    let mut backoff = BACKOFF_START;
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((mut socket, _)) => {
                // Metadata frames name their prompt, so previews never land on the wrong job.
                let flags = r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#;
                if socket.send(Message::text(flags)).await.is_err() {
                    continue;
                }
                let Some(server) = weak.upgrade() else { return };
                server.connected.store(true, Ordering::Relaxed);
                server.mark_up();
                broadcast(&server, JobEvent::SocketUp);
                tracing::info!(server = %server.url, "event socket connected");
                let reader = server.clone();
                tokio::spawn(async move { reader.refresh_info().await });
                drop(server);
                backoff = BACKOFF_START;
                while let Some(msg) = socket.next().await {
                    let Some(server) = weak.upgrade() else { return };
                    match msg {
                        Ok(Message::Text(text)) => handle_text(&server, text.as_str()),
                        Ok(Message::Binary(data)) => handle_binary(&server, data),
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let Some(server) = weak.upgrade() else { return };
                server.connected.store(false, Ordering::Relaxed);
                server.queue_remaining.store(u64::MAX, Ordering::Relaxed);
                server.note_error("the event socket closed".into());
                broadcast(&server, JobEvent::SocketDown);
                tracing::warn!(server = %server.url, "event socket closed; reconnecting");
            }
            Err(e) => {
                if let Some(server) = weak.upgrade() {
                    tracing::debug!(server = %server.url, error = %e, "event socket connect failed");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn broadcast(server: &ComfyServer, event: JobEvent) {
    let waiters = server.waiters.lock().unwrap_or_else(|p| p.into_inner());
    for tx in waiters.values() {
        let _ = tx.send(event.clone());
    }
}

fn deliver(server: &ComfyServer, prompt_id: &str, event: JobEvent) {
    let waiters = server.waiters.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = waiters.get(prompt_id) {
        let _ = tx.send(event);
    }
}

fn set_running(server: &ComfyServer, prompt_id: Option<&str>) {
    let mut running = server.running.lock().unwrap_or_else(|p| p.into_inner());
    *running = prompt_id.map(str::to_string);
}

fn handle_text(server: &Arc<ComfyServer>, text: &str) {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let data = &msg["data"];
    if msg["type"] == "status" {
        if let Some(remaining) = data["status"]["exec_info"]["queue_remaining"].as_u64() {
            server.queue_remaining.store(remaining, Ordering::Relaxed);
        }
        server.queue_moved();
        return;
    }
    let Some(prompt_id) = data["prompt_id"].as_str() else {
        return;
    };
    let event = match msg["type"].as_str().unwrap_or("") {
        "execution_start" => {
            server.positions.forget(prompt_id);
            set_running(server, Some(prompt_id));
            JobEvent::Update(JobUpdate::Started)
        }
        "executing" => match data["node"].as_str() {
            Some(node) => {
                set_running(server, Some(prompt_id));
                JobEvent::Update(JobUpdate::Node {
                    node: node.to_string(),
                })
            }
            None => {
                set_running(server, None);
                JobEvent::Finished
            }
        },
        // A cached output node with no UI sends `output: null`; history lists nothing for it.
        "executed" => match (data["node"].as_str(), &data["output"]) {
            (Some(node), output @ Value::Object(_)) => JobEvent::Executed {
                node: node.to_string(),
                output: output.clone(),
            },
            _ => return,
        },
        "execution_success" => JobEvent::Succeeded,
        "progress" => JobEvent::Update(JobUpdate::Progress {
            node: data["node"].as_str().map(str::to_string),
            value: data["value"].as_f64().unwrap_or(0.0).max(0.0) as u64,
            max: data["max"].as_f64().unwrap_or(0.0).max(0.0) as u64,
        }),
        _ => return,
    };
    deliver(server, prompt_id, event);
}

fn handle_binary(server: &ComfyServer, data: Bytes) {
    let Some(kind) = read_u32(&data, 0) else {
        return;
    };
    let (prompt_id, mime, image, node) = match kind {
        // PREVIEW_IMAGE: [type][format][bytes]; no prompt id, so it belongs to the running one.
        1 => {
            let mime = match read_u32(&data, 4) {
                Some(1) => "image/jpeg",
                Some(2) => "image/png",
                _ => return,
            };
            let running = server.running.lock().unwrap_or_else(|p| p.into_inner());
            let Some(id) = running.clone() else { return };
            (id, mime, data.slice(8..), None)
        }
        // PREVIEW_IMAGE_WITH_METADATA: [type][len][json][bytes].
        4 => {
            let Some(len) = read_u32(&data, 4).map(|l| l as usize) else {
                return;
            };
            let Some(meta) = data.get(8..8 + len) else {
                return;
            };
            let Ok(meta) = serde_json::from_slice::<Value>(meta) else {
                return;
            };
            let Some(id) = meta["prompt_id"].as_str() else {
                return;
            };
            let mime = match meta["image_type"].as_str() {
                Some("image/png") => "image/png",
                _ => "image/jpeg",
            };
            let node = meta["node_id"].as_str().map(str::to_owned);
            (id.to_string(), mime, data.slice(8 + len..), node)
        }
        _ => return,
    };
    let event = if mime == "image/png" {
        JobEvent::Image { node, data: image }
    } else {
        JobEvent::Update(JobUpdate::Preview {
            mime,
            data: image,
            whole: false,
        })
    };
    deliver(server, &prompt_id, event);
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_follow_the_scheme() {
        assert_eq!(
            socket_url("http://127.0.0.1:8188", "abc"),
            "ws://127.0.0.1:8188/ws?clientId=abc"
        );
        assert_eq!(
            socket_url("https://gpu.example/comfy", "abc"),
            "wss://gpu.example/comfy/ws?clientId=abc"
        );
    }

    #[test]
    fn short_frames_are_ignored() {
        assert_eq!(read_u32(&[0, 0, 1], 0), None);
        assert_eq!(read_u32(&[0, 0, 0, 4, 9], 0), Some(4));
    }
}
