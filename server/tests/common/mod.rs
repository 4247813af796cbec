//! Starts a simulator and a bridge in front of it on ephemeral ports, and talks to them over HTTP.
#![allow(dead_code)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde_json::Value;
use server::config::Config;

pub const MODEL: &str = "weightfree-txt2img";

pub struct Harness {
    pub bridge: server::Running,
    pub sim: sim::RunningSim,
    pub http: reqwest::Client,
    pub url: String,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.bridge.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn shipped_workflows() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows"))
}

/// A URL where nothing listens: a port that was free a moment ago.
pub fn dead_comfyui() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub async fn start() -> Harness {
    start_with(|_| {}).await
}

/// A simulator plus a bridge pointed at it; `tune` adjusts the bridge's configuration.
pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Harness {
    start_full(sim::SimConfig::default(), tune).await
}

/// A simulator that takes `step` per node and sampler step, for jobs that last a while.
pub fn slow_sim(step: Duration) -> sim::SimConfig {
    sim::SimConfig {
        step_delay: step,
        ..sim::SimConfig::default()
    }
}

/// Another simulator, beside the harness's own.
pub async fn sim_with(config: sim::SimConfig) -> sim::RunningSim {
    sim::Simulator::new(config)
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

/// As `start_with`, with the simulator configured too.
pub async fn start_full(sim_config: sim::SimConfig, tune: impl FnOnce(&mut Config)) -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,server=info")
        .with_test_writer()
        .try_init();
    let sim = sim::Simulator::new(sim_config)
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts");
    let dir = scratch_dir();
    let mut config = Config::for_tests(shipped_workflows(), dir.join("data"));
    config.comfyui_url = vec![sim.url.clone()];
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    tune(&mut config);
    let uses_sim = config.comfyui_url.contains(&sim.url);
    let bridge = server::start(config).await.expect("bridge starts");
    let url = bridge.url();
    let harness = Harness {
        bridge,
        sim,
        http: reqwest::Client::new(),
        url,
        dir,
    };
    if uses_sim {
        harness.wait_for_socket().await;
    }
    harness
}

impl Harness {
    /// The bridge's `DATA_DIR`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Waits until the bridge's event socket to ComfyUI is up and it has read the server's node
    /// schemas (which give the models' options), as it has moments after start.
    pub async fn wait_for_socket(&self) {
        for _ in 0..1000 {
            if self.sim.sim.socket_count() > 0 && !self.bridge.state.models.schemas().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the bridge never opened its event socket or never read /object_info");
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        read(self.send_json(path, body).await).await
    }

    pub async fn send_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.fetch(path).await).await
    }

    /// A GET of `path` on the bridge, the response as it came (files, images).
    pub async fn fetch(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn generate(&self, body: Value) -> (u16, Value) {
        self.post("/v1/images/generations", body).await
    }

    /// Waits until ComfyUI (the simulator) has no job queued or running.
    pub async fn wait_until_idle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.sim.sim.pending_ids().is_empty() && self.sim.sim.running_id().is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Status and JSON body; asserts every error is OpenAI's envelope, as clients expect.
pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert!(
            content_type.starts_with("application/json"),
            "error with content type {content_type:?}"
        );
        assert_envelope(&body);
    }
    (status, body)
}

/// The entry for `id` in a `/v1/models` list.
pub fn listed<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
}

pub fn assert_envelope(body: &Value) {
    let err = &body["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    assert!(err["type"].is_string(), "no type in {body}");
    assert!(err.get("param").is_some(), "no param in {body}");
    assert!(err.get("code").is_some(), "no code in {body}");
}

pub fn decode_b64(item: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(item["b64_json"].as_str().expect("b64_json"))
        .expect("valid base64")
}

pub fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("a decodable image");
    (img.width(), img.height())
}

/// The PNG's `prompt` text chunk, where ComfyUI's SaveImage records the graph it ran.
pub fn embedded_graph(png: &[u8]) -> Option<Value> {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().ok()?) as usize;
        let kind = &png[at + 4..at + 8];
        let data = png.get(at + 8..at + 8 + len)?;
        if kind == b"tEXt" {
            let mut parts = data.splitn(2, |b| *b == 0);
            if parts.next() == Some(b"prompt".as_slice()) {
                return serde_json::from_slice(parts.next()?).ok();
            }
        }
        at += 12 + len;
    }
    None
}

impl Harness {
    pub async fn post_form(&self, path: &str, form: reqwest::multipart::Form) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .multipart(form)
            .send()
            .await
            .expect("request sent");
        read(res).await
    }

    /// The graphs ComfyUI was sent, in order.
    pub fn graphs(&self) -> Vec<Value> {
        self.sim
            .sim
            .submitted()
            .into_iter()
            .map(|(_, g)| g)
            .collect()
    }
}

/// A file part the way the Python SDK sends an open file.
pub fn file_part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    let mime = match name.rsplit_once('.').map(|(_, e)| e) {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .expect("valid mime")
}

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .expect("encodes");
    out
}

/// A PNG filled with one colour; with `alpha` it is RGBA.
pub fn png(w: u32, h: u32, rgba: [u8; 4], alpha: bool) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba(rgba));
    let img = if alpha {
        image::DynamicImage::ImageRgba8(img)
    } else {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(img).to_rgb8())
    };
    encoded(img, image::ImageFormat::Png)
}

pub fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    encoded(
        image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Jpeg,
    )
}

/// An RGBA mask of `w`×`h` that is opaque except for a transparent rectangle: OpenAI's way of
/// marking the area to edit.
pub fn mask_png(w: u32, h: u32, hole: (u32, u32, u32, u32)) -> Vec<u8> {
    let (x0, y0, x1, y1) = hole;
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
        image::Rgba([0, 0, 0, if inside { 0 } else { 255 }])
    });
    encoded(
        image::DynamicImage::ImageRgba8(img),
        image::ImageFormat::Png,
    )
}

/// The RGB of one pixel of an encoded image.
pub fn pixel(bytes: &[u8], x: u32, y: u32) -> [u8; 3] {
    let img = image::load_from_memory(bytes)
        .expect("a decodable image")
        .to_rgb8();
    img.get_pixel(x, y).0
}

/// Every input a graph's loaders name (`LoadImage*.image`), by node id order.
pub fn loader_inputs(graph: &Value) -> Vec<String> {
    let mut nodes: Vec<(&String, &Value)> = graph.as_object().expect("graph").iter().collect();
    nodes.sort_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX));
    nodes
        .into_iter()
        .filter(|(_, n)| {
            n["class_type"]
                .as_str()
                .is_some_and(|c| c.starts_with("LoadImage"))
        })
        .filter_map(|(_, n)| n["inputs"]["image"].as_str().map(str::to_string))
        .collect()
}

/// The first value of `input` on a node of class `class`.
pub fn input_of(graph: &Value, class: &str, input: &str) -> Value {
    graph
        .as_object()
        .expect("graph")
        .values()
        .find(|n| n["class_type"] == class)
        .map(|n| n["inputs"][input].clone())
        .unwrap_or(Value::Null)
}

/// One server-sent event: its `event:` name, if any, and its `data:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// A parsed event stream: its events and how many comment (keep-alive) lines it had.
#[derive(Debug)]
pub struct Sse {
    pub events: Vec<SseEvent>,
    pub comments: Vec<String>,
}

/// Parses an event stream as the OpenAI SDKs do, and checks what breaks them: every event
/// ends with a blank line, no `id:` or `retry:` fields, no event without data.
pub fn parse_sse(raw: &str) -> Sse {
    assert!(
        raw.is_empty() || raw.ends_with("\n\n"),
        "the stream does not end with a blank line: {:?}",
        &raw[raw.len().saturating_sub(80)..]
    );
    let mut out = Sse {
        events: Vec::new(),
        comments: Vec::new(),
    };
    for block in raw.split("\n\n").filter(|b| !b.is_empty()) {
        let (mut event, mut data) = (None, None::<String>);
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                out.comments.push(comment.trim().to_string());
            } else if let Some(name) = line.strip_prefix("event: ") {
                event = Some(name.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                assert!(data.is_none(), "an event with several data lines: {block}");
                data = Some(d.to_string());
            } else {
                panic!("unexpected line in an event stream: {line:?}");
            }
        }
        match data {
            Some(data) => out.events.push(SseEvent { event, data }),
            None => assert!(event.is_none(), "an event with no data: {block}"),
        }
    }
    out
}

impl Harness {
    /// POSTs a JSON request that must be answered with an event stream.
    pub async fn post_stream(&self, path: &str, body: Value) -> reqwest::Response {
        assert_stream(self.send_json(path, body).await).await
    }
}

/// Checks a streamed reply's status and headers and returns it for reading.
pub async fn assert_stream(res: reqwest::Response) -> reqwest::Response {
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if status != 200 {
        panic!(
            "stream answered {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-accel-buffering"), "no");
    res
}

/// Reads a whole streamed reply.
pub async fn read_sse(res: reqwest::Response) -> Sse {
    parse_sse(&res.text().await.expect("stream read"))
}

/// The whole events in what a client read of a stream before it went away.
pub fn events_read(raw: &str) -> Vec<SseEvent> {
    let whole = raw.rfind("\n\n").map_or("", |end| &raw[..end + 2]);
    parse_sse(whole).events
}

pub fn completed_images(events: &[SseEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("image_generation.completed"))
        .map(|e| decode_b64(&e.json()))
        .collect()
}

/// Reads a stream until `needle` has come by, and returns what was read; fails if it does not
/// come within 20 seconds.
pub async fn read_until(res: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), res.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not come in time"))
            .expect("read")
            .expect("stream still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

impl Harness {
    /// Starts a streamed request, reads until `needle` shows the job is sampling, closes the
    /// connection, and checks that the bridge cancelled the job in ComfyUI.
    pub async fn close_mid_stream(&self, path: &str, body: Value, needle: &str) {
        let mut res = self.post_stream(path, body).await;
        read_until(&mut res, needle).await;
        assert!(self.sim.sim.running_id().is_some());
        drop(res);
        assert!(
            self.wait_until_idle(Duration::from_secs(5)).await,
            "the job kept running after the client left"
        );
    }
}

/// A new, empty database on the PostgreSQL server `scripts/test` starts (`TEST_DATABASE_URL`),
/// as a `postgres://` URL; each test gets its own.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL names a PostgreSQL server for the shared-state tests; scripts/test \
         starts one and sets it",
    );
    let name = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("TEST_DATABASE_URL answers");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("a test database");
    let (server, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/{name}")
}

/// A new, empty bucket on the S3-compatible server `scripts/test` starts (`TEST_S3_ENDPOINT`):
/// its name, and the endpoint.
pub async fn fresh_bucket() -> (String, String) {
    let endpoint = std::env::var("TEST_S3_ENDPOINT").expect(
        "TEST_S3_ENDPOINT names an S3-compatible server for the storage tests; scripts/test \
         starts one and sets it",
    );
    let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
    let res = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(
        res.status().is_success(),
        "creating a bucket: {}",
        res.status()
    );
    (bucket, endpoint)
}

/// A reply's images as base64, each with its seed, in order.
pub fn returned_images(body: &Value) -> Vec<(String, u64)> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("images in {body}"))
        .iter()
        .map(|d| {
            (
                d["b64_json"].as_str().unwrap().to_string(),
                d["seed"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// One webhook delivery as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
}

/// How a [`Receiver`] answers the next delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Ok,
    Fail,
    /// Never answers: the sender is left waiting.
    Hang,
}

/// A webhook receiver on a local port: it answers deliveries as scripted (then 200) and keeps
/// those it answered with 200, and the ids of every attempt.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub host: String,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Answer>>>,
    pub attempts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub delivered: std::sync::Arc<std::sync::Mutex<Vec<Delivered>>>,
}

impl Receiver {
    pub async fn start(script: &[Answer]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let receiver = Receiver {
            url: format!("http://{host}/hook"),
            host,
            script: std::sync::Arc::new(std::sync::Mutex::new(script.iter().copied().collect())),
            attempts: Default::default(),
            delivered: Default::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let get = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        state.attempts.lock().unwrap().push(get("webhook-id"));
                        let answer = state
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or(Answer::Ok);
                        match answer {
                            Answer::Hang => std::future::pending().await,
                            Answer::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            Answer::Ok => {
                                state.delivered.lock().unwrap().push(Delivered {
                                    id: get("webhook-id"),
                                    timestamp: get("webhook-timestamp"),
                                    signature: get("webhook-signature"),
                                    body: body.to_vec(),
                                });
                                axum::http::StatusCode::OK
                            }
                        }
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }

    /// The deliveries, once there are `n`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Delivered> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if self.delivered().len() >= n {
                return self.delivered();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.delivered()
    }
}

/// The Standard Webhooks signature a delivery should carry.
pub fn webhook_signature(secret: &[u8], d: &Delivered) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{}.{}.", d.id, d.timestamp).as_bytes());
    mac.update(&d.body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}
