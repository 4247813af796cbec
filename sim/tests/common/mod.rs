//! Shared test client: real HTTP and WebSocket over loopback.
#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use sim::{RunningSim, SimConfig, Simulator};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub async fn start(config: SimConfig) -> RunningSim {
    Simulator::new(config)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// What a socket received, decoded enough to compare.
#[derive(Debug, Clone)]
pub enum Got {
    Text(Value),
    Binary(Vec<u8>),
    Close(u16),
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(base: &str, client_id: Option<&str>) -> Ws {
        let url = match client_id {
            Some(c) => format!("{}/ws?clientId={c}", base.replace("http://", "ws://")),
            None => format!("{}/ws", base.replace("http://", "ws://")),
        };
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Ws { stream }
    }

    pub async fn next(&mut self, wait: Duration) -> Option<Got> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Text(t)) => {
                    return Some(Got::Text(serde_json::from_str(t.as_str()).unwrap()));
                }
                Ok(Message::Binary(b)) => return Some(Got::Binary(b.to_vec())),
                Ok(Message::Close(f)) => {
                    return Some(Got::Close(f.map(|f| u16::from(f.code)).unwrap_or(1005)));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Next JSON message, skipping binary frames.
    pub async fn next_json(&mut self) -> Value {
        loop {
            match self.next(Duration::from_secs(20)).await {
                Some(Got::Text(v)) => return v,
                Some(_) => continue,
                None => panic!("socket ended while waiting for JSON"),
            }
        }
    }

    /// Collects everything up to and including `executing{node:null}` for `pid`.
    pub async fn until_done(&mut self, pid: &str) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            let g = self
                .next(Duration::from_secs(30))
                .await
                .expect("ended before done");
            let done = matches!(&g, Got::Text(v) if v["type"] == "executing"
                && v["data"]["node"].is_null() && v["data"]["prompt_id"] == pid);
            out.push(g);
            if done {
                return out;
            }
        }
    }

    pub async fn send_text(&mut self, t: &str) {
        self.stream.send(Message::Text(t.into())).await.unwrap();
    }

    /// Sends a close frame (1000) and leaves the reply for `next` to read.
    pub async fn close(&mut self) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = self.stream.send(Message::Close(Some(frame))).await;
    }
}

pub fn types(msgs: &[Got]) -> Vec<String> {
    msgs.iter()
        .map(|g| match g {
            Got::Text(v) => v["type"].as_str().unwrap_or("?").to_string(),
            Got::Binary(b) => format!("binary{}", u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            Got::Close(c) => format!("close{c}"),
        })
        .collect()
}

pub fn graph(name: &str) -> Value {
    let path = format!("{}/tests/traces/graphs/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("decodable image");
    (img.width(), img.height())
}
