//! The shipped image-input workflows (`workflows/*.json`) run through the simulator's HTTP API,
//! filled in the way the bridge fills them: uploaded names into the LoadImage nodes (in id
//! order, the last one repeating), the size into every ImageScale, the prompt into its
//! placeholder, and seed and strength into their inputs.

mod common;

use common::{client, encode_png, output_image, run_to_history, start, upload_png};
use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{Value, json};
use sim::SimConfig;

struct Wf {
    name: &'static str,
    output: &'static str,
    seed: (&'static str, &'static str),
    strength: (&'static str, &'static str),
}

const IMG2IMG: Wf = Wf {
    name: "weightfree-img2img",
    output: "4",
    seed: ("3", "seed"),
    strength: ("3", "strength"),
};
const INPAINT: Wf = Wf {
    name: "weightfree-inpaint",
    output: "5",
    seed: ("3", "seed"),
    strength: ("3", "strength"),
};
const BLEND: Wf = Wf {
    name: "weightfree-blend",
    output: "7",
    seed: ("6", "seed"),
    strength: ("5", "blend_factor"),
};
const SDXL_IMG2IMG: Wf = Wf {
    name: "sdxl-img2img",
    output: "9",
    seed: ("3", "seed"),
    strength: ("3", "denoise"),
};
const SDXL_INPAINT: Wf = Wf {
    name: "sdxl-inpaint",
    output: "9",
    seed: ("3", "seed"),
    strength: ("3", "denoise"),
};

fn workflow(name: &str) -> Value {
    let path = format!("{}/../workflows/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fill(wf: &Wf, images: &[&str], (w, h): (u32, u32), strength: f64, seed: u64) -> Value {
    let mut g = workflow(wf.name);
    let mut ids: Vec<String> = g.as_object().unwrap().keys().cloned().collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap());
    let mut slot = 0;
    for id in &ids {
        let node = &mut g[id.as_str()];
        match node["class_type"].as_str().unwrap() {
            "LoadImage" => {
                node["inputs"]["image"] = json!(images[slot.min(images.len() - 1)]);
                slot += 1;
            }
            "ImageScale" => {
                node["inputs"]["width"] = json!(w);
                node["inputs"]["height"] = json!(h);
            }
            _ if node["inputs"]["value"] == "{{prompt}}" => {
                node["inputs"]["value"] = json!("a test picture");
            }
            _ => {}
        }
    }
    g[wf.seed.0]["inputs"][wf.seed.1] = json!(seed);
    g[wf.strength.0]["inputs"][wf.strength.1] = json!(strength);
    g
}

async fn run(base: &str, wf: &Wf, images: &[&str], size: (u32, u32), strength: f64) -> RgbImage {
    let http = client();
    let entry = run_to_history(&http, base, &fill(wf, images, size, strength, 7)).await;
    let out = output_image(&http, base, &entry, wf.output).await;
    assert_eq!(out.dimensions(), size, "{}: output size", wf.name);
    out
}

fn flat(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    encode_png(DynamicImage::ImageRgb8(RgbImage::from_pixel(
        w,
        h,
        Rgb(rgb),
    )))
}

/// Opaque `rgb`, except a fully transparent left half: the area to repaint.
fn left_half_transparent(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, _| {
        let a = if x < w / 2 { 0 } else { 255 };
        Rgba([rgb[0], rgb[1], rgb[2], a])
    });
    encode_png(DynamicImage::ImageRgba8(img))
}

fn mean(img: &RgbImage, ch: usize) -> f64 {
    img.pixels().map(|p| f64::from(p.0[ch])).sum::<f64>() / f64::from(img.width() * img.height())
}

fn quiet() -> SimConfig {
    SimConfig {
        previews: false,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn weightfree_img2img_scales_and_adds_noise_by_strength() {
    let sim = start(quiet()).await;
    let http = client();
    let up = upload_png(&http, &sim.url, flat(48, 32, [200, 30, 30]), "red.png").await;
    let name = up["name"].as_str().unwrap();

    // Resampling a flat picture may move a channel by one step of rounding, no more.
    let near = |p: &Rgb<u8>, rgb: [u8; 3]| {
        p.0.iter()
            .zip(rgb)
            .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= 1)
    };
    let calm = run(&sim.url, &IMG2IMG, &[name], (64, 64), 0.0).await;
    assert!(
        calm.pixels().all(|p| near(p, [200, 30, 30])),
        "strength 0 adds no noise to a flat picture"
    );

    let noisy = run(&sim.url, &IMG2IMG, &[name], (256, 256), 1.0).await;
    let changed = noisy.pixels().filter(|p| !near(p, [200, 30, 30])).count();
    assert!(
        changed > 256 * 256 * 9 / 10,
        "strength 1 is noisy ({changed})"
    );
    let mild = run(&sim.url, &IMG2IMG, &[name], (256, 256), 0.1).await;
    assert!(
        (mean(&mild, 0) - 200.0).abs() < 5.0,
        "low strength stays red"
    );
}

#[tokio::test]
async fn weightfree_inpaint_changes_only_the_transparent_area() {
    let sim = start(quiet()).await;
    let http = client();
    let png = left_half_transparent(64, 64, [40, 120, 200]);
    let name = upload_png(&http, &sim.url, png, "rgba.png").await["name"]
        .as_str()
        .unwrap()
        .to_string();

    // Same size: the mask lines up with the pixels exactly.
    let keep = run(&sim.url, &INPAINT, &[&name], (64, 64), 0.0).await;
    let paint = run(&sim.url, &INPAINT, &[&name], (64, 64), 1.0).await;
    for (x, y, p) in paint.enumerate_pixels() {
        if x >= 32 {
            assert_eq!(p, keep.get_pixel(x, y), "opaque half kept at {x},{y}");
        }
    }
    let changed = paint
        .enumerate_pixels()
        .filter(|(x, y, p)| *x < 32 && *p != keep.get_pixel(*x, *y))
        .count();
    assert!(
        changed > 32 * 64 * 9 / 10,
        "transparent half repainted ({changed})"
    );
    assert_ne!(keep, paint, "strength 0 and 1 differ");

    // Scaled up: ComfyUI resizes the mask bilinearly, so only the seam is mixed.
    let keep = run(&sim.url, &INPAINT, &[&name], (256, 256), 0.0).await;
    let paint = run(&sim.url, &INPAINT, &[&name], (256, 256), 1.0).await;
    for (x, y, p) in paint.enumerate_pixels() {
        if x >= 132 {
            assert_eq!(p, keep.get_pixel(x, y), "opaque side kept at {x},{y}");
        }
    }
    let inside = paint
        .enumerate_pixels()
        .filter(|(x, y, p)| *x < 124 && *p != keep.get_pixel(*x, *y))
        .count();
    assert!(inside > 124 * 256 * 9 / 10, "{inside}");
    let kept = keep.get_pixel(200, 10).0;
    assert!(
        kept.iter()
            .zip([40, 120, 200])
            .all(|(a, b)| (i32::from(*a) - b).abs() <= 1),
        "{kept:?}"
    );
}

#[tokio::test]
async fn weightfree_blend_mixes_two_inputs_by_strength() {
    let sim = start(quiet()).await;
    let http = client();
    let red = upload_png(&http, &sim.url, flat(32, 32, [200, 30, 30]), "a.png").await;
    let blue = upload_png(&http, &sim.url, flat(48, 24, [30, 30, 200]), "b.png").await;
    let (red, blue) = (
        red["name"].as_str().unwrap(),
        blue["name"].as_str().unwrap(),
    );

    let first = run(&sim.url, &BLEND, &[red, blue], (64, 64), 0.0).await;
    assert!((mean(&first, 0) - 200.0).abs() < 6.0 && (mean(&first, 2) - 30.0).abs() < 6.0);
    let second = run(&sim.url, &BLEND, &[red, blue], (64, 64), 1.0).await;
    assert!((mean(&second, 0) - 30.0).abs() < 6.0 && (mean(&second, 2) - 200.0).abs() < 6.0);
    let half = run(&sim.url, &BLEND, &[red, blue], (256, 64), 0.5).await;
    assert!((mean(&half, 0) - 115.0).abs() < 6.0 && (mean(&half, 2) - 115.0).abs() < 6.0);

    // One image fills both slots.
    let alone = run(&sim.url, &BLEND, &[blue], (64, 64), 0.5).await;
    assert!((mean(&alone, 2) - 200.0).abs() < 6.0);
}

#[tokio::test]
async fn sdxl_inpaint_keeps_the_opaque_area() {
    let sim = start(quiet()).await;
    let http = client();
    let png = left_half_transparent(64, 64, [40, 120, 200]);
    let name = upload_png(&http, &sim.url, png, "rgba.png").await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&sim.url, &SDXL_INPAINT, &[&name], (128, 128), 1.0).await;
    // VAEEncodeForInpaint grows the mask by 6 pixels (3 to the right of the seam at 64).
    let mut repainted = 0;
    for (x, _, p) in out.enumerate_pixels() {
        if x >= 72 {
            assert!(
                p.0.iter()
                    .zip([40, 120, 200])
                    .all(|(a, b)| (i32::from(*a) - b).abs() <= 1),
                "opaque side kept: {p:?} at x {x}"
            );
        } else if x < 60 && p.0 != [40, 120, 200] {
            repainted += 1;
        }
    }
    assert!(repainted > 60 * 128 * 9 / 10, "{repainted}");
}

#[tokio::test]
async fn sdxl_img2img_moves_away_from_the_input_by_strength() {
    let sim = start(quiet()).await;
    let http = client();
    let up = upload_png(&http, &sim.url, flat(40, 30, [200, 30, 30]), "red.png").await;
    let name = up["name"].as_str().unwrap();
    let kept = run(&sim.url, &SDXL_IMG2IMG, &[name], (96, 64), 0.0).await;
    assert!((mean(&kept, 0) - 200.0).abs() < 2.0 && (mean(&kept, 2) - 30.0).abs() < 2.0);
    let moved = run(&sim.url, &SDXL_IMG2IMG, &[name], (96, 64), 1.0).await;
    assert_ne!(kept, moved);
}
