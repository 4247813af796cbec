//! Workflows as ComfyUI saves them: the UI format its Save writes, and the PNGs it makes, which
//! carry their workflow. Both are read with the node types of a server that has answered.

mod common;

use std::{net::SocketAddr, path::Path, time::Duration};

use common::*;
use serde_json::{Value, json};

/// A UI-format twin of a shipped workflow, as ComfyUI's frontend saves it.
fn saved(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/templates/testdata/ui")
        .join(format!("{name}.json"));
    std::fs::read_to_string(path).unwrap()
}

/// A 64x64 PNG carrying `chunks` as text, as ComfyUI's SaveImage writes `prompt` and
/// `workflow`.
fn png_carrying(chunks: &[(&str, String)]) -> Vec<u8> {
    let texts: Vec<(String, String)> = chunks
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    sim::encode_png(&[90; 64 * 64 * 3], 64, 64, 3, &texts).unwrap()
}

async fn wait_for_status(h: &Harness, id: &str, status: &str) -> Value {
    for _ in 0..400 {
        let (_, list) = h.get("/v1/models").await;
        if listed(&list, id).is_some_and(|m| m["status"] == status) {
            return listed(&list, id).unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = h.get("/v1/models").await;
    panic!("{id} never became {status}: {list}");
}

#[tokio::test]
async fn a_saved_workflow_waits_for_a_server_then_runs() {
    let dir = scratch_dir();
    std::fs::write(dir.join("my-flow.json"), saved("weightfree-txt2img")).unwrap();
    let comfyui = dead_comfyui();
    let h = start_with(|c| {
        c.workflows_dir = dir.clone();
        c.comfyui_url = vec![comfyui.clone()];
    })
    .await;

    // No server has said what its nodes are: the model is listed as pending, with why.
    let pending = wait_for_status(&h, "my-flow", "pending").await;
    let why = pending["problems"][0].as_str().unwrap();
    assert!(
        why.contains("UI-format") && why.contains("my-flow.json"),
        "{why}"
    );
    let (status, resp) = h.generate(json!({"prompt": "x", "model": "my-flow"})).await;
    assert_eq!(status, 503, "{resp}");
    assert_envelope(&resp);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UI-format")
    );

    // A server comes up where none was: the file is converted with its node types and runs.
    let addr: SocketAddr = comfyui.trim_start_matches("http://").parse().unwrap();
    let late = sim::Simulator::new(sim::SimConfig::default())
        .serve(addr)
        .await
        .expect("simulator starts");
    let ready = wait_for_status(&h, "my-flow", "ready").await;
    assert_eq!(ready["kind"], "txt2img", "{ready}");
    let (status, resp) = h
        .generate(json!({"prompt": "a lighthouse", "model": "my-flow", "seed": 5}))
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(dimensions(&decode_b64(&resp["data"][0])), (1024, 1024));
    let ran = late.sim.submitted();
    assert_eq!(ran.len(), 1);
    let prompt = serde_json::to_string(&ran[0]).unwrap();
    assert!(prompt.contains("a lighthouse"), "{prompt}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn images_comfyui_made_are_workflows_and_bad_ones_are_named() {
    let dir = scratch_dir();
    // An image whose UI-format workflow is all it carries, one with the API prompt too, and
    // an image with no workflow in it at all.
    std::fs::write(
        dir.join("from-ui.png"),
        png_carrying(&[("workflow", saved("weightfree-txt2img"))]),
    )
    .unwrap();
    let api = std::fs::read_to_string(shipped_workflows().join("weightfree-img2img.json")).unwrap();
    std::fs::write(
        dir.join("from-api.png"),
        png_carrying(&[("prompt", api), ("workflow", saved("weightfree-img2img"))]),
    )
    .unwrap();
    std::fs::write(
        dir.join("a1111.png"),
        png_carrying(&[("parameters", "a cat\nSteps: 20, Sampler: Euler".into())]),
    )
    .unwrap();
    // Two files for one model: neither is guessed at.
    std::fs::write(dir.join("twice.json"), saved("weightfree-txt2img")).unwrap();
    std::fs::write(
        dir.join("twice.png"),
        png_carrying(&[("workflow", saved("weightfree-txt2img"))]),
    )
    .unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;

    wait_for_status(&h, "from-ui", "ready").await;
    let from_api = wait_for_status(&h, "from-api", "ready").await;
    assert_eq!(from_api["kind"], "img2img", "{from_api}");
    let (status, resp) = h
        .generate(json!({"prompt": "x", "model": "from-ui", "size": "768x512"}))
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(dimensions(&decode_b64(&resp["data"][0])), (768, 512));

    let (_, list) = h.get("/v1/models").await;
    let a1111 = listed(&list, "a1111").expect("listed");
    assert_eq!(a1111["status"], "unavailable", "{a1111}");
    assert!(
        a1111["problems"][0]
            .as_str()
            .unwrap()
            .contains("carries no ComfyUI workflow"),
        "{a1111}"
    );
    let twice = listed(&list, "twice").expect("listed");
    assert_eq!(twice["status"], "unavailable", "{twice}");
    assert!(
        twice["problems"][0]
            .as_str()
            .unwrap()
            .contains("keep one of the two files"),
        "{twice}"
    );
    let (status, resp) = h.generate(json!({"prompt": "x", "model": "a1111"})).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["error"]["code"], "invalid_workflow");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_saved_workflow_the_server_cannot_read_is_refused_by_node() {
    let dir = scratch_dir();
    let mut ui: Value = serde_json::from_str(&saved("weightfree-txt2img")).unwrap();
    let nodes = ui["nodes"].as_array_mut().unwrap();
    nodes[0]["type"] = json!("NodeNobodyHas");
    let id = nodes[0]["id"].clone();
    std::fs::write(dir.join("odd.json"), ui.to_string()).unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;

    let odd = wait_for_status(&h, "odd", "unavailable").await;
    let why = odd["problems"][0].as_str().unwrap();
    assert!(
        why.contains("odd.json")
            && why.contains(&format!("node {id}"))
            && why.contains("NodeNobodyHas"),
        "{why}"
    );
    let health: Value = h.fetch("/health").await.json().await.unwrap();
    let errors = health["workflows"]["errors"].to_string();
    assert!(errors.contains("NodeNobodyHas"), "{health}");
    let _ = std::fs::remove_dir_all(dir);
}
