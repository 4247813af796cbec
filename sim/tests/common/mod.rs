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

/// `POST /upload/image` with a PNG; returns the reply.
pub async fn upload_png(http: &reqwest::Client, base: &str, png: Vec<u8>, name: &str) -> Value {
    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(png).file_name(name.to_string()),
    );
    let r = http
        .post(format!("{base}/upload/image"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub fn encode_png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Queues a graph without a client id and polls `/history` until it has finished.
pub async fn run_to_history(http: &reqwest::Client, base: &str, graph: &Value) -> Value {
    let r = http
        .post(format!("{base}/prompt"))
        .json(&serde_json::json!({ "prompt": graph }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let pid = body["prompt_id"].as_str().unwrap().to_string();
    for _ in 0..2400 {
        let h: Value = http
            .get(format!("{base}/history/{pid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(e) = h.get(&pid) {
            return e.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no history for {pid}");
}

/// The first image a finished prompt's output node saved, fetched through `/view`.
pub async fn output_image(
    http: &reqwest::Client,
    base: &str,
    entry: &Value,
    node: &str,
) -> image::RgbImage {
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    let img = &entry["outputs"][node]["images"][0];
    let r = http
        .get(format!("{base}/view"))
        .query(&[
            ("filename", img["filename"].as_str().unwrap()),
            ("subfolder", img["subfolder"].as_str().unwrap()),
            ("type", img["type"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    image::load_from_memory(&r.bytes().await.unwrap())
        .unwrap()
        .to_rgb8()
}

/// Posts an upload form (`/upload/image` or `/upload/mask`) and returns the reply.
pub async fn upload(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    form: reqwest::multipart::Form,
) -> Value {
    http.post(format!("{base}{path}"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
