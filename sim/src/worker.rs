//! The single prompt worker: picks the next queued prompt, runs its nodes in
//! dependency order and emits ComfyUI's WebSocket events in ComfyUI's order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::files::{Dir, FileKey, normalize_subfolder};
use crate::nodes::{self, Inputs, NodeError, Val};
use crate::render::{self, Img};
use crate::schema;
use crate::state::{CacheEntry, HistoryItem, QueueItem, now_ms};
use crate::validate::id_order;

pub(crate) async fn run(inner: Arc<Inner>) {
    loop {
        let next = {
            let mut st = inner.lock();
            let item = st.pop_next();
            if let Some(i) = &item {
                st.running = Some(i.clone());
                st.running_started = now_ms();
                st.running_node = None;
            }
            item
        };
        match next {
            Some(item) => {
                inner.broadcast_status();
                Exec::new(Arc::clone(&inner), item).run().await;
            }
            None => inner.wake.notified().await,
        }
    }
}

enum Fail {
    Error(NodeError, Inputs),
    Interrupted,
}

struct NodeResult {
    outputs: Vec<Val>,
    ui: Option<Value>,
}

/// Makes SaveImageWebsocket's signature unique, like its `IS_CHANGED = time`.
static NEVER_CACHED: AtomicU64 = AtomicU64::new(0);

struct Exec {
    inner: Arc<Inner>,
    item: QueueItem,
    pid: String,
    client: Option<String>,
    messages: Vec<Value>,
    progress: Map<String, Value>,
    executed: Vec<String>,
    outputs_ui: Map<String, Value>,
    meta: Map<String, Value>,
    written: Vec<FileKey>,
}

impl Exec {
    fn new(inner: Arc<Inner>, item: QueueItem) -> Exec {
        Exec {
            pid: item.prompt_id.clone(),
            client: item.client_id(),
            inner,
            item,
            messages: Vec::new(),
            progress: Map::new(),
            executed: Vec::new(),
            outputs_ui: Map::new(),
            meta: Map::new(),
            written: Vec::new(),
        }
    }

    fn send(&self, kind: &str, data: Value) {
        if let Some(c) = &self.client {
            self.inner.sockets().send_json(Some(c), kind, data);
        }
    }

    /// progress/progress_state/previews go to everyone when there is no client.
    fn send_or_broadcast(&self, kind: &str, data: Value) {
        self.inner
            .sockets()
            .send_json(self.client.as_deref(), kind, data);
    }

    fn add_message(&mut self, kind: &str, mut data: Value, broadcast: bool) {
        data["timestamp"] = json!(now_ms());
        self.messages.push(json!([kind, data.clone()]));
        if broadcast {
            self.send_or_broadcast(kind, data);
        } else {
            self.send(kind, data);
        }
    }

    fn set_progress(&mut self, node: &str, state: &str, value: Value, max: Value) {
        self.progress.insert(
            node.to_string(),
            json!({"value": value, "max": max, "state": state, "node_id": node, "prompt_id": self.pid,
                   "display_node_id": node, "parent_node_id": null, "real_node_id": node}),
        );
    }

    fn send_progress_state(&self) {
        self.send_or_broadcast(
            "progress_state",
            json!({"prompt_id": self.pid, "nodes": self.progress}),
        );
    }

    /// One ProgressBar tick: progress_state, then progress and the picture.
    fn tick(&mut self, node: &str, value: usize, max: usize, image: Option<(Vec<u8>, bool)>) {
        self.set_progress(node, "running", json!(value), json!(max));
        self.send_progress_state();
        let progress = json!({"value": value, "max": max, "prompt_id": self.pid, "node": node});
        let meta = json!({"node_id": node, "prompt_id": self.pid, "display_node_id": node,
            "parent_node_id": null, "real_node_id": node,
            "image_type": if image.as_ref().is_some_and(|i| i.1) { "image/png" } else { "image/jpeg" }});
        let img = image.as_ref().map(|(b, png)| (b.as_slice(), *png, meta));
        self.inner
            .sockets()
            .send_progress_with_image(self.client.as_deref(), progress, img);
    }

    async fn run(mut self) {
        self.inner.interrupt.store(false, Ordering::SeqCst);
        let prompt = self.item.prompt.as_object().cloned().unwrap_or_default();
        self.add_message("execution_start", json!({"prompt_id": self.pid}), false);

        let order = match execution_order(&prompt, &self.item.outputs) {
            Ok(o) => o,
            Err(node) => {
                let class = class_of(&prompt, &node);
                self.add_message(
                    "execution_cached",
                    json!({"nodes": [], "prompt_id": self.pid}),
                    false,
                );
                let e = nodes::err("graph.DependencyCycleError", "Dependency cycle detected");
                return self
                    .fail(&prompt, &node, &class, e, Value::Array(vec![]))
                    .await;
            }
        };
        let sigs = self.signatures(&prompt, &order);
        let cache = self.inner.lock().cache.clone();
        let cached: Vec<String> = order
            .iter()
            .filter(|n| sigs.get(*n).is_some_and(|s| cache.contains_key(s)))
            .cloned()
            .collect();
        self.add_message(
            "execution_cached",
            json!({"nodes": cached, "prompt_id": self.pid}),
            false,
        );

        let mut values: HashMap<String, Vec<Val>> = HashMap::new();
        let mut new_cache: HashMap<String, CacheEntry> = HashMap::new();
        for node in &order {
            let class = class_of(&prompt, node);
            let sig = sigs.get(node).cloned().unwrap_or_default();
            if let Some(hit) = cache.get(&sig) {
                values.insert(node.clone(), hit.outputs.clone());
                new_cache.insert(sig, hit.clone());
                if let Some(ui) = &hit.ui {
                    self.record_ui(node, ui.clone());
                    self.set_progress(node, "finished", json!(1), json!(1));
                    self.send_progress_state();
                }
                self.executed.push(node.clone());
                continue;
            }
            self.set_progress(node, "running", json!(0.0), json!(1.0));
            self.send_progress_state();
            self.inner.lock().running_node = Some(node.clone());
            self.send(
                "executing",
                json!({"node": node, "display_node": node, "prompt_id": self.pid}),
            );
            let inputs = gather_inputs(&prompt, node, &class, &values);
            let result = if self.inner.interrupt.load(Ordering::SeqCst) {
                Err(Fail::Interrupted)
            } else if self.should_fail(&class) {
                Err(Fail::Error(
                    nodes::err(
                        "RuntimeError",
                        "Simulated failure (Simulator::fail_next_execution)\n",
                    ),
                    inputs,
                ))
            } else {
                self.run_node(node, &class, inputs).await
            };
            match result {
                Ok(r) => {
                    if let Some(ui) = &r.ui {
                        self.record_ui(node, ui.clone());
                    }
                    let finished = self
                        .progress
                        .get(node)
                        .map(|p| p["max"].clone())
                        .unwrap_or(json!(1.0));
                    self.set_progress(node, "finished", finished.clone(), finished);
                    self.send_progress_state();
                    new_cache.insert(
                        sig,
                        CacheEntry {
                            outputs: r.outputs.clone(),
                            ui: r.ui,
                        },
                    );
                    values.insert(node.clone(), r.outputs);
                    self.executed.push(node.clone());
                }
                Err(Fail::Interrupted) => {
                    self.inner.lock().cache = new_cache;
                    let data = json!({"prompt_id": self.pid, "node_id": node, "node_type": class,
                                      "executed": self.executed});
                    self.add_message("execution_interrupted", data, true);
                    return self.finish(false).await;
                }
                Err(Fail::Error(e, inputs)) => {
                    self.inner.lock().cache = new_cache;
                    let current: Map<String, Value> = inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), json!([v.py_repr()])))
                        .collect();
                    return self
                        .fail(&prompt, node, &class, e, Value::Object(current))
                        .await;
                }
            }
        }
        self.inner.lock().cache = new_cache;
        self.add_message("execution_success", json!({"prompt_id": self.pid}), false);
        self.finish(true).await;
    }

    fn should_fail(&self, class: &str) -> bool {
        let mut st = self.inner.lock();
        let fire = match &st.fail_next {
            Some(None) => true,
            Some(Some(c)) => c == class,
            None => false,
        };
        if fire {
            st.fail_next = None;
        }
        fire
    }

    fn record_ui(&mut self, node: &str, ui: Value) {
        self.send(
            "executed",
            json!({"node": node, "display_node": node, "output": ui, "prompt_id": self.pid}),
        );
        self.outputs_ui.insert(node.to_string(), ui);
        self.meta.insert(
            node.to_string(),
            json!({"node_id": node, "display_node": node, "parent_node": null, "real_node_id": node}),
        );
    }

    async fn fail(
        mut self,
        prompt: &Map<String, Value>,
        node: &str,
        class: &str,
        e: NodeError,
        inputs: Value,
    ) {
        let mut all: Vec<String> = prompt.keys().cloned().collect();
        all.sort_by(id_order);
        let tb = vec![
            "  File \"/sim/ComfyUI/execution.py\", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all)\n".to_string(),
            format!("  File \"/sim/ComfyUI/nodes.py\", line 1, in {}\n    (simulated)\n", class.to_lowercase()),
        ];
        let data = json!({"prompt_id": self.pid, "node_id": node, "node_type": class, "executed": self.executed,
            "exception_message": e.message, "exception_type": e.kind, "traceback": tb,
            "current_inputs": inputs, "current_outputs": all});
        self.add_message("execution_error", data, false);
        self.finish(false).await;
    }

    /// task_done: history first, then `status`, then the end marker.
    async fn finish(self, success: bool) {
        let mut extra = self.item.extra_data.clone();
        if let Some(o) = extra.as_object_mut() {
            o.remove("auth_token_comfy_org");
            o.remove("api_key_comfy_org");
        }
        let prompt = json!([
            self.item.number,
            self.pid,
            self.item.prompt,
            extra,
            self.item.outputs
        ]);
        let (outputs, meta) = if success {
            (Value::Object(self.outputs_ui), Value::Object(self.meta))
        } else {
            (json!({}), json!({}))
        };
        let entry = json!({"prompt": prompt, "outputs": outputs,
            "status": {"status_str": if success {"success"} else {"error"}, "completed": success,
                       "messages": self.messages},
            "meta": meta});
        {
            let mut st = self.inner.lock();
            let start_time = st.running_started;
            st.add_history(
                self.pid.clone(),
                HistoryItem {
                    entry,
                    files: self.written,
                    number: self.item.number.clone(),
                    create_time: self.item.create_time,
                    start_time,
                    end_time: now_ms(),
                },
            );
            st.running = None;
            st.running_node = None;
        }
        self.inner.broadcast_status();
        if let Some(c) = &self.client {
            self.inner.sockets().send_json(
                Some(c),
                "executing",
                json!({"node": null, "prompt_id": self.pid}),
            );
        }
    }

    fn signatures(&self, prompt: &Map<String, Value>, order: &[String]) -> HashMap<String, String> {
        let mut sigs: HashMap<String, String> = HashMap::new();
        let st = self.inner.lock();
        for node in order {
            let class = class_of(prompt, node);
            let mut parts = vec![class.clone()];
            let inputs = prompt
                .get(node)
                .and_then(|n| n.get("inputs"))
                .cloned()
                .unwrap_or(json!({}));
            for spec in schema::inputs(&class) {
                let Some(v) = inputs.get(&spec.name) else {
                    continue;
                };
                let text = match link_of(v) {
                    Some((src, slot)) => {
                        format!("@{}#{slot}", sigs.get(&src).cloned().unwrap_or_default())
                    }
                    None => v.to_string(),
                };
                parts.push(format!("{}={text}", spec.name));
                if spec.name == "image" && class.starts_with("LoadImage") {
                    let bytes = v
                        .as_str()
                        .and_then(crate::files::resolve_image_ref)
                        .and_then(|k| st.files.get(&k));
                    let h = bytes
                        .map(|b| render::hash_str(&String::from_utf8_lossy(&b)))
                        .unwrap_or(0);
                    parts.push(format!("hash={h}"));
                }
            }
            if class == "SaveImageWebsocket" {
                parts.push(format!(
                    "t={}",
                    NEVER_CACHED.fetch_add(1, Ordering::Relaxed)
                ));
            }
            sigs.insert(node.clone(), parts.join("|"));
        }
        sigs
    }

    async fn delay(&self) {
        let d = self.inner.step_delay();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    async fn run_node(
        &mut self,
        node: &str,
        class: &str,
        inputs: Inputs,
    ) -> Result<NodeResult, Fail> {
        if nodes::is_sampler(class) {
            return self.run_sampler(node, class, inputs).await;
        }
        if !nodes::is_trivial(class) {
            self.delay().await;
        }
        let plain = |outputs| Ok(NodeResult { outputs, ui: None });
        match class {
            "SaveImage" | "PreviewImage" | "MaskPreview" => {
                let img = match class {
                    "MaskPreview" => match inputs.get("mask") {
                        Some(Val::Mask(m)) => Arc::new(m.to_image()),
                        _ => {
                            return Err(Fail::Error(
                                nodes::err("TypeError", "mask must be a MASK"),
                                inputs,
                            ));
                        }
                    },
                    _ => nodes::image(&inputs, "images")
                        .map_err(|e| Fail::Error(e, inputs.clone()))?,
                };
                self.save_images(class, img, &inputs)
                    .await
                    .map_err(|e| Fail::Error(e, inputs))
            }
            "SaveImageWebsocket" => {
                let img =
                    nodes::image(&inputs, "images").map_err(|e| Fail::Error(e, inputs.clone()))?;
                for i in 0..img.b {
                    let frame = img.clone();
                    let png = blocking(move || {
                        render::encode_png(&frame.frame_u8(i), frame.w, frame.h, frame.c, &[])
                    })
                    .await
                    .and_then(|r| r)
                    .map_err(|e| Fail::Error(nodes::err("OSError", e), inputs.clone()))?;
                    self.tick(node, i, img.b, Some((png, true)));
                }
                Ok(NodeResult {
                    outputs: vec![],
                    ui: None,
                })
            }
            "LoadImage" | "LoadImageMask" => self
                .load_image(class, &inputs)
                .await
                .map_err(|e| Fail::Error(e, inputs)),
            "PreviewAny" => {
                let text = inputs
                    .get("source")
                    .map(Val::preview_text)
                    .unwrap_or_else(|| "None".into());
                Ok(NodeResult {
                    outputs: vec![],
                    ui: Some(json!({"text": [text]})),
                })
            }
            "GetImageSize" => {
                let out =
                    nodes::eval(class, &inputs, &[]).map_err(|e| Fail::Error(e, inputs.clone()))?;
                let (w, h, b) = match (&out[0], &out[1], &out[2]) {
                    (Val::Int(w), Val::Int(h), Val::Int(b)) => (*w, *h, *b),
                    _ => (0, 0, 0),
                };
                let text = format!("width: {w}, height: {h}\n batch size: {b}");
                let mut frame = Vec::new();
                frame.extend_from_slice(&3u32.to_be_bytes());
                frame.extend_from_slice(&(node.len() as u32).to_be_bytes());
                frame.extend_from_slice(node.as_bytes());
                frame.extend_from_slice(text.as_bytes());
                self.inner.sockets().send_binary_all(&frame);
                plain(out)
            }
            _ => {
                let rt = schema::return_types(class);
                let c = class.to_string();
                let inp = inputs.clone();
                match blocking(move || nodes::eval(&c, &inp, &rt)).await {
                    Ok(Ok(out)) => plain(out),
                    Ok(Err(e)) => Err(Fail::Error(e, inputs)),
                    Err(e) => Err(Fail::Error(nodes::err("RuntimeError", e), inputs)),
                }
            }
        }
    }

    async fn run_sampler(
        &mut self,
        node: &str,
        class: &str,
        inputs: Inputs,
    ) -> Result<NodeResult, Fail> {
        let plan =
            nodes::sampler_plan(class, &inputs).map_err(|e| Fail::Error(e, inputs.clone()))?;
        let plan = Arc::new(plan);
        let p = plan.clone();
        let (result, small) = blocking(move || {
            let r = nodes::run_sampler(&p);
            let first = Img {
                b: 1,
                data: r.frame(0).to_vec(),
                ..(*r).clone()
            };
            let small = render::fit_within(&first, 512);
            (r, small)
        })
        .await
        .map_err(|e| Fail::Error(nodes::err("RuntimeError", e), inputs.clone()))?;
        let small = Arc::new(small);
        for step in 0..plan.steps {
            self.delay().await;
            if self.inner.interrupt.load(Ordering::SeqCst) {
                return Err(Fail::Interrupted);
            }
            // Latent previews start once the sampler has something to show.
            let preview = if self.inner.previews && step > 0 {
                let (s, seed, steps) = (small.clone(), plan.seed, plan.steps);
                blocking(move || {
                    let f = render::preview_frame(&s, seed, step, steps);
                    render::encode_jpeg(&f.frame_u8(0), f.w, f.h, 95)
                })
                .await
                .ok()
                .and_then(Result::ok)
                .map(|j| (j, false))
            } else {
                None
            };
            self.tick(node, step + 1, plan.steps, preview);
        }
        let latent = Val::Latent(Arc::new(nodes::Latent {
            samples: Some(result),
            mask: None,
            ..(*plan.latent).clone()
        }));
        Ok(NodeResult {
            outputs: vec![latent; plan.outputs],
            ui: None,
        })
    }

    async fn load_image(&mut self, class: &str, inputs: &Inputs) -> Result<NodeResult, NodeError> {
        let name = nodes::string(inputs, "image");
        let key = crate::files::resolve_image_ref(&name);
        let bytes = key
            .and_then(|k| self.inner.lock().files.get(&k))
            .ok_or_else(|| {
                nodes::err(
                    "FileNotFoundError",
                    format!("[Errno 2] No such file or directory: '{name}'"),
                )
            })?;
        let channel = nodes::string(inputs, "channel");
        let class = class.to_string();
        let out = blocking(move || -> Result<Vec<Val>, NodeError> {
            let (rgba, has_alpha) = render::decode(&bytes).map_err(|_| {
                nodes::err(
                    "PIL.UnidentifiedImageError",
                    format!("cannot identify image file '{name}'"),
                )
            })?;
            let (w, h) = (rgba.width() as usize, rgba.height() as usize);
            let px = rgba.as_raw();
            let chan = |k: usize| -> Vec<f32> {
                px.iter()
                    .skip(k)
                    .step_by(4)
                    .map(|v| *v as f32 / 255.0)
                    .collect()
            };
            let zeros = || render::Mask {
                b: 1,
                h: 64,
                w: 64,
                data: vec![0.0; 64 * 64],
            };
            let alpha_mask = || render::Mask {
                b: 1,
                h,
                w,
                data: chan(3).iter().map(|a| 1.0 - a).collect(),
            };
            if class == "LoadImageMask" {
                let m = match channel.as_str() {
                    "alpha" if has_alpha => alpha_mask(),
                    "alpha" => zeros(),
                    c => render::Mask {
                        b: 1,
                        h,
                        w,
                        data: chan(match c {
                            "green" => 1,
                            "blue" => 2,
                            _ => 0,
                        }),
                    },
                };
                return Ok(vec![Val::Mask(Arc::new(m))]);
            }
            let mut data = Vec::with_capacity(w * h * 3);
            for p in px.chunks(4) {
                data.extend(p[..3].iter().map(|v| *v as f32 / 255.0));
            }
            let mask = if has_alpha { alpha_mask() } else { zeros() };
            Ok(vec![
                Val::Image(Arc::new(Img {
                    b: 1,
                    h,
                    w,
                    c: 3,
                    data,
                })),
                Val::Mask(Arc::new(mask)),
            ])
        })
        .await
        .map_err(|e| nodes::err("RuntimeError", e))??;
        Ok(NodeResult {
            outputs: out,
            ui: None,
        })
    }

    async fn save_images(
        &mut self,
        class: &str,
        img: Arc<Img>,
        inputs: &Inputs,
    ) -> Result<NodeResult, NodeError> {
        let (dir, prefix) = if class == "SaveImage" {
            let p = nodes::string(inputs, "filename_prefix");
            let p = if p.is_empty() {
                "ComfyUI".to_string()
            } else {
                p
            };
            (
                Dir::Output,
                p.replace("%width%", &img.w.to_string())
                    .replace("%height%", &img.h.to_string()),
            )
        } else {
            let u = uuid::Uuid::new_v4();
            const LETTERS: &[u8] = b"abcdefghijklmnopqrstupvxyz";
            let suffix: String = u.as_bytes()[..5]
                .iter()
                .map(|b| LETTERS[*b as usize % 26] as char)
                .collect();
            (Dir::Temp, format!("ComfyUI_temp_{suffix}"))
        };
        let (sub, base) = match prefix.rsplit_once('/') {
            Some((s, b)) => (s.to_string(), b.to_string()),
            None => (String::new(), prefix.clone()),
        };
        let sub = normalize_subfolder(&sub).ok_or_else(|| {
            nodes::err(
                "Exception",
                "Saving image outside the output folder is not allowed.",
            )
        })?;
        let mut texts = vec![("prompt".to_string(), render::py_json(&self.item.prompt))];
        if let Some(extra) = self
            .item
            .extra_data
            .get("extra_pnginfo")
            .and_then(Value::as_object)
        {
            for (k, v) in extra {
                texts.push((k.clone(), render::py_json(v)));
            }
        }
        let frames = img.clone();
        let pngs = blocking(move || -> Result<Vec<Vec<u8>>, String> {
            (0..frames.b)
                .map(|i| {
                    render::encode_png(&frames.frame_u8(i), frames.w, frames.h, frames.c, &texts)
                })
                .collect()
        })
        .await
        .and_then(|r| r)
        .map_err(|e| nodes::err("OSError", e))?;
        let mut list = Vec::new();
        {
            let mut st = self.inner.lock();
            let first = st.files.next_counter(dir, &sub, &base);
            for (counter, (i, png)) in (first..).zip(pngs.into_iter().enumerate()) {
                let name = format!(
                    "{}_{counter:05}_.png",
                    base.replace("%batch_num%", &i.to_string())
                );
                if let Some(key) = FileKey::new(dir, &sub, &name) {
                    st.files.put(key.clone(), Bytes::from(png));
                    self.written.push(key);
                }
                list.push(json!({"filename": name, "subfolder": sub, "type": dir.as_str()}));
            }
        }
        Ok(NodeResult {
            outputs: vec![],
            ui: Some(json!({"images": list})),
        })
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}

fn class_of(prompt: &Map<String, Value>, node: &str) -> String {
    prompt
        .get(node)
        .and_then(|n| n.get("class_type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn link_of(v: &Value) -> Option<(String, usize)> {
    let a = v.as_array().filter(|a| a.len() == 2)?;
    Some((a[0].as_str()?.to_string(), a[1].as_u64()? as usize))
}

fn links(prompt: &Map<String, Value>, node: &str) -> Vec<(String, String, usize)> {
    let class = class_of(prompt, node);
    let Some(inputs) = prompt.get(node).and_then(|n| n.get("inputs")) else {
        return vec![];
    };
    schema::inputs(&class)
        .into_iter()
        .filter_map(|s| {
            let (src, slot) = link_of(inputs.get(&s.name)?)?;
            prompt.contains_key(&src).then_some((s.name, src, slot))
        })
        .collect()
}

/// Dependencies first, outputs in id order. `Err(node)` names a node on a cycle.
fn execution_order(prompt: &Map<String, Value>, outputs: &[String]) -> Result<Vec<String>, String> {
    fn visit(
        prompt: &Map<String, Value>,
        node: &str,
        done: &mut HashSet<String>,
        active: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), String> {
        if done.contains(node) {
            return Ok(());
        }
        if !active.insert(node.to_string()) {
            return Err(node.to_string());
        }
        for (_, src, _) in links(prompt, node) {
            visit(prompt, &src, done, active, order)?;
        }
        active.remove(node);
        done.insert(node.to_string());
        order.push(node.to_string());
        Ok(())
    }
    let (mut done, mut active, mut order) = (HashSet::new(), HashSet::new(), Vec::new());
    let mut outs = outputs.to_vec();
    outs.sort_by(id_order);
    for o in &outs {
        visit(prompt, o, &mut done, &mut active, &mut order)?;
    }
    Ok(order)
}

fn gather_inputs(
    prompt: &Map<String, Value>,
    node: &str,
    class: &str,
    values: &HashMap<String, Vec<Val>>,
) -> Inputs {
    let mut out = Inputs::new();
    let Some(inputs) = prompt.get(node).and_then(|n| n.get("inputs")) else {
        return out;
    };
    for spec in schema::inputs(class) {
        let Some(v) = inputs.get(&spec.name) else {
            continue;
        };
        let val = match link_of(v) {
            Some((src, slot)) => values.get(&src).and_then(|o| o.get(slot)).cloned(),
            None => Some(Val::from_json(v)),
        };
        if let Some(val) = val {
            out.insert(spec.name, val);
        }
    }
    out
}
