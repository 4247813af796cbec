//! Behaviour beyond the traces: model graphs, determinism, previews, uploads,
//! `/view` rules, interrupts while sampling, the jobs API and fault switches.

mod common;

use std::time::Duration;

use common::{Got, Ws, client, start, types, upload};
use serde_json::{Value, json};
use sim::SimConfig;

fn model_graph(seed: u64, text: &str, steps: u64) -> Value {
    json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "my_model.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 96, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": 7.0,
              "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
              "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "sim/%width%x%height%"}}
    })
}

async fn submit(http: &reqwest::Client, url: &str, graph: &Value, cid: Option<&str>) -> Value {
    let mut body = json!({"prompt": graph});
    if let Some(c) = cid {
        body["client_id"] = json!(c);
    }
    let r = http
        .post(format!("{url}/prompt"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_history(http: &reqwest::Client, url: &str, pid: &str) -> Value {
    for _ in 0..400 {
        let h: Value = http
            .get(format!("{url}/history/{pid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(e) = h.get(pid) {
            return e.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no history for {pid}");
}

async fn fetch_output(http: &reqwest::Client, url: &str, entry: &Value, node: &str) -> Vec<u8> {
    let img = &entry["outputs"][node]["images"][0];
    let r = http
        .get(format!("{url}/view"))
        .query(&[
            ("filename", img["filename"].as_str().unwrap()),
            ("subfolder", img["subfolder"].as_str().unwrap()),
            ("type", img["type"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn model_graph_renders_deterministically_with_progress_and_previews() {
    let sim = start(SimConfig::default()).await;
    let http = client();
    let mut ws = Ws::connect(&sim.url, Some("c1")).await;
    ws.next_json().await;
    let a = submit(
        &http,
        &sim.url,
        &model_graph(1, "a red fox in snow", 4),
        Some("c1"),
    )
    .await;
    let pid = a["prompt_id"].as_str().unwrap().to_string();
    let msgs = ws.until_done(&pid).await;
    let kinds = types(&msgs);
    let progress: Vec<&Value> = msgs
        .iter()
        .filter_map(|g| match g {
            Got::Text(v) if v["type"] == "progress" => Some(&v["data"]),
            _ => None,
        })
        .collect();
    assert_eq!(
        progress
            .iter()
            .map(|p| p["value"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(progress.iter().all(|p| p["max"] == 4 && p["node"] == "5"));
    let previews: Vec<&Vec<u8>> = msgs
        .iter()
        .filter_map(|g| match g {
            Got::Binary(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(
        previews.len(),
        3,
        "one JPEG preview per step after the first: {kinds:?}"
    );
    for p in &previews {
        assert_eq!(&p[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(common::png_size(&p[8..]), (128, 96));
    }
    // Legacy clients get progress before its picture.
    let first_bin = kinds.iter().position(|k| k == "binary1").unwrap();
    assert_eq!(kinds[first_bin - 1], "progress");

    let entry = wait_history(&http, &sim.url, &pid).await;
    assert_eq!(
        entry["outputs"]["7"]["images"][0],
        json!({"filename": "128x96_00001_.png", "subfolder": "sim", "type": "output"})
    );
    let png1 = fetch_output(&http, &sim.url, &entry, "7").await;
    assert_eq!(common::png_size(&png1), (128, 96));
    let chunks = sim::png_text_chunks(&png1);
    let prompt_chunk = chunks
        .iter()
        .find(|(k, _)| k == "prompt")
        .expect("prompt tEXt chunk");
    let embedded: Value = serde_json::from_str(&prompt_chunk.1).unwrap();
    assert_eq!(embedded["5"]["inputs"]["seed"], 1);
    assert_eq!(embedded["2"]["inputs"]["text"], "a red fox in snow");

    // A new seed differs; the same inputs again (after a different prompt,
    // so nothing is cached) give byte-identical pixels and metadata.
    let b = submit(
        &http,
        &sim.url,
        &model_graph(2, "a red fox in snow", 4),
        None,
    )
    .await;
    let eb = wait_history(&http, &sim.url, b["prompt_id"].as_str().unwrap()).await;
    let png2 = fetch_output(&http, &sim.url, &eb, "7").await;
    let c = submit(
        &http,
        &sim.url,
        &model_graph(1, "a red fox in snow", 4),
        None,
    )
    .await;
    let ec = wait_history(&http, &sim.url, c["prompt_id"].as_str().unwrap()).await;
    assert_eq!(
        ec["outputs"]["7"]["images"][0]["filename"],
        "128x96_00003_.png"
    );
    let png3 = fetch_output(&http, &sim.url, &ec, "7").await;
    let pixels = |b: &[u8]| image::load_from_memory(b).unwrap().to_rgb8().into_raw();
    assert_eq!(png1, png3);
    let diff: u64 = pixels(&png1)
        .iter()
        .zip(pixels(&png2))
        .map(|(x, y)| (*x as i32 - y as i32).unsigned_abs() as u64)
        .sum();
    assert!(
        diff / (128 * 96 * 3) > 5,
        "different seeds must look different"
    );
    // The model name the prompt used is now "installed".
    let info: Value = http
        .get(format!("{}/object_info/CheckpointLoaderSimple", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
            .as_array()
            .unwrap()
            .contains(&json!("my_model.safetensors"))
    );
}

#[tokio::test]
async fn img2img_low_denoise_stays_close_to_the_input() {
    let sim = start(SimConfig {
        previews: false,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let src = image::RgbImage::from_pixel(64, 64, image::Rgb([200, 30, 30]));
    let mut png = std::io::Cursor::new(Vec::new());
    src.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(png.into_inner()).file_name("red.png"),
    );
    let up = upload(&http, &sim.url, "/upload/image", form).await;
    assert_eq!(
        up,
        json!({"name": "red.png", "subfolder": "", "type": "input"})
    );
    let mut g = model_graph(5, "ocean", 2);
    g["8"] = json!({"class_type": "LoadImage", "inputs": {"image": "red.png"}});
    g["9"] = json!({"class_type": "VAEEncode", "inputs": {"pixels": ["8", 0], "vae": ["1", 2]}});
    g["5"]["inputs"]["latent_image"] = json!(["9", 0]);
    g["5"]["inputs"]["denoise"] = json!(0.1);
    let r = submit(&http, &sim.url, &g, None).await;
    let e = wait_history(&http, &sim.url, r["prompt_id"].as_str().unwrap()).await;
    let out = image::load_from_memory(&fetch_output(&http, &sim.url, &e, "7").await)
        .unwrap()
        .to_rgb8();
    assert_eq!(out.dimensions(), (64, 64));
    let avg_r = out.pixels().map(|p| p.0[0] as u64).sum::<u64>() / (64 * 64);
    assert!(
        avg_r > 150,
        "denoise 0.1 keeps the red input (avg red {avg_r})"
    );
}

#[tokio::test]
async fn interrupt_lands_at_the_next_sampler_step() {
    let sim = start(SimConfig {
        step_delay: Duration::from_millis(40),
        previews: false,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let mut ws = Ws::connect(&sim.url, Some("c2")).await;
    ws.next_json().await;
    let r = submit(&http, &sim.url, &model_graph(3, "x", 200), Some("c2")).await;
    let pid = r["prompt_id"].as_str().unwrap().to_string();
    loop {
        let v = ws.next_json().await;
        if v["type"] == "progress" && v["data"]["value"] == 2 {
            break;
        }
    }
    assert_eq!(sim.sim.running_id().as_deref(), Some(pid.as_str()));
    // A targeted interrupt for another id is a no-op; the right one lands.
    let resp = http
        .post(format!("{}/interrupt", sim.url))
        .json(&json!({"prompt_id": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-type").is_none());
    http.post(format!("{}/interrupt", sim.url))
        .json(&json!({"prompt_id": pid}))
        .send()
        .await
        .unwrap();
    let rest = ws.until_done(&pid).await;
    let interrupted = rest
        .iter()
        .find_map(|g| match g {
            Got::Text(v) if v["type"] == "execution_interrupted" => Some(v["data"].clone()),
            _ => None,
        })
        .expect("execution_interrupted");
    assert_eq!(interrupted["node_id"], "5");
    assert_eq!(interrupted["node_type"], "KSampler");
    let e = wait_history(&http, &sim.url, &pid).await;
    assert_eq!(e["status"]["status_str"], "error");
    assert_eq!(
        e["status"]["messages"].as_array().unwrap().last().unwrap()[0],
        "execution_interrupted"
    );
}

#[tokio::test]
async fn jobs_api_cancels_pending_and_running_and_can_be_off() {
    let sim = start(SimConfig {
        step_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let a = submit(&http, &sim.url, &model_graph(1, "a", 100), None).await;
    let b = submit(&http, &sim.url, &model_graph(2, "b", 2), None).await;
    let (ida, idb) = (
        a["prompt_id"].as_str().unwrap(),
        b["prompt_id"].as_str().unwrap(),
    );
    let jobs: Value = http
        .get(format!("{}/api/jobs?limit=10", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["pagination"]["total"], 2);
    let r: Value = http
        .post(format!("{}/api/jobs/{idb}/cancel", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"cancelled": true}));
    assert!(sim.sim.pending_ids().is_empty());
    for _ in 0..100 {
        if sim.sim.running_id().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r: Value = http
        .post(format!("{}/api/jobs/{ida}/cancel", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"cancelled": true}));
    let e = wait_history(&http, &sim.url, ida).await;
    assert_eq!(e["status"]["status_str"], "error");
    let job: Value = http
        .get(format!("{}/api/jobs/{ida}", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["status"], "cancelled");
    let r: Value = http
        .post(format!("{}/api/jobs/unknown/cancel", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"cancelled": false}));
    assert_eq!(
        http.get(format!("{}/history/{idb}", sim.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "{}"
    );

    let old = start(SimConfig {
        jobs_api: false,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(
        http.get(format!("{}/api/jobs?limit=1", old.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{}/api/queue", old.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn view_and_upload_rules() {
    let sim = start(SimConfig {
        max_upload_size: 4096,
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let up = |bytes: Vec<u8>, name: &str, extra: &[(&str, &str)]| {
        let mut form = reqwest::multipart::Form::new().part(
            "image",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        for (k, v) in extra {
            form = form.text(k.to_string(), v.to_string());
        }
        http.post(format!("{}/upload/image", sim.url))
            .multipart(form)
            .send()
    };
    let body = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap() };
    assert_eq!(
        body(up(b"one".to_vec(), "u.png", &[]).await.unwrap()).await["name"],
        "u.png"
    );
    assert_eq!(
        body(up(b"one".to_vec(), "u.png", &[]).await.unwrap()).await["name"],
        "u.png",
        "same bytes dedupe"
    );
    assert_eq!(
        body(up(b"two".to_vec(), "u.png", &[]).await.unwrap()).await["name"],
        "u (1).png"
    );
    assert_eq!(
        body(
            up(b"three".to_vec(), "u.png", &[("overwrite", "1")])
                .await
                .unwrap()
        )
        .await["name"],
        "u.png"
    );
    let r = body(
        up(b"x".to_vec(), "s.png", &[("subfolder", "a/b")])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r,
        json!({"name": "s.png", "subfolder": "a/b", "type": "input"})
    );
    assert_eq!(
        up(b"x".to_vec(), "e.png", &[("subfolder", "../../etc")])
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        up(b"x".to_vec(), "t.png", &[("type", "weird")])
            .await
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        up(vec![0; 10_000], "big.png", &[])
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(413),
        413
    );
    let no_file = reqwest::multipart::Form::new().text("type", "input");
    assert_eq!(
        http.post(format!("{}/upload/image", sim.url))
            .multipart(no_file)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert!(sim.sim.uploads().contains(&"a/b/s.png".to_string()));

    let view = |q: Vec<(&'static str, &'static str)>| {
        http.get(format!("{}/view", sim.url)).query(&q).send()
    };
    assert_eq!(view(vec![]).await.unwrap().status(), 404);
    assert_eq!(
        view(vec![("filename", "../x.png")]).await.unwrap().status(),
        400
    );
    assert_eq!(
        view(vec![("filename", "/x.png")]).await.unwrap().status(),
        400
    );
    assert_eq!(
        view(vec![("filename", "u.png"), ("type", "bogus")])
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        view(vec![
            ("filename", "u.png"),
            ("type", "input"),
            ("subfolder", "../..")
        ])
        .await
        .unwrap()
        .status(),
        403
    );
    assert_eq!(
        view(vec![("filename", "nope.png"), ("type", "input")])
            .await
            .unwrap()
            .status(),
        404
    );
    let ok = view(vec![("filename", "u.png [input]")]).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "image/png");
    assert_eq!(ok.headers()["content-disposition"], "filename=\"u.png\"");
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"three");

    // A real picture, previewed as JPEG and WebP.
    let img = image::RgbaImage::from_pixel(8, 8, image::Rgba([10, 20, 30, 128]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    up(png.into_inner(), "p.png", &[]).await.unwrap();
    let j = view(vec![
        ("filename", "p.png"),
        ("type", "input"),
        ("preview", "jpeg;50"),
    ])
    .await
    .unwrap();
    assert_eq!(j.headers()["content-type"], "image/jpeg");
    let w = view(vec![
        ("filename", "p.png"),
        ("type", "input"),
        ("preview", "png"),
    ])
    .await
    .unwrap();
    assert_eq!(w.headers()["content-type"], "image/webp");
    let a = view(vec![
        ("filename", "p.png"),
        ("type", "input"),
        ("channel", "a"),
    ])
    .await
    .unwrap();
    let a = image::load_from_memory(&a.bytes().await.unwrap())
        .unwrap()
        .to_rgba8();
    assert_eq!(a.get_pixel(0, 0).0, [0, 0, 0, 128]);
}

#[tokio::test]
async fn fault_switches_crash_and_restart() {
    let mut sim = start(SimConfig::default()).await;
    let http = client();
    let g = common::graph("txt2img.json");
    sim.sim.fail_next_execution(Some("ImageAddNoise"));
    let r = submit(&http, &sim.url, &g, None).await;
    let e = wait_history(&http, &sim.url, r["prompt_id"].as_str().unwrap()).await;
    let last = e["status"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last[0], "execution_error");
    assert_eq!(last[1]["node_type"], "ImageAddNoise");
    assert_eq!(last[1]["executed"], json!(["1"]));
    assert!(
        last[1]["current_inputs"]["image"][0]
            .as_str()
            .unwrap()
            .starts_with("tensor([")
    );

    let ok = submit(&http, &sim.url, &g, None).await;
    let e = wait_history(&http, &sim.url, ok["prompt_id"].as_str().unwrap()).await;
    assert_eq!(
        e["outputs"]["3"]["images"][0]["filename"],
        "txt2img_00001_.png"
    );

    let mut ws = Ws::connect(&sim.url, None).await;
    let greeting = ws.next_json().await;
    assert_eq!(
        greeting["data"]["sid"].as_str().unwrap().len(),
        32,
        "server-made ids are uuid4().hex"
    );
    assert_eq!(sim.sim.socket_count(), 1);
    sim.sim.drop_sockets();
    assert!(matches!(
        ws.next(Duration::from_secs(5)).await,
        Some(Got::Close(1000))
    ));
    assert_eq!(sim.sim.socket_count(), 0);

    sim.sim.set_step_delay(Duration::from_millis(200));
    submit(&http, &sim.url, &common::graph("slow.json"), None).await;
    submit(&http, &sim.url, &common::graph("txt2img.json"), None).await;
    assert_eq!(sim.sim.submitted().len(), 4);
    sim.crash().await;
    assert!(
        http.get(format!("{}/queue", sim.url)).send().await.is_err(),
        "a crashed server refuses connections"
    );
    sim.restart().await.unwrap();
    let q: Value = http
        .get(format!("{}/queue", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q, json!({"queue_running": [], "queue_pending": []}));
    assert_eq!(sim.sim.history_len(), 0);
    sim.sim.set_step_delay(Duration::ZERO);
    let r = submit(&http, &sim.url, &g, None).await;
    assert_eq!(r["number"], 0, "a fresh process counts from 0");
    let e = wait_history(&http, &sim.url, r["prompt_id"].as_str().unwrap()).await;
    assert_eq!(e["status"]["status_str"], "success");
    // Output files survive a restart (they live on disk in ComfyUI): the counter continues.
    assert_eq!(
        e["outputs"]["3"]["images"][0]["filename"],
        "txt2img_00002_.png"
    );
}

#[tokio::test]
async fn misc_routes_and_prompt_quirks() {
    let sim = start(SimConfig::default()).await;
    let http = client();
    let get = |p: &str| http.get(format!("{}{p}", sim.url)).send();
    let stats: Value = get("/system_stats").await.unwrap().json().await.unwrap();
    assert_eq!(stats["devices"][0]["name"], "cpu (simulated)");
    assert_eq!(
        get("/api/object_info/Nope")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "{}"
    );
    assert_eq!(get("/models/unet").await.unwrap().status(), 404);
    assert_eq!(
        get("/features")
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
        json!({"supports_preview_metadata": true, "max_upload_size": 104857600})
    );
    let r = http
        .post(format!("{}/prompt", sim.url))
        .json(&json!({"client_id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "no_prompt"
    );
    let r = http
        .post(format!("{}/prompt", sim.url))
        .json(&json!({"prompt": [1, 2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    // Rejected prompts used numbers 0 and 1 already.
    let r: Value = submit(&http, &sim.url, &common::graph("txt2img.json"), None).await;
    assert_eq!(r["number"], 2);
    let r: Value = http
        .post(format!("{}/prompt", sim.url))
        .json(
            &json!({"prompt": common::graph("txt2img.json"), "number": 2.5, "prompt_id": "custom"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["number"], 2.5);
    assert_eq!(r["prompt_id"], "custom");
    let h = wait_history(&http, &sim.url, "custom").await;
    assert_eq!(h["prompt"][0], 2.5);
    let all: Value = get("/history?max_items=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["custom"]
    );
    let resp = http
        .post(format!("{}/history", sim.url))
        .json(&json!({"clear": true}))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-type").is_none());
    assert_eq!(sim.sim.history_len(), 0);
}
