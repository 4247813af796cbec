//! `/ws`: connection bookkeeping and ComfyUI's message routing rules (who gets
//! what, one socket per clientId, preview frame flavours).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Inner;

pub(crate) enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    preview_metadata: bool,
}

#[derive(Default)]
pub(crate) struct Sockets {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    /// `server.sockets`: the newest connection per clientId is the only one
    /// that receives anything.
    by_sid: HashMap<String, u64>,
}

impl Sockets {
    pub(crate) fn count(&self) -> usize {
        self.conns.len()
    }

    fn targets(&self, sid: Option<&str>) -> Vec<&Conn> {
        match sid {
            Some(s) => self
                .by_sid
                .get(s)
                .and_then(|id| self.conns.get(id))
                .into_iter()
                .collect(),
            None => self
                .by_sid
                .values()
                .filter_map(|id| self.conns.get(id))
                .collect(),
        }
    }

    /// `send_sync(event, data, sid)`: to one client, or to all when `sid` is None.
    pub(crate) fn send_json(&self, sid: Option<&str>, kind: &str, data: Value) {
        let text = json!({"type": kind, "data": data}).to_string();
        for c in self.targets(sid) {
            let _ = c.tx.send(Out::Text(text.clone()));
        }
    }

    pub(crate) fn send_binary_all(&self, frame: &[u8]) {
        for c in self.targets(None) {
            let _ = c.tx.send(Out::Binary(frame.to_vec()));
        }
    }

    /// A progress tick with an optional picture, in the per-client order the
    /// traces show: legacy clients get `progress` then a type-1 frame; clients
    /// that negotiated metadata get the type-4 frame first. Broadcasts (no
    /// client id) always use type 1.
    pub(crate) fn send_progress_with_image(
        &self,
        sid: Option<&str>,
        progress: Value,
        image: Option<(&[u8], bool, Value)>,
    ) {
        let text = json!({"type": "progress", "data": progress}).to_string();
        for c in self.targets(sid) {
            let Some((bytes, is_png, meta)) = &image else {
                let _ = c.tx.send(Out::Text(text.clone()));
                continue;
            };
            if c.preview_metadata && sid.is_some() {
                let meta = meta.to_string();
                let mut frame = Vec::with_capacity(8 + meta.len() + bytes.len());
                frame.extend_from_slice(&4u32.to_be_bytes());
                frame.extend_from_slice(&(meta.len() as u32).to_be_bytes());
                frame.extend_from_slice(meta.as_bytes());
                frame.extend_from_slice(bytes);
                let _ = c.tx.send(Out::Binary(frame));
                let _ = c.tx.send(Out::Text(text.clone()));
            } else {
                let mut frame = Vec::with_capacity(8 + bytes.len());
                frame.extend_from_slice(&1u32.to_be_bytes());
                frame.extend_from_slice(&(if *is_png { 2u32 } else { 1u32 }).to_be_bytes());
                frame.extend_from_slice(bytes);
                let _ = c.tx.send(Out::Text(text.clone()));
                let _ = c.tx.send(Out::Binary(frame));
            }
        }
    }

    pub(crate) fn close_all(&mut self) {
        for c in self.conns.values() {
            let _ = c.tx.send(Out::Close);
        }
        self.conns.clear();
        self.by_sid.clear();
    }
}

pub(crate) async fn handler(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let sid = q
        .get("clientId")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    ws.on_upgrade(move |socket| run(inner, socket, sid))
}

async fn run(inner: Arc<Inner>, socket: WebSocket, sid: String) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let conn_id = {
        // Greeting and registration under both locks so no broadcast slips between.
        let st = inner.lock();
        let mut socks = inner.sockets();
        socks.next_id += 1;
        let id = socks.next_id;
        socks.conns.insert(
            id,
            Conn {
                tx: tx.clone(),
                preview_metadata: false,
            },
        );
        socks.by_sid.insert(sid.clone(), id);
        let greeting = json!({"type": "status", "data": {
            "status": {"exec_info": {"queue_remaining": st.queue_remaining()}}, "sid": sid}});
        let _ = tx.send(Out::Text(greeting.to_string()));
        let reconnecting =
            st.running.as_ref().and_then(|r| r.client_id()).as_deref() == Some(sid.as_str());
        if let (true, Some(node)) = (reconnecting, &st.running_node) {
            let msg = json!({"type": "executing", "data": {"node": node}});
            let _ = tx.send(Out::Text(msg.to_string()));
        }
        id
    };

    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let res = match out {
                Out::Text(t) => sink.send(Message::Text(t.into())).await,
                Out::Binary(b) => sink.send(Message::Binary(b.into())).await,
                Out::Close => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: "".into(),
                        })))
                        .await;
                    let _ = sink.close().await;
                    break;
                }
            };
            if res.is_err() {
                break;
            }
        }
    });

    let mut negotiated = false;
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue; // logged and ignored by ComfyUI, not counted as "first"
                };
                if negotiated {
                    continue;
                }
                negotiated = true;
                if v.get("type").and_then(Value::as_str) == Some("feature_flags") {
                    let wants = v
                        .pointer("/data/supports_preview_metadata")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let mut socks = inner.sockets();
                    if let Some(c) = socks.conns.get_mut(&conn_id) {
                        c.preview_metadata = wants;
                        let reply = json!({"type": "feature_flags", "data": inner.features()});
                        let _ = c.tx.send(Out::Text(reply.to_string()));
                    }
                }
            }
            // tungstenite queues the 1000 reply itself; reading on flushes it
            // and then ends the stream.
            Ok(Message::Close(_)) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    {
        // Like `finally: self.sockets.pop(sid)`: a stale socket closing after a
        // reconnect with the same id unregisters the new one too.
        let mut socks = inner.sockets();
        if socks.conns.remove(&conn_id).is_some() {
            socks.by_sid.remove(&sid);
        }
    }
    drop(tx);
    let _ = writer.await;
}
