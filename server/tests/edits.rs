//! `/v1/images/edits`, `/v1/images/img2img` and `/v1/images/variations` end to end against the
//! ComfyUI simulator: every way clients send images, and every input that must be refused
//! before anything reaches ComfyUI.

mod common;

use base64::Engine;
use common::*;
use reqwest::multipart::Form;
use serde_json::{Value, json};

const IMG2IMG: &str = "weightfree-img2img";
const INPAINT: &str = "weightfree-inpaint";
const BLEND: &str = "weightfree-blend";

const RED: [u8; 4] = [220, 20, 20, 255];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn form(model: &str, prompt: &str) -> Form {
    Form::new()
        .text("model", model.to_string())
        .text("prompt", prompt.to_string())
}

/// Asserts a refusal that never reached ComfyUI.
fn assert_refused(h: &Harness, status: u16, body: &Value, want: u16, param: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["param"], param, "{body}");
    assert!(h.graphs().is_empty(), "a refused edit reached ComfyUI");
    assert!(
        h.sim.sim.uploads().is_empty(),
        "a refused edit uploaded files"
    );
}

#[tokio::test]
async fn multipart_edit_uploads_the_image_and_sends_strength() {
    let h = start().await;
    let input = png(64, 64, RED, false);
    let f = form(IMG2IMG, "make it rusty")
        .text("size", "256x256")
        .text("strength", "0.3")
        .text("n", "2")
        .part("image", file_part(input.clone(), "photo.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["size"], "256x256");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["revised_prompt"], "make it rusty");
    for item in data {
        assert_eq!(dimensions(&decode_b64(item)), (256, 256));
    }

    // One upload serves both jobs; each graph loads it and carries the strength.
    let uploads = h.sim.sim.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert!(uploads[0].starts_with("bridge/"), "{uploads:?}");
    let graphs = h.graphs();
    assert_eq!(graphs.len(), 2);
    for g in &graphs {
        assert_eq!(loader_inputs(g), uploads);
        assert_eq!(input_of(g, "ImageAddNoise", "strength"), json!(0.3));
        assert!(g.to_string().contains("make it rusty"));
    }
}

#[tokio::test]
async fn the_uploaded_pixels_are_what_the_workflow_reads() {
    let h = start().await;
    let f = form(IMG2IMG, "keep it")
        .text("size", "64x64")
        .text("strength", "0")
        .part("image", file_part(png(64, 64, RED, false), "red.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_b64(&body["data"][0]);
    let [r, g, b] = pixel(&out, 32, 32);
    assert!(
        r > 200 && g < 40 && b < 40,
        "strength 0 keeps the red input: {r},{g},{b}"
    );
}

#[tokio::test]
async fn several_images_fill_the_workflow_slots_in_order() {
    let h = start().await;
    // The Python SDK sends `image[]` for every element of a list.
    let f = form(BLEND, "blend them")
        .text("size", "64x64")
        .part("image[]", file_part(png(64, 64, RED, false), "a.png"))
        .part(
            "image[]",
            file_part(png(32, 32, [0, 0, 255, 255], false), "b.png"),
        );
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let graph = &h.graphs()[0];
    let loaded = loader_inputs(graph);
    assert_eq!(loaded.len(), 2);
    assert!(
        loaded[0].ends_with("-0.png") && loaded[1].ends_with("-1.png"),
        "{loaded:?}"
    );

    // Hand-rolled clients repeat `image` or number it; both count.
    for names in [["image", "image"], ["image[0]", "image[1]"]] {
        let f = form(BLEND, "again")
            .text("size", "64x64")
            .part(names[0], file_part(png(8, 8, RED, false), "a.png"))
            .part(names[1], file_part(png(8, 8, RED, false), "b.png"));
        let (status, body) = h.post_form("/v1/images/edits", f).await;
        assert_eq!(status, 200, "{names:?}: {body}");
    }
}

#[tokio::test]
async fn more_images_than_the_model_takes_are_refused() {
    let h = start().await;
    let f = form(IMG2IMG, "too many")
        .part("image[]", file_part(png(8, 8, RED, false), "a.png"))
        .part("image[]", file_part(png(8, 8, RED, false), "b.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "image");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1")
    );
}

#[tokio::test]
async fn missing_and_broken_images_are_refused() {
    let h = start().await;
    let (status, body) = h
        .post_form("/v1/images/edits", form(IMG2IMG, "nothing"))
        .await;
    assert_refused(&h, status, &body, 400, "image");

    let f = form(IMG2IMG, "text").part(
        "image",
        file_part(b"hello, not a picture".to_vec(), "a.png"),
    );
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "image");
    assert_eq!(body["error"]["code"], "invalid_image_format");

    let mut truncated = png(64, 64, RED, false);
    truncated.truncate(truncated.len() - 20);
    let f = form(IMG2IMG, "cut").part("image[]", file_part(truncated, "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "image[]");
    assert_eq!(body["error"]["code"], "invalid_image");
}

#[tokio::test]
async fn the_image_kind_comes_from_its_bytes_not_its_label() {
    let h = start().await;
    // Open WebUI labels JPEG data `*.png`; raw bytes from the Python SDK arrive untyped.
    let f = form(IMG2IMG, "jpeg")
        .text("size", "64x64")
        .part("image", file_part(jpeg(48, 48, [10, 200, 10]), "upload"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    assert!(loader_inputs(&h.graphs()[0])[0].ends_with(".jpeg"));
}

#[tokio::test]
async fn images_over_the_size_limit_get_413() {
    let h = start_with(|c| c.max_image_bytes = 2000).await;
    let big: Vec<u8> = (0..200 * 200)
        .flat_map(|i: u32| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    let img = image::RgbaImage::from_raw(200, 200, big).unwrap();
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    assert!(bytes.len() > 2000);
    let f = form(IMG2IMG, "big").part("image", file_part(bytes.clone(), "big.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'image'")
    );

    let (status, body) = h
        .post(
            "/v1/images/edits",
            json!({"model": IMG2IMG, "prompt": "big", "image": b64(&bytes)}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(h.graphs().is_empty());
}

#[tokio::test]
async fn a_mask_rides_in_the_image_alpha_through_upload_mask() {
    let h = start().await;
    let f = form(INPAINT, "a window")
        .text("size", "64x64")
        .part("image", file_part(png(64, 64, RED, false), "wall.png"))
        .part(
            "mask",
            file_part(mask_png(64, 64, (0, 0, 32, 64)), "mask.png"),
        );
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let loaded = loader_inputs(&h.graphs()[0]);
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].ends_with("-0-masked.png"), "{loaded:?}");
    assert_eq!(
        h.sim.sim.uploads().len(),
        2,
        "the image and its masked copy"
    );

    // Only the transparent half of the mask was repainted.
    let out = decode_b64(&body["data"][0]);
    let [r, g, b] = pixel(&out, 56, 32);
    assert!(r > 200 && g < 40 && b < 40, "outside the mask: {r},{g},{b}");
    let changed = (0..32)
        .flat_map(|x| (0..64).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let [r, g, b] = pixel(&out, x, y);
            r.abs_diff(RED[0]) > 30 || g.abs_diff(RED[1]) > 30 || b.abs_diff(RED[2]) > 30
        })
        .count();
    assert!(
        changed > 100,
        "inside the mask only {changed} pixels changed"
    );
}

#[tokio::test]
async fn an_inpaint_edit_without_mask_uses_the_image_transparency() {
    let h = start().await;
    let f =
        form(INPAINT, "fill").part("image", file_part(png(64, 64, [0, 0, 0, 0], true), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");

    let h = start().await;
    let f = form(INPAINT, "fill").part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "mask");
}

#[tokio::test]
async fn bad_masks_are_refused() {
    let h = start().await;
    let image = || file_part(png(64, 64, RED, false), "a.png");
    let cases = [
        (INPAINT, mask_png(32, 32, (0, 0, 8, 8)), "same size"),
        (INPAINT, png(64, 64, RED, false), "alpha"),
        (IMG2IMG, mask_png(64, 64, (0, 0, 8, 8)), "inpaint"),
    ];
    for (model, mask, words) in cases {
        let f = form(model, "m")
            .part("image", image())
            .part("mask", file_part(mask, "mask.png"));
        let (status, body) = h.post_form("/v1/images/edits", f).await;
        assert_refused(&h, status, &body, 400, "mask");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    }
}

#[tokio::test]
async fn strength_and_other_fields_are_checked() {
    let h = start().await;
    let image = || file_part(png(16, 16, RED, false), "a.png");
    for (field, value, param) in [
        ("strength", "1.5", "strength"),
        ("strength", "-0.1", "strength"),
        ("strength", "lots", "strength"),
        ("n", "0", "n"),
        ("n", "two", "n"),
        ("size", "100x100", "size"),
        ("input_fidelity", "max", "input_fidelity"),
        ("output_format", "gif", "output_format"),
    ] {
        let f = form(IMG2IMG, "x").text(field, value).part("image", image());
        let (status, body) = h.post_form("/v1/images/edits", f).await;
        assert_refused(&h, status, &body, 400, param);
    }
    let f = Form::new().text("model", IMG2IMG).part("image", image());
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "prompt");
}

#[tokio::test]
async fn models_are_kept_to_their_kind() {
    let h = start().await;
    let f = form(MODEL, "x").part("image", file_part(png(16, 16, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 400, "model");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text only")
    );

    let (status, body) = h.generate(json!({"prompt": "x", "model": IMG2IMG})).await;
    assert_refused(&h, status, &body, 400, "model");
    let (status, body) = h
        .generate(json!({"prompt": "x", "model": MODEL, "strength": 0.5}))
        .await;
    assert_refused(&h, status, &body, 400, "strength");

    let f = form("no-such-model", "x").part("image", file_part(png(16, 16, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_refused(&h, status, &body, 404, "model");

    let (_, models) = h.get("/v1/models").await;
    let kind_of = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(kind_of(IMG2IMG)["kind"], "img2img");
    assert_eq!(kind_of(IMG2IMG)["max_images"], 1);
    assert_eq!(kind_of(BLEND)["max_images"], 2);
    assert_eq!(kind_of(INPAINT)["kind"], "inpaint");
    assert!(kind_of(MODEL).get("max_images").is_none());
}

#[tokio::test]
async fn size_auto_keeps_the_input_shape() {
    let h = start().await;
    let f = form("sdxl-img2img", "wide")
        .text("size", "auto")
        .part("image", file_part(png(320, 180, RED, false), "wide.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let out = decode_b64(&body["data"][0]);
    let (w, hgt) = dimensions(&out);
    assert!(w > hgt, "a wide input stays wide: {w}x{hgt}");
    assert_eq!(body["size"], format!("{w}x{hgt}"));
}

#[tokio::test]
async fn checkpoint_workflows_get_denoise_and_the_default_edit_model() {
    let h = start().await;
    let f = Form::new()
        .text("prompt", "oil painting")
        .text("strength", "0.45")
        .text("size", "512x512")
        .part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let graph = &h.graphs()[0];
    assert_eq!(input_of(graph, "KSampler", "denoise"), json!(0.45));
    assert!(input_of(graph, "CheckpointLoaderSimple", "ckpt_name").is_string());

    // Without strength the model's default applies; a mask picks an inpaint model.
    let f = Form::new()
        .text("prompt", "a door")
        .text("size", "512x512")
        .part("image", file_part(png(64, 64, RED, false), "a.png"))
        .part("mask", file_part(mask_png(64, 64, (0, 0, 8, 8)), "m.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let graph = &h.graphs()[1];
    assert_eq!(input_of(graph, "KSampler", "denoise"), json!(1.0));
    assert!(!input_of(graph, "VAEEncodeForInpaint", "mask").is_null());
}

#[tokio::test]
async fn json_edits_take_base64_data_urls_and_image_refs() {
    let h = start().await;
    let input = png(32, 32, RED, false);
    let bodies = [
        json!({"model": IMG2IMG, "prompt": "p", "image": b64(&input), "strength": 0.5, "size": "64x64"}),
        json!({"model": IMG2IMG, "prompt": "p", "image": format!("data:image/png;base64,{}", b64(&input))}),
        json!({"model": IMG2IMG, "prompt": "p", "images": [{"image_url": format!("data:image/png;base64,{}", b64(&input))}]}),
        json!({"model": INPAINT, "prompt": "p", "images": [{"image_url": format!("data:image/png;base64,{}", b64(&input))}],
               "mask": {"image_url": format!("data:image/png;base64,{}", b64(&mask_png(32, 32, (0, 0, 4, 4))))}}),
    ];
    for body in bodies {
        let (status, reply) = h.post("/v1/images/edits", body.clone()).await;
        assert_eq!(status, 200, "{body}: {reply}");
    }
    let graphs = h.graphs();
    assert_eq!(
        input_of(&graphs[0], "ImageAddNoise", "strength"),
        json!(0.5)
    );
}

#[tokio::test]
async fn json_edits_never_fetch_remote_urls() {
    let h = start().await;
    for (image, param) in [
        (
            json!({"images": [{"image_url": "http://127.0.0.1:9/cat.png"}]}),
            "images[0]",
        ),
        (json!({"images": [{"file_id": "file-abc"}]}), "images[0]"),
        (json!({"image": "%%% not base64"}), "image"),
        (json!({"image": "data:image/png,rawtext"}), "image"),
    ] {
        let mut body = json!({"model": IMG2IMG, "prompt": "p"});
        body.as_object_mut()
            .unwrap()
            .extend(image.as_object().unwrap().clone());
        let (status, reply) = h.post("/v1/images/edits", body).await;
        assert_refused(&h, status, &reply, 400, param);
    }
}

#[tokio::test]
async fn an_image_this_bridge_served_can_be_edited_by_its_url() {
    let h = start().await;
    let (status, made) = h
        .generate(
            json!({"prompt": "a boat", "model": MODEL, "size": "64x64", "response_format": "url"}),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let url = made["data"][0]["url"].as_str().unwrap();
    let (status, body) = h
        .post(
            "/v1/images/edits",
            json!({"model": IMG2IMG, "prompt": "at night", "images": [{"image_url": url}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_original_img2img_form_works() {
    let h = start().await;
    let f = Form::new()
        .text("prompt", "sketch")
        .text("model", IMG2IMG)
        .text("strength", "0.6")
        .text("size", "64x64")
        .text("n", "1")
        .part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/img2img", f).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (64, 64));
}

#[tokio::test]
async fn variations_run_with_the_model_prompt_and_strength() {
    let h = start().await;
    let f = Form::new()
        .text("model", IMG2IMG)
        .text("n", "2")
        .text("size", "64x64")
        .text("response_format", "url")
        .part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/variations", f).await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_ne!(data[0]["seed"], data[1]["seed"]);
    assert!(data[0]["url"].is_string());
    assert!(data[0].get("revised_prompt").is_none(), "{body}");

    let (status, body) = h
        .post("/v1/images/variations", json!({"image": "abc"}))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn concurrent_edits_never_share_upload_names() {
    let h = start().await;
    let send = || {
        let f = form(IMG2IMG, "same")
            .text("size", "64x64")
            .part("image", file_part(png(16, 16, RED, false), "same.png"));
        h.post_form("/v1/images/edits", f)
    };
    let (a, b) = tokio::join!(send(), send());
    assert_eq!((a.0, b.0), (200, 200));
    let graphs = h.graphs();
    assert_ne!(loader_inputs(&graphs[0]), loader_inputs(&graphs[1]));
}

#[tokio::test]
async fn edits_must_be_forms_or_json() {
    let h = start().await;
    let res = h
        .http
        .post(format!("{}/v1/images/edits", h.url))
        .header("content-type", "text/plain")
        .body("prompt=x")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_content_type");
}

#[tokio::test]
async fn uploads_are_deleted_after_the_job_where_comfyui_can() {
    let sim_config = sim::SimConfig {
        assets: true,
        ..Default::default()
    };
    let h = start_full(sim_config, |_| {}).await;
    let f = form(INPAINT, "tidy")
        .text("size", "64x64")
        .part("image", file_part(png(64, 64, RED, false), "a.png"))
        .part("mask", file_part(mask_png(64, 64, (0, 0, 8, 8)), "m.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(|| h.sim.sim.uploads().is_empty()).await,
        "uploads left behind: {:?}",
        h.sim.sim.uploads()
    );

    // A failed job cleans up too.
    h.sim.sim.fail_next_execution(Some("ImageAddNoise"));
    let f = form(IMG2IMG, "fails")
        .text("size", "64x64")
        .part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 502, "{body}");
    assert!(eventually(|| h.sim.sim.uploads().is_empty()).await);
}

async fn eventually(check: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// A user's inpaint workflow whose mask comes from a LoadImageMask node: the mask is a file of
/// its own.
const MASK_FILE_WORKFLOW: &str = r#"{
  "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
  "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
        "width": 64, "height": 64, "crop": "disabled"}},
  "3": {"class_type": "ImageAddNoise", "inputs": {"image": ["2", 0], "seed": 1, "strength": 1.0}},
  "4": {"class_type": "LoadImageMask", "inputs": {"image": "example.png", "channel": "alpha"}},
  "5": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["2", 0], "source": ["3", 0],
        "x": 0, "y": 0, "resize_source": false, "mask": ["4", 0]}},
  "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "t"}},
  "7": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}}"}},
  "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}}
}"#;

#[tokio::test]
async fn a_mask_loader_gets_the_mask_as_its_own_file() {
    let dir = scratch_dir();
    std::fs::write(dir.join("maskfile.json"), MASK_FILE_WORKFLOW).unwrap();
    std::fs::write(
        dir.join("maskfile.toml"),
        "sizes = [\"64x64\"]\ndefault_size = \"64x64\"\n[bindings]\nstrength = \"3.strength\"\n",
    )
    .unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let (_, models) = h.get("/v1/models/maskfile").await;
    assert_eq!(models["kind"], "inpaint", "{models}");

    let f = form("maskfile", "m")
        .part("image", file_part(png(64, 64, RED, false), "a.png"))
        .part("mask", file_part(mask_png(64, 64, (0, 0, 32, 64)), "m.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let loaded = loader_inputs(&h.graphs()[0]);
    assert_eq!(loaded.len(), 2);
    assert!(
        loaded[0].ends_with("-0.png") && loaded[1].ends_with("-mask.png"),
        "{loaded:?}"
    );
    let out = decode_b64(&body["data"][0]);
    let [r, g, b] = pixel(&out, 56, 32);
    assert!(r > 200 && g < 40 && b < 40, "outside the mask: {r},{g},{b}");

    // Without a mask, the image's own alpha is the mask.
    let f =
        form("maskfile", "m").part("image", file_part(png(64, 64, [9, 9, 9, 0], true), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    let loaded = loader_inputs(&h.graphs()[1]);
    assert_eq!(loaded[0], loaded[1], "the image doubles as the mask");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_workflow_without_a_size_input_gets_a_resized_image() {
    let dir = scratch_dir();
    std::fs::write(
        dir.join("plain.json"),
        r#"{"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
            "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": 0.5}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
            "4": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}}"}},
            "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("plain.toml"),
        "sizes = [\"32x32\", \"64x64\"]\ndefault_size = \"64x64\"\n",
    )
    .unwrap();
    let h = start_with(|c| c.workflows_dir = dir.clone()).await;
    let f = form("plain", "small")
        .text("size", "32x32")
        .part("image", file_part(jpeg(80, 60, [10, 10, 200]), "a.jpg"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(dimensions(&decode_b64(&body["data"][0])), (32, 32));
    // Resized inputs are sent as PNG.
    assert!(loader_inputs(&h.graphs()[0])[0].ends_with(".png"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_generation_fields_apply_to_edits_too() {
    let h = start().await;
    let f = form("sdxl-img2img", "harbour at dawn")
        .text("size", "512x512")
        .text("seed", "1234")
        .text("negative_prompt", "blurry")
        .text("steps", "7")
        .text("cfg", "4.5")
        .text("output_format", "webp")
        .text("background", "opaque")
        .text("input_fidelity", "high")
        .text("user", "someone")
        .part("image", file_part(png(64, 64, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output_format"], "webp");
    assert_eq!(body["data"][0]["seed"], 1234);
    let out = decode_b64(&body["data"][0]);
    assert!(out.starts_with(b"RIFF") && &out[8..12] == b"WEBP");
    assert_eq!(dimensions(&out), (512, 512));
    let graph = &h.graphs()[0];
    assert_eq!(input_of(graph, "KSampler", "seed"), json!(1234));
    assert_eq!(input_of(graph, "KSampler", "steps"), json!(7));
    assert_eq!(input_of(graph, "KSampler", "cfg"), json!(4.5));
    assert!(graph.to_string().contains("blurry"));

    let f = form(IMG2IMG, "t")
        .text("background", "transparent")
        .part("image", file_part(png(16, 16, RED, false), "a.png"));
    let (status, body) = h.post_form("/v1/images/edits", f).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "background");
}
