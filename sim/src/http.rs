//! ComfyUI's HTTP routes (each also under `/api`), with aiohttp's quirks:
//! 500 text for bad JSON, empty bodies without a content type, and so on.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::files::{
    Dir, FileKey, content_type_for, normalize_subfolder, resolve_image_ref, split_annotated,
};
use crate::state::{QueueItem, now_ms};
use crate::validate::{self, py_str};
use crate::{Inner, render, schema, ws};

type Shared = State<Arc<Inner>>;

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    let limit = usize::try_from(inner.max_upload_size).unwrap_or(usize::MAX);
    let mut api = routes();
    if inner.jobs_api {
        api = api
            .route("/jobs", get(list_jobs))
            .route("/jobs/cancel", post(cancel_jobs))
            .route("/jobs/{id}", get(get_job))
            .route("/jobs/{id}/cancel", post(cancel_job));
    }
    if inner.assets {
        // Registered by the asset API itself, so there is no unprefixed twin.
        api = api.route("/assets/{id}", delete(delete_asset));
    }
    Router::new()
        .merge(routes())
        .route("/internal/files/{dir}", get(internal_files))
        .nest("/api", api)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(inner)
}

fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/ws", get(ws::handler))
        .route("/prompt", get(get_prompt).post(post_prompt))
        .route("/queue", get(get_queue).post(post_queue))
        .route("/interrupt", post(interrupt))
        .route("/free", post(free))
        .route("/history", get(get_history).post(post_history))
        .route("/history/{id}", get(get_history_item))
        .route("/view", get(view))
        .route("/upload/image", post(upload_image))
        .route("/upload/mask", post(upload_mask))
        .route("/object_info", get(object_info))
        .route("/object_info/{class}", get(object_info_class))
        .route("/system_stats", get(system_stats))
        .route("/features", get(features))
        .route("/embeddings", get(|| async { json_ok(json!([])) }))
        .route("/extensions", get(|| async { json_ok(json!([])) }))
        .route("/models", get(models))
        .route("/models/{folder}", get(models_folder))
}

fn json_resp(status: StatusCode, v: &Value) -> Response {
    json_text(status, v.to_string())
}

fn json_text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn json_ok(v: Value) -> Response {
    json_resp(StatusCode::OK, &v)
}

/// aiohttp's answer to an unhandled exception in a handler.
fn server_trouble() -> Response {
    let mut r = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `web.Response(status=N)`: empty body, octet-stream.
fn bare(status: StatusCode) -> Response {
    let mut r = status.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// 200 with an empty body and no Content-Type (as `/interrupt`, `/queue`, `/history` answer).
fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

fn parse_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

async fn get_prompt(State(inner): Shared) -> Response {
    let n = inner.lock().queue_remaining();
    json_ok(json!({"exec_info": {"queue_remaining": n}}))
}

async fn post_prompt(State(inner): Shared, body: Bytes) -> Response {
    inner.ensure_worker();
    let Some(body) = parse_object(&body) else {
        return server_trouble();
    };
    let (number, sort) = if let Some(n) = body.get("number") {
        match validate::to_float(n) {
            Ok(f) => match serde_json::Number::from_f64(f) {
                Some(num) => (Value::Number(num), f),
                None => return server_trouble(),
            },
            Err(_) => return server_trouble(),
        }
    } else {
        let mut st = inner.lock();
        let c = st.counter;
        st.counter += 1;
        let n = if truthy(body.get("front")) { -c } else { c };
        (json!(n), n as f64)
    };
    let Some(prompt) = body.get("prompt") else {
        let e = json!({"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}});
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": e, "node_errors": {}}),
        );
    };
    let Some(prompt) = prompt.as_object() else {
        return server_trouble();
    };
    let prompt_id = body
        .get("prompt_id")
        .map(py_str)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let targets: Option<Vec<String>> = body
        .get("partial_execution_targets")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(py_str).collect());
    let mut extra = match body.get("extra_data") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return server_trouble(),
    };
    if let Some(c) = body.get("client_id") {
        extra.insert("client_id".into(), c.clone());
    }
    let installed = inner.installed();
    let result = {
        let st = inner.lock();
        let exists = |name: &str| resolve_image_ref(name).is_some_and(|k| st.files.contains(&k));
        validate::validate(prompt, targets.as_deref(), &exists, &installed)
    };
    match result {
        Ok(ok) => {
            let graph = Value::Object(ok.prompt);
            {
                let mut st = inner.lock();
                st.models.extend(ok.models);
                st.submitted.push((prompt_id.clone(), graph.clone()));
                st.pending.push(QueueItem {
                    number: number.clone(),
                    sort,
                    prompt_id: prompt_id.clone(),
                    prompt: graph,
                    extra_data: Value::Object(extra),
                    outputs: ok.outputs,
                    create_time: now_ms(),
                });
            }
            inner.broadcast_status();
            inner.wake.notify_one();
            json_ok(
                json!({"prompt_id": prompt_id, "number": number, "node_errors": ok.node_errors}),
            )
        }
        Err(rejected) => json_resp(StatusCode::BAD_REQUEST, &rejected.body()),
    }
}

async fn get_queue(State(inner): Shared) -> Response {
    let st = inner.lock();
    let running: Vec<Value> = st.running.iter().map(QueueItem::to_json).collect();
    let pending: Vec<Value> = st.sorted_pending().iter().map(|i| i.to_json()).collect();
    json_ok(json!({"queue_running": running, "queue_pending": pending}))
}

/// `PromptQueue.delete_queue_item`: removing the last pending item goes
/// through `wipe_queue`, so it announces the queue twice.
fn delete_pending(inner: &Inner, id: &str) -> bool {
    let (found, twice) = {
        let mut st = inner.lock();
        match st.pending.iter().position(|i| i.prompt_id == id) {
            Some(pos) => {
                let twice = st.pending.len() == 1;
                st.pending.remove(pos);
                (true, twice)
            }
            None => (false, false),
        }
    };
    if found {
        if twice {
            inner.broadcast_status();
        }
        inner.broadcast_status();
    }
    found
}

async fn post_queue(State(inner): Shared, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_trouble();
    };
    if truthy(body.get("clear")) {
        inner.lock().pending.clear();
        inner.broadcast_status();
    }
    if let Some(ids) = body.get("delete") {
        let Some(ids) = ids.as_array() else {
            return server_trouble();
        };
        for id in ids {
            delete_pending(&inner, &py_str(id));
        }
    }
    empty_ok()
}

fn interrupt_running(inner: &Inner, id: Option<&str>) -> bool {
    let running = inner.lock().running.as_ref().map(|r| r.prompt_id.clone());
    let hit = match id {
        None => true,
        Some(id) => running.as_deref() == Some(id),
    };
    if hit {
        inner.interrupt.store(true, Ordering::SeqCst);
    }
    hit && running.is_some()
}

async fn interrupt(State(inner): Shared, body: Bytes) -> Response {
    let target = parse_object(&body).and_then(|b| b.get("prompt_id").map(py_str));
    interrupt_running(&inner, target.as_deref());
    empty_ok()
}

async fn free(State(inner): Shared, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_trouble();
    };
    if truthy(body.get("free_memory")) {
        inner.lock().cache.clear();
    }
    empty_ok()
}

async fn get_history(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let parse = |k: &str| q.get(k).map(|v| v.trim().parse::<i64>());
    let max_items = match parse("max_items") {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return server_trouble(),
        None => None,
    };
    let mut offset = match parse("offset") {
        Some(Ok(v)) => v,
        Some(Err(_)) => return server_trouble(),
        None => -1,
    };
    let st = inner.lock();
    if let (true, Some(m)) = (offset < 0, max_items) {
        offset = st.history_order.len() as i64 - m;
    }
    // Built by hand to keep insertion order (oldest first), which a map would lose.
    let mut parts = Vec::new();
    for (i, id) in st.history_order.iter().enumerate() {
        if (i as i64) < offset {
            continue;
        }
        if max_items.is_some_and(|m| parts.len() as i64 >= m) {
            break;
        }
        if let Some(h) = st.history.get(id) {
            parts.push(format!("{}: {}", json!(id), h.entry));
        }
    }
    json_text(StatusCode::OK, format!("{{{}}}", parts.join(", ")))
}

async fn get_history_item(State(inner): Shared, Path(id): Path<String>) -> Response {
    inner.history_reads.fetch_add(1, Ordering::Relaxed);
    let st = inner.lock();
    match st.history.get(&id) {
        Some(h) => json_ok(json!({ id: h.entry })),
        None => json_ok(json!({})),
    }
}

async fn post_history(State(inner): Shared, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_trouble();
    };
    let mut st = inner.lock();
    if truthy(body.get("clear")) {
        st.clear_history();
    }
    if let Some(ids) = body.get("delete") {
        let Some(ids) = ids.as_array() else {
            return server_trouble();
        };
        for id in ids {
            st.delete_history(&py_str(id));
        }
    }
    empty_ok()
}

async fn view(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(filename) = q.get("filename") else {
        return bare(StatusCode::NOT_FOUND);
    };
    let (name, annotated) = split_annotated(filename);
    if name.is_empty() || name.starts_with('/') || name.contains("..") {
        return bare(StatusCode::BAD_REQUEST);
    }
    let dir = match annotated {
        Some(d) => d,
        None => match Dir::parse(q.get("type").map(String::as_str).unwrap_or("output")) {
            Some(d) => d,
            None => return bare(StatusCode::BAD_REQUEST),
        },
    };
    let Some(sub) = normalize_subfolder(q.get("subfolder").map(String::as_str).unwrap_or(""))
    else {
        return bare(StatusCode::FORBIDDEN);
    };
    let base = name.rsplit('/').next().unwrap_or(name).to_string();
    let Some(bytes) = inner.lock().files.get(&FileKey {
        dir,
        subfolder: sub,
        name: base.clone(),
    }) else {
        return bare(StatusCode::NOT_FOUND);
    };
    let channel = q.get("channel").cloned().unwrap_or_else(|| "rgba".into());
    let disposition = format!("filename=\"{base}\"");
    let reply = |ct: &str, body: Vec<u8>| -> Response {
        let mut r = Response::new(Body::from(body));
        if let Ok(v) = HeaderValue::from_str(ct) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        r
    };
    if let Some(preview) = q.get("preview") {
        let parts: Vec<&str> = preview.split(';').collect();
        let mut fmt = parts.first().copied().unwrap_or("webp");
        let explicit_alpha = q.get("channel").is_some_and(|c| c.contains('a'));
        if !matches!(fmt, "webp" | "jpeg") || explicit_alpha {
            fmt = "webp";
        }
        let quality = parts
            .last()
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|_| parts.len() > 1)
            .unwrap_or(90)
            .clamp(1, 100);
        let fmt = fmt.to_string();
        let is_jpeg = fmt == "jpeg";
        let out = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let (rgba, _) = render::decode(&bytes)?;
            let (w, h) = (rgba.width() as usize, rgba.height() as usize);
            if fmt == "jpeg" {
                let rgb: Vec<u8> = rgba
                    .as_raw()
                    .chunks(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect();
                render::encode_jpeg(&rgb, w, h, quality)
            } else {
                render::encode_webp(rgba.as_raw(), w, h)
            }
        })
        .await;
        return match out {
            Ok(Ok(b)) => reply(if is_jpeg { "image/jpeg" } else { "image/webp" }, b),
            _ => server_trouble(),
        };
    }
    if channel == "rgba" {
        return reply(content_type_for(&base), bytes.to_vec());
    }
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let (rgba, has_alpha) = render::decode(&bytes)?;
        let (w, h) = (rgba.width() as usize, rgba.height() as usize);
        if channel == "rgb" {
            let rgb: Vec<u8> = rgba
                .as_raw()
                .chunks(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            render::encode_png(&rgb, w, h, 3, &[])
        } else {
            let a: Vec<u8> = rgba
                .as_raw()
                .chunks(4)
                .flat_map(|p| [0, 0, 0, if has_alpha { p[3] } else { 255 }])
                .collect();
            render::encode_png(&a, w, h, 4, &[])
        }
    })
    .await;
    match out {
        Ok(Ok(b)) => reply("image/png", b),
        _ => server_trouble(),
    }
}

struct UploadForm {
    image: Option<(String, Bytes)>,
    fields: HashMap<String, String>,
}

async fn read_form(mut mp: Multipart) -> Result<UploadForm, StatusCode> {
    let mut form = UploadForm {
        image: None,
        fields: HashMap::new(),
    };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(e.status()),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(String::from);
        let data = field.bytes().await.map_err(|e| e.status())?;
        if name == "image" {
            if let Some(f) = file_name {
                form.image = Some((f, data));
            }
        } else {
            form.fields
                .insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(form)
}

async fn upload_image(
    State(inner): Shared,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    upload(inner, mp, false).await
}

async fn upload_mask(
    State(inner): Shared,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    upload(inner, mp, true).await
}

/// `image_upload` of server.py: dedupe by content, ` (N)` suffixes, `overwrite`.
async fn upload(
    inner: Arc<Inner>,
    mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    mask: bool,
) -> Response {
    let Ok(mp) = mp else {
        return bare(StatusCode::BAD_REQUEST);
    };
    let form = match read_form(mp).await {
        Ok(f) => f,
        Err(StatusCode::PAYLOAD_TOO_LARGE) => return bare(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => return bare(StatusCode::BAD_REQUEST),
    };
    let type_str = form
        .fields
        .get("type")
        .cloned()
        .unwrap_or_else(|| "input".into());
    let Some(dir) = Dir::parse(&type_str) else {
        return server_trouble();
    };
    let Some((filename, data)) = form.image else {
        return bare(StatusCode::BAD_REQUEST);
    };
    if filename.is_empty() {
        return bare(StatusCode::BAD_REQUEST);
    }
    let subfolder = form.fields.get("subfolder").cloned().unwrap_or_default();
    let joined = if subfolder.is_empty() {
        filename.clone()
    } else {
        format!("{subfolder}/{filename}")
    };
    let Some(path) = normalize_subfolder(&joined).filter(|p| !p.is_empty()) else {
        return bare(StatusCode::BAD_REQUEST);
    };
    let (sub, mut name) = match path.rsplit_once('/') {
        Some((s, n)) => (s.to_string(), n.to_string()),
        None => (String::new(), path.clone()),
    };
    let overwrite = matches!(
        form.fields.get("overwrite").map(String::as_str),
        Some("true" | "1")
    );
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name.clone(), String::new()),
    };
    let mut duplicate = false;
    {
        let st = inner.lock();
        if !overwrite {
            let mut i = 1;
            while let Some(existing) = st.files.get(&FileKey {
                dir,
                subfolder: sub.clone(),
                name: name.clone(),
            }) {
                if existing == data {
                    duplicate = true;
                    break;
                }
                name = format!("{stem} ({i}){ext}");
                i += 1;
            }
        }
    }
    let key = FileKey {
        dir,
        subfolder: sub,
        name: name.clone(),
    };
    if !duplicate {
        if mask {
            let Some(orig) = form
                .fields
                .get("original_ref")
                .and_then(|r| serde_json::from_str::<Value>(r).ok())
                .filter(Value::is_object)
            else {
                return server_trouble();
            };
            let (oname, odir) =
                split_annotated(orig.get("filename").and_then(Value::as_str).unwrap_or(""));
            let odir = odir.or_else(|| {
                Dir::parse(orig.get("type").and_then(Value::as_str).unwrap_or("output"))
            });
            let osub = orig.get("subfolder").and_then(Value::as_str).unwrap_or("");
            let (Some(odir), Some(osub)) = (odir, normalize_subfolder(osub)) else {
                return bare(StatusCode::BAD_REQUEST);
            };
            let original = inner.lock().files.get(&FileKey {
                dir: odir,
                subfolder: osub,
                name: oname.to_string(),
            });
            if let Some(original) = original {
                let merged = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
                    let texts = render::png_text_chunks(&original);
                    let (mut base, _) = render::decode(&original)?;
                    let (alpha, _) = render::decode(&data)?;
                    if base.dimensions() != alpha.dimensions() {
                        return Err("images do not match".into());
                    }
                    for (p, a) in base.pixels_mut().zip(alpha.pixels()) {
                        p.0[3] = a.0[3];
                    }
                    render::encode_png(
                        base.as_raw(),
                        base.width() as usize,
                        base.height() as usize,
                        4,
                        &texts,
                    )
                })
                .await;
                match merged {
                    Ok(Ok(png)) => inner.lock().files.put(key.clone(), Bytes::from(png)),
                    _ => return server_trouble(),
                }
            }
        } else {
            inner.lock().files.put(key.clone(), data);
        }
    }
    let mut reply = json!({"name": name, "subfolder": subfolder, "type": dir.as_str()});
    if inner.assets
        && let Some(asset) = inner.lock().files.asset(&key)
    {
        reply["asset"] = asset;
    }
    json_ok(reply)
}

/// `DELETE /api/assets/{id}`: `delete_content` (default true) also removes the file.
async fn delete_asset(
    State(inner): Shared,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // The route only matches a hyphenated UUID; anything else finds no route at all.
    let Some(id) = uuid::Uuid::parse_str(&id)
        .ok()
        .filter(|_| id.len() == 36)
        .map(|u| u.to_string())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let delete_content = q
        .get("delete_content")
        .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no"));
    if inner.lock().files.delete_asset(&id, delete_content) {
        json_ok(json!({}))
    } else {
        json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "ASSET_NOT_FOUND",
                              "message": format!("AssetInfo {id} not found."),
                              "details": {"id": id}}}),
        )
    }
}

fn current_object_info(inner: &Inner) -> Map<String, Value> {
    let installed = inner.installed();
    let (inputs, models) = {
        let st = inner.lock();
        (st.files.input_names(), st.models.clone())
    };
    schema::object_info(&inputs, &models, &installed)
}

async fn object_info(State(inner): Shared) -> Response {
    json_ok(Value::Object(current_object_info(&inner)))
}

async fn object_info_class(State(inner): Shared, Path(class): Path<String>) -> Response {
    if !inner.installed().has_class(&class) {
        return json_ok(json!({}));
    }
    let mut all = current_object_info(&inner);
    let info = all.remove(&class).unwrap_or(Value::Null);
    json_ok(json!({ class: info }))
}

async fn system_stats() -> Response {
    json_ok(json!({
        "system": {"os": "posix", "ram_total": 17179869184u64, "ram_free": 8589934592u64,
                   "comfyui_version": "0.3.64-sim", "required_frontend_version": "1.27.10",
                   "installed_templates_version": null, "required_templates_version": "0.1.95",
                   "python_version": "3.11.7 (simulated)", "pytorch_version": "none (simulated)",
                   "embedded_python": false, "argv": ["comfyui-sim"]},
        "devices": [{"name": "cpu (simulated)", "type": "cpu", "index": null,
                     "vram_total": 0, "vram_free": 0, "torch_vram_total": 0, "torch_vram_free": 0}]
    }))
}

async fn features(State(inner): Shared) -> Response {
    json_ok(inner.features())
}

const MODEL_FOLDERS: &[&str] = &[
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "custom_nodes",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
];

async fn models() -> Response {
    json_ok(json!(MODEL_FOLDERS))
}

async fn models_folder(State(inner): Shared, Path(folder): Path<String>) -> Response {
    if !MODEL_FOLDERS.contains(&folder.as_str()) {
        return bare(StatusCode::NOT_FOUND);
    }
    let names: Vec<String> = if matches!(
        folder.as_str(),
        "checkpoints" | "loras" | "vae" | "text_encoders" | "diffusion_models"
    ) {
        if let Some(files) = inner.installed().model_files {
            files.into_iter().collect()
        } else {
            let st = inner.lock();
            let mut all: std::collections::BTreeSet<String> =
                schema::DEMO_MODELS.iter().map(|s| s.to_string()).collect();
            all.extend(st.models.iter().cloned());
            all.into_iter().collect()
        }
    } else {
        vec![]
    };
    json_ok(json!(names))
}

async fn internal_files(State(inner): Shared, Path(dir): Path<String>) -> Response {
    match Dir::parse(&dir) {
        Some(d) => json_ok(json!(inner.lock().files.names_newest_first(d))),
        None => json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Invalid directory type"}),
        ),
    }
}

// ---- Jobs API (newer ComfyUI; absent when `SimConfig::jobs_api` is off) ----

fn prune(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

fn queued_job(i: &QueueItem, status: &str, start: Option<u64>) -> Value {
    prune(
        json!({"id": i.prompt_id, "status": status, "priority": i.number, "create_time": i.create_time,
                 "execution_start_time": start, "outputs_count": 0, "previewable_outputs_count": 0,
                 "workflow_id": i.extra_data.pointer("/extra_pnginfo/workflow/id")}),
    )
}

fn history_job(id: &str, h: &crate::state::HistoryItem) -> Value {
    let e = &h.entry;
    let last = e
        .pointer("/status/messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .cloned();
    let last_kind = last
        .as_ref()
        .and_then(|m| m.get(0))
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = match (
        e.pointer("/status/status_str").and_then(Value::as_str),
        last_kind,
    ) {
        (Some("success"), _) => "completed",
        (_, "execution_interrupted") => "cancelled",
        _ => "failed",
    };
    let mut count = 0;
    let mut preview = Value::Null;
    if let Some(outs) = e.get("outputs").and_then(Value::as_object) {
        for (node, ui) in outs {
            for (kind, list) in ui.as_object().into_iter().flatten() {
                for item in list.as_array().into_iter().flatten() {
                    count += 1;
                    if preview.is_null() && kind == "images" && item.is_object() {
                        let mut p = item.clone();
                        p["nodeId"] = json!(node);
                        p["mediaType"] = json!(kind);
                        preview = p;
                    }
                }
            }
        }
    }
    let error = if status == "failed" {
        last.and_then(|m| m.get(1).cloned())
    } else {
        None
    };
    prune(
        json!({"id": id, "status": status, "priority": h.number, "create_time": h.create_time,
        "execution_start_time": h.start_time, "execution_end_time": h.end_time, "execution_error": error,
        "outputs_count": count, "previewable_outputs_count": if preview.is_null() {0} else {1},
        "preview_output": preview,
        "workflow_id": e.pointer("/prompt/3/extra_pnginfo/workflow/id")}),
    )
}

fn all_jobs(inner: &Inner) -> Vec<Value> {
    let st = inner.lock();
    let mut jobs = Vec::new();
    if let Some(r) = &st.running {
        jobs.push(queued_job(r, "in_progress", Some(st.running_started)));
    }
    for p in st.sorted_pending() {
        jobs.push(queued_job(p, "pending", None));
    }
    for id in &st.history_order {
        if let Some(h) = st.history.get(id) {
            jobs.push(history_job(id, h));
        }
    }
    jobs
}

async fn list_jobs(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let bad = |m: &str| json_resp(StatusCode::BAD_REQUEST, &json!({"error": m}));
    let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
        Some(Ok(0)) | Some(Err(_)) => return bad("limit must be a positive integer"),
        Some(Ok(v)) => Some(v),
        None => None,
    };
    let offset = match q.get("offset").map(|v| v.parse::<usize>()) {
        Some(Err(_)) => return bad("offset must be non-negative"),
        Some(Ok(v)) => v,
        None => 0,
    };
    let sort_by = q.get("sort_by").map(String::as_str).unwrap_or("created_at");
    if !matches!(sort_by, "created_at" | "execution_duration") {
        return bad("sort_by must be 'created_at' or 'execution_duration'");
    }
    let desc = match q.get("sort_order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        _ => return bad("sort_order must be 'asc' or 'desc'"),
    };
    let statuses: Option<Vec<String>> = q
        .get("status")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let mut jobs: Vec<Value> = all_jobs(&inner)
        .into_iter()
        .filter(|j| {
            statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| j["status"] == json!(x)))
        })
        .filter(|j| {
            q.get("workflow_id")
                .is_none_or(|w| j["workflow_id"] == json!(w))
        })
        .collect();
    let key = |j: &Value| -> u64 {
        if sort_by == "created_at" {
            j["create_time"].as_u64().unwrap_or(0)
        } else {
            j["execution_end_time"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(j["execution_start_time"].as_u64().unwrap_or(0))
        }
    };
    jobs.sort_by_key(key);
    if desc {
        jobs.reverse();
    }
    let total = jobs.len();
    let page: Vec<Value> = jobs
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let has_more = offset + page.len() < total;
    json_ok(
        json!({"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": total, "has_more": has_more}}),
    )
}

async fn get_job(State(inner): Shared, Path(id): Path<String>) -> Response {
    let st = inner.lock();
    let queued = st
        .running
        .iter()
        .map(|r| (r, "in_progress"))
        .chain(st.pending.iter().map(|p| (p, "pending")));
    for (item, status) in queued {
        if item.prompt_id == id {
            let mut j = queued_job(item, status, None);
            j["workflow"] = json!({"prompt": item.prompt, "extra_data": item.extra_data});
            return json_ok(j);
        }
    }
    match st.history.get(&id) {
        Some(h) => {
            let mut j = history_job(&id, h);
            j["outputs"] = h.entry["outputs"].clone();
            j["execution_status"] = h.entry["status"].clone();
            j["workflow"] =
                json!({"prompt": h.entry["prompt"][2], "extra_data": h.entry["prompt"][3]});
            json_ok(j)
        }
        None => json_resp(StatusCode::NOT_FOUND, &json!({"error": "Job not found"})),
    }
}

fn cancel(inner: &Inner, id: &str) -> bool {
    delete_pending(inner, id) || interrupt_running(inner, Some(id))
}

async fn cancel_job(State(inner): Shared, Path(id): Path<String>) -> Response {
    json_ok(json!({"cancelled": cancel(&inner, &id)}))
}

async fn cancel_jobs(State(inner): Shared, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Invalid JSON body"}),
        );
    };
    let ids: Vec<String> = body
        .get("job_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(py_str).collect())
        .unwrap_or_default();
    let invalid: Vec<&String> = ids
        .iter()
        .filter(|i| {
            uuid::Uuid::parse_str(i)
                .map(|u| u.to_string() != **i)
                .unwrap_or(true)
        })
        .collect();
    if !invalid.is_empty() {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}),
        );
    }
    let mut any = false;
    for id in &ids {
        any |= cancel(&inner, id);
    }
    json_ok(json!({"cancelled": any}))
}

// ---- A listener whose connections can all be cut at once (for `crash`) ----

pub(crate) struct KillableListener {
    inner: TcpListener,
    kill: CancellationToken,
}

impl KillableListener {
    pub(crate) fn new(inner: TcpListener, kill: CancellationToken) -> Self {
        Self { inner, kill }
    }
}

impl axum::serve::Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    let killed = Box::pin(self.kill.clone().cancelled_owned());
                    return (KillableStream { inner: s, killed }, a);
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that fails every read and write once its token is cancelled,
/// which makes hyper drop the connection (upgraded WebSockets included).
pub(crate) struct KillableStream {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl KillableStream {
    fn dead(&mut self, cx: &mut Context<'_>) -> bool {
        self.killed.as_mut().poll(cx).is_ready()
    }
}

fn reset<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.dead(cx) {
            return reset();
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.dead(cx) {
            return reset();
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.dead(cx) {
            return reset();
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
