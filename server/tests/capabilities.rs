//! What each ComfyUI server can run, read from its `/object_info`, and where jobs go: only to
//! servers that can run the model, and among those to the shortest real queue, counting
//! prompts other clients put there.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A workflow whose noise strength is beyond what ComfyUI accepts (0 to 1).
fn out_of_range_workflow() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": 1.5}},
        "3": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}}"}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}}
    })
}

fn model<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed in {list}"))
}

#[tokio::test]
async fn a_workflow_no_server_accepts_is_a_400_that_says_why() {
    let dir = scratch_dir();
    std::fs::write(dir.join("noisy.json"), out_of_range_workflow().to_string()).unwrap();
    std::fs::write(dir.join("noisy.toml"), "sizes = [\"64x64\"]\n").unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;

    let (status, resp) = h.generate(json!({"prompt": "x", "model": "noisy"})).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "invalid_workflow");
    assert_eq!(resp["error"]["param"], "model");
    let message = resp["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("node 2 ImageAddNoise.strength") && message.contains("1.5"),
        "{message}"
    );
    assert!(h.sim.sim.submitted().is_empty(), "it reached ComfyUI");

    // A stream gets the same plain answer, and the model list says so too.
    let res = h
        .send_json(
            "/v1/images/generations",
            json!({"prompt": "x", "model": "noisy", "stream": true}),
        )
        .await;
    assert_eq!(read(res).await.0, 400);
    let (_, list) = h.get("/v1/models").await;
    let noisy = model(&list, "noisy");
    assert_eq!(noisy["status"], "unavailable", "{noisy}");
    let problems = noisy["problems"].as_array().unwrap();
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("ImageAddNoise.strength"),
        "{noisy}"
    );
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let unavailable = &health["workflows"]["unavailable"][0];
    assert_eq!(unavailable["model"], "noisy", "{health}");
    let reason = unavailable["reasons"][0].as_str().unwrap();
    assert!(reason.contains("out of range"), "{health}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn models_and_servers_report_what_runs_where() {
    let h = start().await;
    let (status, list) = h.get("/v1/models").await;
    assert_eq!(status, 200);
    for m in list["data"].as_array().unwrap() {
        assert_eq!(m["status"], "ready", "{m}");
        assert!(m.get("problems").is_none(), "{m}");
    }
    let (status, one) = h.get("/v1/models/sdxl").await;
    assert_eq!(status, 200);
    assert_eq!(one["status"], "ready");

    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let runnable = health["servers"][0]["models"].as_array().unwrap();
    assert!(runnable.contains(&json!("sdxl")), "{health}");
    assert!(runnable.contains(&json!(MODEL)), "{health}");
}

#[tokio::test]
async fn with_no_server_answering_models_are_pending_and_jobs_503() {
    let h = start_with(|c| c.comfyui_url = vec![dead_comfyui()]).await;
    let (_, list) = h.get("/v1/models").await;
    let sdxl = model(&list, "sdxl");
    assert_eq!(sdxl["status"], "pending", "{sdxl}");
    let (status, resp) = h.generate(json!({"prompt": "x", "model": MODEL})).await;
    assert_eq!(status, 503, "{resp}");
    assert_eq!(resp["error"]["code"], "comfyui_unavailable");
}

/// Queues `n` prompts straight on a simulator, as another client of that ComfyUI would, and
/// returns their ids.
async fn queue_elsewhere(url: &str, n: usize) -> Vec<String> {
    let graph: Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_workflows().join("weightfree-txt2img.json")).unwrap(),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let res = http
            .post(format!("{url}/prompt"))
            .json(&json!({"prompt": graph, "client_id": "someone-else"}))
            .send()
            .await
            .unwrap();
        let reply: Value = res.json().await.unwrap();
        ids.push(reply["prompt_id"].as_str().expect("queued").to_string());
    }
    ids
}

#[tokio::test]
async fn jobs_go_to_the_server_with_the_shorter_real_queue() {
    // Two servers; the first is busy with another client's prompts.
    let busy = sim_with(slow_sim(Duration::from_millis(200))).await;
    let busy_url = busy.url.clone();
    let h = start_with(|c| c.comfyui_url = vec![busy_url.clone(), c.comfyui_url[0].clone()]).await;
    // Both sockets up, so both servers' queue reports arrive.
    for _ in 0..200 {
        if busy.sim.socket_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let theirs = queue_elsewhere(&busy_url, 3).await;
    // The busy server's status message tells its queue.
    tokio::time::sleep(Duration::from_millis(200)).await;

    for _ in 0..3 {
        let (status, body) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let bridge_jobs_on_busy = busy
        .sim
        .submitted()
        .iter()
        .filter(|(id, _)| !theirs.contains(id))
        .count();
    assert_eq!(bridge_jobs_on_busy, 0, "a job went to the busy server");
    assert_eq!(h.sim.sim.submitted().len(), 3);
}

/// Waits until `/v1/models` says `id` has `status`.
async fn wait_for_status(h: &Harness, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let (_, list) = h.get("/v1/models").await;
        let m = model(&list, id).clone();
        if m["status"] == status {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} never became {status}");
}

#[tokio::test]
async fn servers_lacking_a_node_or_a_file_get_no_jobs_for_it() {
    // One server lacks a node the weight-free model needs, the other every model file.
    let no_noise = sim_with(sim::SimConfig {
        missing_nodes: vec!["ImageAddNoise".into()],
        ..sim::SimConfig::default()
    })
    .await;
    let no_files = sim_with(sim::SimConfig {
        model_files: Some(Vec::new()),
        ..sim::SimConfig::default()
    })
    .await;
    let urls = vec![no_noise.url.clone(), no_files.url.clone()];
    let h = start_with(|c| c.comfyui_url = urls).await;

    wait_for_status(&h, MODEL, "ready").await;
    wait_for_status(&h, "sdxl", "ready").await;
    for _ in 0..2 {
        let (status, body) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = h
            .generate(json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 2}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let classes = |sim: &sim::RunningSim| -> Vec<String> {
        sim.sim
            .submitted()
            .iter()
            .map(|(_, graph)| graph["3"]["class_type"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        no_noise.sim.submitted().len(),
        2,
        "{:?}",
        classes(&no_noise)
    );
    assert_eq!(
        no_files.sim.submitted().len(),
        2,
        "{:?}",
        classes(&no_files)
    );
    for (_, graph) in no_noise.sim.submitted() {
        assert!(
            !graph.to_string().contains("ImageAddNoise"),
            "a weight-free job on the server without its node"
        );
    }
    for (_, graph) in no_files.sim.submitted() {
        assert!(
            !graph.to_string().contains(".safetensors"),
            "an sdxl job on the server without files"
        );
    }

    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let runs = |i: usize| health["servers"][i]["models"].as_array().unwrap().clone();
    assert!(
        !runs(0).contains(&json!(MODEL)) && runs(0).contains(&json!("sdxl")),
        "{health}"
    );
    assert!(
        runs(1).contains(&json!(MODEL)) && !runs(1).contains(&json!("sdxl")),
        "{health}"
    );
}

#[tokio::test]
async fn a_model_no_server_has_the_files_for_is_503_with_the_reason() {
    let h = start_full(
        sim::SimConfig {
            model_files: Some(vec!["other.safetensors".into()]),
            ..sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    let sdxl = wait_for_status(&h, "sdxl", "unavailable").await;
    let problem = sdxl["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("missing model file `sd_xl_base_1.0.safetensors`")
            && problem.contains("CheckpointLoaderSimple.ckpt_name"),
        "{sdxl}"
    );
    let res = h
        .send_json(
            "/v1/images/generations",
            json!({"prompt": "x", "model": "sdxl", "size": "512x512"}),
        )
        .await;
    assert_eq!(res.headers()["x-should-retry"], "false");
    let (status, body) = read(res).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable");
    assert_eq!(body["error"]["param"], "model");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sd_xl_base_1.0.safetensors"),
        "{body}"
    );
    // The weight-free models need no files and still run.
    let (status, _) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.sim.submitted().len(), 1);
}

#[tokio::test]
async fn a_server_restarted_with_the_files_runs_the_model_again() {
    let mut h = start_full(
        sim::SimConfig {
            model_files: Some(Vec::new()),
            ..sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    wait_for_status(&h, "sdxl", "unavailable").await;
    h.sim
        .sim
        .set_model_files(Some(vec!["sd_xl_base_1.0.safetensors".into()]));
    h.sim.restart().await.unwrap();
    wait_for_status(&h, "sdxl", "ready").await;
    let (status, body) = h
        .generate(json!({"prompt": "x", "model": "sdxl", "size": "512x512", "steps": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
}
