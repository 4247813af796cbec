//! `POST /v1/images/generations` end to end against the ComfyUI simulator.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn b64_json_returns_a_png_of_the_requested_size() {
    let h = start().await;
    let (status, body) = h
        .generate(json!({"prompt": "a red fox", "model": MODEL, "size": "64x64"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["created"].as_u64().is_some());
    assert_eq!(body["size"], "64x64");
    assert_eq!(body["output_format"], "png");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["revised_prompt"], "a red fox");
    assert!(data[0].get("url").is_none(), "no null url field: {body}");
    let png = decode_b64(&data[0]);
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(dimensions(&png), (64, 64));

    // The values of the request are what ComfyUI ran.
    let graph = embedded_graph(&png).expect("the graph is recorded in the PNG");
    let text = graph.to_string();
    assert!(text.contains("a red fox"), "prompt missing from {text}");
    let seed = data[0]["seed"].as_u64().unwrap();
    assert!(
        text.contains(&seed.to_string()),
        "seed {seed} missing from {text}"
    );
    let submitted = h.sim.sim.submitted();
    assert_eq!(submitted.len(), 1);
}

#[tokio::test]
async fn url_format_serves_the_image_by_an_unguessable_url() {
    let h = start().await;
    let (status, body) = h
        .generate(json!({"prompt": "lighthouse", "model": MODEL, "size": "64x64", "response_format": "url"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/images/", h.url)), "{url}");
    assert!(body["data"][0].get("b64_json").is_none());
    let res = h.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let bytes = res.bytes().await.unwrap();
    assert_eq!(dimensions(&bytes), (64, 64));

    let (status, _) = h.get("/images/00000000000000000000000000000000.png").await;
    assert_eq!(status, 404);
    let (status, _) = h.get("/images/..%2F..%2FCargo.toml").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn public_url_is_used_for_image_links() {
    let h = start_with(|c| c.public_url = Some("https://img.example.com/".into())).await;
    let (status, body) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64", "response_format": "url"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://img.example.com/images/")
    );
}

#[tokio::test]
async fn output_formats_are_transcoded() {
    let h = start().await;
    for (format, magic) in [("jpeg", &b"\xff\xd8\xff"[..]), ("webp", &b"RIFF"[..])] {
        let (status, body) = h
            .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64",
                "output_format": format, "output_compression": 70}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["output_format"], format);
        let bytes = decode_b64(&body["data"][0]);
        assert!(bytes.starts_with(magic), "{format}");
        assert_eq!(dimensions(&bytes), (64, 64));
    }
}

#[tokio::test]
async fn n_images_get_distinct_seeds_and_differ() {
    let h = start().await;
    let (status, body) = h
        .generate(json!({"prompt": "stars", "model": MODEL, "size": "64x64", "n": 3}))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let mut seeds: Vec<u64> = data.iter().map(|d| d["seed"].as_u64().unwrap()).collect();
    let images: Vec<Vec<u8>> = data.iter().map(decode_b64).collect();
    assert_ne!(images[0], images[1]);
    assert_ne!(images[1], images[2]);
    seeds.sort();
    seeds.dedup();
    assert_eq!(seeds.len(), 3);
    assert_eq!(h.sim.sim.submitted().len(), 3);
}

#[tokio::test]
async fn a_given_seed_repeats_the_image() {
    let h = start().await;
    let req = json!({"prompt": "same", "model": MODEL, "size": "64x64", "seed": 1234, "n": 2});
    let (_, first) = h.generate(req.clone()).await;
    let (status, second) = h.generate(req).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(first["data"][0]["seed"], 1234);
    assert_eq!(first["data"][1]["seed"], 1235);
    assert_eq!(
        decode_b64(&first["data"][0]),
        decode_b64(&second["data"][0])
    );
    assert_ne!(decode_b64(&first["data"][0]), decode_b64(&first["data"][1]));
}

#[tokio::test]
async fn default_model_and_size_apply() {
    let h = start().await;
    let (status, body) = h
        .generate(json!({"prompt": "default", "size": "auto", "model": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (w, hgt) = dimensions(&decode_b64(&body["data"][0]));
    assert_eq!(body["size"], format!("{w}x{hgt}"));
}

#[tokio::test]
async fn model_workflows_receive_prompt_steps_and_cfg() {
    let h = start().await;
    let (status, body) = h
        .generate(
            json!({"prompt": "a castle", "model": "sdxl", "size": "512x512",
            "negative_prompt": "blurry", "steps": 7, "cfg": 4.5, "seed": 99}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, graph) = h.sim.sim.submitted().pop().unwrap();
    let nodes = graph.as_object().unwrap();
    let sampler = nodes
        .values()
        .find(|n| n["class_type"] == "KSampler")
        .unwrap();
    assert_eq!(sampler["inputs"]["steps"], 7);
    assert_eq!(sampler["inputs"]["cfg"], 4.5);
    assert_eq!(sampler["inputs"]["seed"], 99);
    let texts: Vec<&str> = nodes
        .values()
        .filter(|n| n["class_type"] == "CLIPTextEncode")
        .filter_map(|n| n["inputs"]["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"a castle") && texts.contains(&"blurry"),
        "{texts:?}"
    );
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (512, 512));
}

#[tokio::test]
async fn finished_jobs_leave_no_history_behind() {
    let h = start().await;
    let (status, _) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64", "n": 2}))
        .await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        if h.sim.sim.history_len() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("history entries were not deleted");
}
