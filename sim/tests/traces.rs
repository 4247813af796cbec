//! Replays the recorded ComfyUI 0.3.64 traces against the simulator and
//! compares every HTTP answer and each socket's message sequence.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Got, Ws, client, png_size, start};
use serde_json::{Value, json};
use sim::{RunningSim, SimConfig};

struct Trace {
    header: Value,
    events: Vec<Value>,
}

fn load(name: &str) -> Trace {
    let path = format!("{}/tests/traces/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let header = lines.next().unwrap();
    Trace {
        header,
        events: lines.collect(),
    }
}

/// Drops what legitimately differs between runs (timestamps, random temp
/// names, tracebacks) and sorts the lists ComfyUI builds from sets.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                let nx = match k.as_str() {
                    "timestamp" | "create_time" => continue,
                    "traceback" => json!("<traceback>"),
                    "current_inputs" => {
                        json!(x.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                    }
                    "executed" | "current_outputs" | "nodes" if x.is_array() => sorted(x),
                    _ => normalize(x),
                };
                out.insert(k.clone(), nx);
            }
            Value::Object(out)
        }
        Value::Array(a) => {
            // A queue/history item: [number, id, graph, extra, outputs_to_execute].
            if a.len() == 5 && a[1].is_string() && a[2].is_object() && a[4].is_array() {
                let mut b: Vec<Value> = a.iter().map(normalize).collect();
                b[4] = sorted(&a[4]);
                return Value::Array(b);
            }
            Value::Array(a.iter().map(normalize).collect())
        }
        Value::String(s) => {
            if let Some(i) = s.find("ComfyUI_temp_") {
                let mut t = s.clone();
                t.replace_range(i + 13..(i + 18).min(s.len()), "XXXXX");
                return Value::String(t);
            }
            v.clone()
        }
        _ => v.clone(),
    }
}

fn sorted(v: &Value) -> Value {
    let mut a: Vec<Value> = v.as_array().cloned().unwrap_or_default();
    a.sort_by_key(|x| x.to_string());
    Value::Array(a)
}

/// A comparable digest of one socket message.
fn digest_got(g: &Got) -> Value {
    match g {
        Got::Text(v) => normalize(v),
        Got::Close(c) => json!({"close": c}),
        Got::Binary(b) => {
            let kind = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let word =
                |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
            match kind {
                1 => json!({"event": 1, "format": word(4), "image": png_size(&b[8..])}),
                3 => {
                    let n = word(4);
                    json!({"event": 3, "node_id": String::from_utf8_lossy(&b[8..8 + n]),
                           "text": String::from_utf8_lossy(&b[8 + n..])})
                }
                4 => {
                    let n = word(4);
                    let meta: Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
                    json!({"event": 4, "metadata": normalize(&meta), "image": png_size(&b[8 + n..])})
                }
                k => json!({"event": k}),
            }
        }
    }
}

fn digest_event(e: &Value) -> Value {
    match e["kind"].as_str() {
        Some("ws_text") => normalize(&e["message"]),
        Some("ws_server_close") => json!({"close": e["code"]}),
        Some("ws_binary") => match e["event"].as_u64() {
            Some(1) => {
                json!({"event": 1, "format": e["format"], "image": [e["image"]["width"], e["image"]["height"]]})
            }
            Some(3) => json!({"event": 3, "node_id": e["node_id"], "text": e["text"]}),
            Some(4) => json!({"event": 4, "metadata": normalize(&e["metadata"]),
                              "image": [e["image"]["width"], e["image"]["height"]]}),
            _ => json!({"event": e["event"]}),
        },
        _ => Value::Null,
    }
}

fn is_status(d: &Value) -> bool {
    d["type"] == "status"
}

/// A 320×200 PNG like the one uploaded in trace 03.
fn upload_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(320, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

struct Replay {
    sim: RunningSim,
    http: reqwest::Client,
    sockets: HashMap<String, Ws>,
    received: HashMap<String, Vec<Value>>,
    expected: HashMap<String, Vec<Value>>,
}

impl Replay {
    async fn new(config: SimConfig) -> Replay {
        Replay {
            sim: start(config).await,
            http: client(),
            sockets: HashMap::new(),
            received: HashMap::new(),
            expected: HashMap::new(),
        }
    }

    /// Reads from `socket` until it has as many messages as the trace shows
    /// before the next client action.
    async fn catch_up(&mut self, socket: &str, want: usize, scenario: &str) {
        let Some(ws) = self.sockets.get_mut(socket) else {
            return;
        };
        let got = self.received.entry(socket.to_string()).or_default();
        while got.len() < want {
            match ws.next(Duration::from_secs(20)).await {
                Some(g) => got.push(digest_got(&g)),
                None => panic!(
                    "{scenario}: {socket} stopped after {} of {want} messages; got {:#?}",
                    got.len(),
                    got
                ),
            }
        }
    }

    async fn catch_up_all(&mut self, scenario: &str) {
        let names: Vec<String> = self.expected.keys().cloned().collect();
        for s in names {
            let want = self.expected[&s].len();
            self.catch_up(&s, want, scenario).await;
        }
    }

    async fn run(&mut self, trace: &Trace) {
        let scenario = trace.header["scenario"].as_str().unwrap().to_string();
        let mut pending_request: Option<Value> = None;
        let mut last_response: Option<reqwest::Response> = None;
        for e in &trace.events {
            let kind = e["kind"].as_str().unwrap();
            let socket = e["socket"].as_str().unwrap_or("").to_string();
            match kind {
                "ws_text" | "ws_binary" | "ws_server_close" => {
                    self.expected
                        .entry(socket)
                        .or_default()
                        .push(digest_event(e));
                }
                "ws_connect" => {
                    self.catch_up_all(&scenario).await;
                    let id = e["query"]["clientId"].as_str();
                    let ws = Ws::connect(&self.sim.url, id).await;
                    self.sockets.insert(socket.clone(), ws);
                    // A reused socket name starts a fresh sequence.
                    self.expected.entry(socket).or_default();
                }
                "ws_client_text" => {
                    self.catch_up_all(&scenario).await;
                    let text = e["message"].to_string();
                    self.sockets
                        .get_mut(&socket)
                        .unwrap()
                        .send_text(&text)
                        .await;
                }
                "ws_client_close" => {
                    self.catch_up_all(&scenario).await;
                    self.sockets.get_mut(&socket).unwrap().close().await;
                }
                "http_request" => {
                    self.catch_up_all(&scenario).await;
                    pending_request = Some(e.clone());
                    last_response = Some(self.send(e).await);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                "http_response" => {
                    let req = pending_request.take().expect("response without request");
                    let resp = last_response.take().unwrap();
                    self.check_response(&scenario, &req, e, resp).await;
                }
                other => panic!("unknown event kind {other}"),
            }
        }
        self.catch_up_all(&scenario).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Nothing unexpected may follow.
        for (name, ws) in self.sockets.iter_mut() {
            if let Some(extra) = ws.next(Duration::from_millis(50)).await {
                let want = &self.expected[name];
                let got = &self.received[name];
                if got.len() >= want.len() {
                    panic!(
                        "{scenario}: {name} got an extra message {:?}",
                        digest_got(&extra)
                    );
                }
            }
        }
        for (name, want) in &self.expected {
            let got = self.received.get(name).cloned().unwrap_or_default();
            // `status` broadcasts interleave with job events by timing; compare
            // them as their own sequence, and everything else in exact order.
            let split = |v: &[Value]| -> (Vec<Value>, Vec<Value>) {
                v.iter().cloned().partition(|d| !is_status(d))
            };
            let (want_events, want_status) = split(want);
            let (got_events, got_status) = split(&got);
            for (i, (w, g)) in want_events.iter().zip(&got_events).enumerate() {
                assert_eq!(g, w, "{scenario}: {name} event #{i} differs");
            }
            assert_eq!(
                got_events.len(),
                want_events.len(),
                "{scenario}: {name} event count; got {got_events:#?}"
            );
            assert_eq!(
                got_status, want_status,
                "{scenario}: {name} status sequence"
            );
        }
    }

    async fn send(&self, e: &Value) -> reqwest::Response {
        let method = e["method"].as_str().unwrap();
        let url = format!("{}{}", self.sim.url, e["path"].as_str().unwrap());
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(q) = e["query"].as_object() {
            let pairs: Vec<(String, String)> = q
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            req = req.query(&pairs);
        }
        if let Some(form) = e["form"].as_object() {
            let mut mp = reqwest::multipart::Form::new();
            for (k, v) in form {
                if let Some(file) = v.as_object() {
                    let part = reqwest::multipart::Part::bytes(upload_png())
                        .file_name(file["filename"].as_str().unwrap().to_string())
                        .mime_str(file["content_type"].as_str().unwrap())
                        .unwrap();
                    mp = mp.part(k.clone(), part);
                } else {
                    mp = mp.text(k.clone(), v.as_str().unwrap().to_string());
                }
            }
            req = req.multipart(mp);
        } else if let Some(text) = e["body_text"].as_str() {
            req = req
                .header("content-type", "application/json")
                .body(text.to_string());
        } else if !e["body"].is_null() {
            req = req.json(&e["body"]);
        }
        req.send().await.expect("http")
    }

    async fn check_response(
        &self,
        scenario: &str,
        req: &Value,
        want: &Value,
        resp: reqwest::Response,
    ) {
        let what = format!("{scenario}: {} {}", req["method"], req["path"]);
        assert_eq!(
            resp.status().as_u16() as u64,
            want["status"].as_u64().unwrap(),
            "{what} status"
        );
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(json!(ct), want["content_type"], "{what} content type");
        let bytes = resp.bytes().await.unwrap();
        if let Some(body) = want.get("body") {
            let got: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(normalize(&got), normalize(body), "{what} body");
        } else if let Some(text) = want.get("body_text") {
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                text.as_str().unwrap(),
                "{what} body"
            );
        } else if let Some(summary) = want.get("body_summary") {
            let (w, h) = png_size(&bytes);
            assert_eq!(
                (w as u64, h as u64),
                (
                    summary["png_width"].as_u64().unwrap(),
                    summary["png_height"].as_u64().unwrap()
                )
            );
        } else {
            assert!(bytes.is_empty(), "{what}: expected an empty body");
        }
    }
}

fn slow() -> SimConfig {
    SimConfig {
        step_delay: Duration::from_millis(120),
        ..SimConfig::default()
    }
}

async fn replay(names: &[&str], config: SimConfig) {
    let mut r = Replay::new(config).await;
    for name in names {
        // Each trace names its sockets ws1/ws2 afresh.
        r.sockets.clear();
        r.received.clear();
        r.expected.clear();
        r.run(&load(name)).await;
    }
}

#[tokio::test]
async fn trace_01_txt2img_success() {
    replay(&["01-txt2img-success.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_02_cached_repeat_after_01() {
    replay(
        &["01-txt2img-success.jsonl", "02-txt2img-cached-repeat.jsonl"],
        SimConfig::default(),
    )
    .await;
}

#[tokio::test]
async fn trace_03_img2img_upload() {
    replay(&["03-img2img-upload.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_04_validation_error() {
    replay(&["04-validation-error.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_05_execution_error() {
    replay(&["05-execution-error.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_06_interrupt_running() {
    replay(&["06-interrupt-running.jsonl"], slow()).await;
}

#[tokio::test]
async fn trace_07_delete_pending() {
    replay(&["07-delete-pending.jsonl"], slow()).await;
}

#[tokio::test]
async fn trace_09_previews_plain() {
    replay(&["09-previews-plain.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_10_previews_metadata() {
    replay(&["10-previews-metadata.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_11_queue_listing() {
    replay(
        &["11-queue-listing.jsonl"],
        SimConfig {
            step_delay: Duration::from_millis(60),
            ..SimConfig::default()
        },
    )
    .await;
}

#[tokio::test]
async fn trace_12_malformed_json() {
    replay(&["12-prompt-malformed-json.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_13_unknown_class() {
    replay(&["13-prompt-unknown-class.jsonl"], SimConfig::default()).await;
}

#[tokio::test]
async fn trace_14_history_delete() {
    replay(&["14-history-delete.jsonl"], SimConfig::default()).await;
}

/// Trace 08: where the job is when the client comes back depends on timing,
/// so this checks the documented behaviour rather than exact node ids.
#[tokio::test]
async fn trace_08_ws_reconnect() {
    let t = load("08-ws-reconnect.jsonl");
    let cid = t.header["client_ids"]["ws1"].as_str().unwrap();
    let pid = t.header["prompt_ids"]["A"].as_str().unwrap();
    let sim = start(slow()).await;
    let http = client();
    let mut ws1 = Ws::connect(&sim.url, Some(cid)).await;
    assert_eq!(ws1.next_json().await["data"]["sid"], cid);
    let body = json!({"prompt": common::graph("slow.json"), "client_id": cid, "prompt_id": pid});
    let r: Value = http
        .post(format!("{}/prompt", sim.url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["prompt_id"], pid);
    loop {
        let v = ws1.next_json().await;
        if v["type"] == "executing" && v["data"]["node"] == "3" {
            break;
        }
    }
    ws1.close().await;
    assert!(matches!(
        ws1.next(Duration::from_secs(5)).await,
        Some(Got::Close(1000))
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let q: Value = http
        .get(format!("{}/queue", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        q["queue_running"][0][1], pid,
        "closing the socket cancels nothing"
    );
    let mut ws2 = Ws::connect(&sim.url, Some(cid)).await;
    let greeting = ws2.next_json().await;
    assert_eq!(
        greeting,
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": cid}})
    );
    let current = ws2.next_json().await;
    assert_eq!(current["type"], "executing");
    assert!(
        current["data"].get("prompt_id").is_none() && current["data"].get("display_node").is_none()
    );
    let node: u32 = current["data"]["node"].as_str().unwrap().parse().unwrap();
    assert!(
        (3..=9).contains(&node),
        "reconnect mid-run names the current node, got {node}"
    );
    let rest = ws2.until_done(pid).await;
    let kinds = common::types(&rest);
    let tail: Vec<&str> = kinds
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["execution_success", "status", "executing"]);
    assert!(kinds.contains(&"executed".to_string()));
    let h: Value = http
        .get(format!("{}/history/{pid}", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h[pid]["status"]["status_str"], "success");
    assert_eq!(
        h[pid]["outputs"]["9"]["images"][0]["filename"],
        "slow_00001_.png"
    );
}
