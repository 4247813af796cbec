//! A simulator configured as one particular server: only some model files, some node classes
//! missing. This is what lets tests stand up several different ComfyUI servers side by side.

mod common;

use common::{client, run_to_history, start};
use serde_json::{Value, json};
use sim::SimConfig;

const FILES: [&str; 3] = [
    "z_image_turbo_bf16.safetensors",
    "ae.safetensors",
    "qwen_3_4b.safetensors",
];
const SORTED: [&str; 3] = [
    "ae.safetensors",
    "qwen_3_4b.safetensors",
    "z_image_turbo_bf16.safetensors",
];

fn with_files(files: &[&str]) -> SimConfig {
    SimConfig {
        model_files: Some(files.iter().map(|f| f.to_string()).collect()),
        ..SimConfig::default()
    }
}

fn checkpoint_graph(ckpt: &str) -> Value {
    json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 7, "steps": 2, "cfg": 7.0,
              "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
              "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "caps"}}
    })
}

/// A combo's list in either encoding (`[[...]]` or `["COMBO", {"options": [...]}]`).
fn listed(info: &Value, class: &str, input: &str) -> Value {
    let spec = &info[class]["input"]["required"][input];
    if spec[0].is_array() {
        spec[0].clone()
    } else {
        spec[1]["options"].clone()
    }
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post_prompt(http: &reqwest::Client, base: &str, graph: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{base}/prompt"))
        .json(&json!({ "prompt": graph }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn model_files_are_all_the_pickers_list() {
    let sim = start(with_files(&FILES)).await;
    let http = client();
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    for (class, input) in [
        ("CheckpointLoaderSimple", "ckpt_name"),
        ("UNETLoader", "unet_name"),
        ("CLIPLoader", "clip_name"),
        ("LoraLoader", "lora_name"),
        ("UpscaleModelLoader", "model_name"),
    ] {
        assert_eq!(
            listed(&info, class, input),
            json!(SORTED),
            "{class}.{input}"
        );
    }
    assert_eq!(
        listed(&info, "VAELoader", "vae_name"),
        json!([
            "ae.safetensors",
            "pixel_space",
            "qwen_3_4b.safetensors",
            "z_image_turbo_bf16.safetensors"
        ]),
        "ComfyUI always offers pixel_space, whatever the vae folder holds"
    );
    let sampler = listed(&info, "KSampler", "sampler_name");
    assert!(sampler.as_array().unwrap().contains(&json!("euler")));
    assert!(
        !sampler
            .as_array()
            .unwrap()
            .contains(&json!("ae.safetensors"))
    );

    let one = get_json(
        &http,
        format!("{}/api/object_info/CheckpointLoaderSimple", sim.url),
    )
    .await;
    assert_eq!(
        listed(&one, "CheckpointLoaderSimple", "ckpt_name"),
        json!(SORTED)
    );
    for folder in ["checkpoints", "vae", "diffusion_models", "text_encoders"] {
        let names = get_json(&http, format!("{}/models/{folder}", sim.url)).await;
        assert_eq!(names, json!(SORTED), "/models/{folder}");
    }
    assert_eq!(
        get_json(&http, format!("{}/models/controlnet", sim.url)).await,
        json!([])
    );
}

#[tokio::test]
async fn a_listed_file_runs_and_any_other_fails_validation() {
    let sim = start(with_files(&FILES)).await;
    let http = client();
    let entry = run_to_history(&http, &sim.url, &checkpoint_graph("ae.safetensors")).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");

    // A file the demo simulator would accept, but this server does not have.
    let (status, body) = post_prompt(
        &http,
        &sim.url,
        &checkpoint_graph("sd_xl_base_1.0.safetensors"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        json!({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
               "details": "", "extra_info": {}})
    );
    let node = &body["node_errors"]["1"];
    assert_eq!(node["class_type"], "CheckpointLoaderSimple");
    assert_eq!(node["dependent_outputs"], json!(["7"]));
    let e = &node["errors"][0];
    assert_eq!(e["type"], "value_not_in_list");
    assert_eq!(e["message"], "Value not in list");
    assert_eq!(
        e["details"],
        "ckpt_name: 'sd_xl_base_1.0.safetensors' not in ['ae.safetensors', 'qwen_3_4b.safetensors', 'z_image_turbo_bf16.safetensors']"
    );
    assert_eq!(e["extra_info"]["input_name"], "ckpt_name");
    assert_eq!(
        e["extra_info"]["received_value"],
        "sd_xl_base_1.0.safetensors"
    );
    assert_eq!(e["extra_info"]["input_config"][0], json!(SORTED));
    assert_eq!(body["node_errors"].as_object().unwrap().len(), 1, "{body}");

    // A refused name is not "installed" by having been asked for.
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    assert_eq!(
        listed(&info, "CheckpointLoaderSimple", "ckpt_name"),
        json!(SORTED)
    );
    assert_eq!(sim.sim.submitted().len(), 1);
}

#[tokio::test]
async fn model_files_change_at_run_time_and_long_lists_are_summarised() {
    let sim = start(SimConfig::default()).await;
    let http = client();
    let many: Vec<String> = (0..25).map(|i| format!("m{i:02}.safetensors")).collect();
    sim.sim.set_model_files(Some(many.clone()));
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    assert_eq!(listed(&info, "UNETLoader", "unet_name"), json!(many));

    let (status, body) = post_prompt(&http, &sim.url, &checkpoint_graph("nope.safetensors")).await;
    assert_eq!(status, 400);
    let e = &body["node_errors"]["1"]["errors"][0];
    assert_eq!(e["type"], "value_not_in_list");
    assert_eq!(
        e["details"],
        "ckpt_name: 'nope.safetensors' not in (list of length 25)"
    );
    assert_eq!(e["extra_info"]["input_config"], Value::Null);

    let entry = run_to_history(&http, &sim.url, &checkpoint_graph("m24.safetensors")).await;
    assert_eq!(entry["status"]["status_str"], "success");

    // Back to the demo's "every model installed".
    sim.sim.set_model_files(None);
    let entry = run_to_history(&http, &sim.url, &checkpoint_graph("nope.safetensors")).await;
    assert_eq!(entry["status"]["status_str"], "success");
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    let ckpts = listed(&info, "CheckpointLoaderSimple", "ckpt_name");
    assert!(
        ckpts
            .as_array()
            .unwrap()
            .contains(&json!("nope.safetensors"))
    );
    assert!(
        ckpts
            .as_array()
            .unwrap()
            .contains(&json!("sd_xl_base_1.0.safetensors"))
    );
}

#[tokio::test]
async fn missing_nodes_are_absent_and_refused_like_unknown_ones() {
    let mut sim = start(SimConfig {
        missing_nodes: vec!["KSampler".into(), "VAEDecode".into()],
        ..SimConfig::default()
    })
    .await;
    let http = client();
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    assert!(info.get("KSampler").is_none());
    assert!(info.get("VAEDecode").is_none());
    assert!(info.get("KSamplerAdvanced").is_some());
    assert!(info.get("CheckpointLoaderSimple").is_some());
    for path in ["/object_info/KSampler", "/api/object_info/VAEDecode"] {
        let text = http
            .get(format!("{}{path}", sim.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "{}", "{path}");
    }

    let (status, body) = post_prompt(&http, &sim.url, &checkpoint_graph("ae.safetensors")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"type": "invalid_prompt",
                         "message": "Cannot execute because node KSampler does not exist.",
                         "details": "Node ID '#5'", "extra_info": {}},
               "node_errors": {}})
    );
    assert!(sim.sim.submitted().is_empty());
    let entry = run_to_history(&http, &sim.url, &common::graph("txt2img.json")).await;
    assert_eq!(entry["status"]["status_str"], "success");

    // The same server restarted with another set of custom nodes.
    sim.sim.set_missing_nodes(vec!["SaveImage".into()]);
    sim.restart().await.unwrap();
    let info = get_json(&http, format!("{}/object_info", sim.url)).await;
    assert!(info.get("KSampler").is_some());
    assert!(info.get("SaveImage").is_none());
    let (status, body) = post_prompt(&http, &sim.url, &common::graph("txt2img.json")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Cannot execute because node SaveImage does not exist."
    );
    assert_eq!(body["error"]["details"], "Node ID '#3'");
    let entry = run_to_history(&http, &sim.url, &{
        let mut g = checkpoint_graph("ae.safetensors");
        g["7"]["class_type"] = json!("PreviewImage");
        g["7"]["inputs"] = json!({"images": ["6", 0]});
        g
    })
    .await;
    assert_eq!(entry["status"]["status_str"], "success");
}
