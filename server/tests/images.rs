//! `POST /v1/images/generations` end to end against the ComfyUI simulator.

mod common;

use std::time::Duration;

use app::api::parameters::{png_text, read_png};
use common::*;
use serde_json::json;
use server::config::ImageMetadata;

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

    // The PNG says what it was made with, as A1111-style tools read it; ComfyUI's graph, which
    // names the server's files, is gone.
    let made = read_png(&png).expect("parameters in the PNG");
    assert_eq!(made.prompt, "a red fox");
    assert_eq!(made.seed, data[0]["seed"].as_u64());
    assert_eq!(made.size, Some("64x64".parse().unwrap()));
    assert_eq!(made.model.as_deref(), Some(MODEL));
    assert!(embedded_graph(&png).is_none(), "ComfyUI's graph left in");
    let submitted = h.sim.sim.submitted();
    assert_eq!(submitted.len(), 1);
}

#[tokio::test]
async fn the_parameters_are_the_settings_the_image_was_made_with() {
    let h = start().await;
    let (status, body) = h
        .generate(
            json!({"prompt": "a red fox", "model": "sdxl", "size": "512x512",
            "steps": 12, "sampler": "dpmpp_2m", "seed": 99, "quality": "auto"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let made = read_png(&decode_b64(&body["data"][0])).unwrap();
    assert_eq!(
        (made.steps, made.cfg, made.seed),
        (Some(12), Some(7.0), Some(99))
    );
    assert_eq!(made.sampler.as_deref(), Some("dpmpp_2m"));
    assert_eq!(made.scheduler.as_deref(), Some("normal"));
    assert!(made.negative_prompt.is_some_and(|n| !n.is_empty()));
    // The settings line is the last one, as A1111 writes it.
    let text = png_text(&decode_b64(&body["data"][0]));
    let parameters = &text.iter().find(|(k, _)| k == "parameters").unwrap().1;
    assert!(
        parameters.ends_with("Steps: 12, Sampler: dpmpp_2m, Schedule type: normal, CFG scale: 7, Seed: 99, Size: 512x512, Model: sdxl"),
        "{parameters}"
    );
}

#[tokio::test]
async fn image_metadata_keeps_comfyuis_graph_or_nothing() {
    let h = start_with(|c| c.image_metadata = ImageMetadata::Comfyui).await;
    let (_, body) = h
        .generate(json!({"prompt": "a red fox", "model": MODEL, "size": "64x64"}))
        .await;
    let png = decode_b64(&body["data"][0]);
    let graph = embedded_graph(&png).expect("the graph is recorded in the PNG");
    let seed = body["data"][0]["seed"].as_u64().unwrap();
    assert!(graph.to_string().contains(&seed.to_string()), "{graph}");
    assert!(read_png(&png).is_some_and(|p| p.seed == Some(seed)));

    let h = start_with(|c| c.image_metadata = ImageMetadata::None).await;
    let (_, body) = h
        .generate(
            json!({"prompt": "a red fox", "model": MODEL, "size": "64x64",
            "response_format": "url"}),
        )
        .await;
    let url = body["data"][0]["url"].as_str().unwrap();
    let png = h.http.get(url).send().await.unwrap().bytes().await.unwrap();
    assert!(png_text(&png).is_empty(), "{:?}", png_text(&png));
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

#[tokio::test]
async fn a_run_the_socket_heard_whole_is_collected_without_asking_history() {
    let h = start().await;
    h.wait_for_socket().await;
    let (status, body) = h
        .generate(json!({"prompt": "x", "model": MODEL, "size": "64x64", "n": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
    let images: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(decode_b64)
        .collect();
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|png| dimensions(png) == (64, 64)));
    assert_ne!(images[0], images[1], "each image is its own");
    // The socket's `executed` messages named the files, as history would have.
    assert_eq!(h.sim.sim.history_reads(), 0);
}

/// Weight-free workflows that end in each kind of image output ComfyUI has.
fn output_variants() -> std::path::PathBuf {
    let dir = scratch_dir();
    let base: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shipped_workflows().join("weightfree-txt2img.json")).unwrap(),
    )
    .unwrap();
    let variants = [
        (
            "mask-preview",
            json!({"3": {"class_type": "ImageToMask", "inputs": {"image": ["2", 0], "channel": "red"}},
                   "6": {"class_type": "MaskPreview", "inputs": {"mask": ["3", 0]}}}),
        ),
        (
            "preview",
            json!({"3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}),
        ),
        (
            "websocket",
            json!({"3": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}}}),
        ),
        (
            // A latent decoded through ComfyUI's pixel_space VAE: an eighth of the size, RGBA.
            "latent",
            json!({"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
                   "2": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["7", 0]}},
                   "7": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
                   "8": {"class_type": "ImageScaleBy", "inputs": {"image": ["2", 0], "upscale_method": "nearest-exact", "scale_by": 8.0}},
                   "3": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}}),
        ),
    ];
    for (id, nodes) in variants {
        let mut graph = base.clone();
        for (node, value) in nodes.as_object().unwrap() {
            graph[node] = value.clone();
        }
        std::fs::write(dir.join(format!("{id}.json")), graph.to_string()).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_workflow_saving_over_the_socket_streams_a_partial_image() {
    // Its node reports 0 of 1 before each frame, which says nothing of how far the run is.
    let dir = output_variants();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let res = h
        .post_stream(
            "/v1/images/generations",
            json!({"prompt": "x", "model": "websocket", "size": "512x512",
                   "stream": true, "partial_images": 1}),
        )
        .await;
    let sse = read_sse(res).await;
    let kinds: Vec<String> = sse
        .events
        .iter()
        .map(|e| e.json()["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "image_generation.partial_image",
            "image_generation.completed"
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn every_kind_of_image_output_gives_the_image() {
    let dir = output_variants();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    for id in ["mask-preview", "preview", "websocket", "latent"] {
        let (status, body) = h
            .generate(json!({"prompt": "x", "model": id, "size": "512x512"}))
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        let png = decode_b64(&body["data"][0]);
        assert_eq!(dimensions(&png), (512, 512), "{id}");
        if id == "latent" {
            let img = image::load_from_memory(&png).unwrap();
            assert!(img.color().has_alpha(), "pixel_space decodes to RGBA");
        }
    }
    assert!(h.wait_until_idle(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(dir);
}
