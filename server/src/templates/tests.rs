use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

const WORKFLOWS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows");

/// Builds a template from literals as if read from `workflows/t.json` (+ `workflows/t.toml`).
fn build_str(graph: &Value, toml: Option<&str>) -> Result<Template, Vec<TemplateError>> {
    let json_path = Path::new("workflows/t.json");
    let toml_path = Path::new("workflows/t.toml");
    let sc = match toml {
        Some(text) => {
            Some(sidecar::parse(text).map_err(|m| vec![TemplateError::file(toml_path, m)])?)
        }
        None => None,
    };
    assemble::build(
        json_path,
        &graph.to_string(),
        "t",
        sc.as_ref().map(|s| (toml_path, s)),
    )
}

fn ok(graph: &Value, toml: Option<&str>) -> Template {
    match build_str(graph, toml) {
        Ok(t) => t,
        Err(e) => panic!("expected the template to load, got {e:#?}"),
    }
}

fn errs(graph: &Value, toml: Option<&str>) -> Vec<String> {
    match build_str(graph, toml) {
        Ok(t) => panic!("expected a load error, got template {}", t.id),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// `param` → ["node.input", …], for compact assertions.
fn at(t: &Template, param: Param) -> Vec<String> {
    t.targets(param)
        .iter()
        .map(|x| format!("{}.{}", x.node, x.input))
        .collect()
}

fn input<'a>(v: &'a Value, node: &str, name: &str) -> &'a Value {
    &v[node]["inputs"][name]
}

fn shipped() -> TemplateSet {
    match TemplateSet::load(Path::new(WORKFLOWS), &[]) {
        Ok(s) => s,
        Err(e) => panic!("shipped workflows fail to load: {e:#?}"),
    }
}

fn shipped_one(id: &str) -> Arc<Template> {
    match shipped().get(id) {
        Some(t) => t.clone(),
        None => panic!("no shipped template {id}"),
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tpl-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sdxl_graph() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 25, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos", "clip": ["4", 1]},
              "_meta": {"title": "Positive Prompt"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg", "clip": ["4", 1]},
              "_meta": {"title": "Negative Prompt"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}
    })
}

// The weight-free graphs from /work/shared/comfyui-traces/graphs, as recorded on ComfyUI 0.3.64.
fn trace_txt2img() -> Value {
    json!({
      "1": {"class_type": "EmptyImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": 3355545},
            "_meta": {"title": "Empty Image (size)"}},
      "2": {"class_type": "ImageAddNoise",
            "inputs": {"image": ["1", 0], "seed": 42, "strength": 0.5},
            "_meta": {"title": "Add Noise (seed)"}},
      "3": {"class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "realcomfy/txt2img"},
            "_meta": {"title": "Save Image"}}
    })
}

fn trace_img2img() -> Value {
    json!({
      "1": {"class_type": "LoadImage",
            "inputs": {"image": "realcomfy_input.png"},
            "_meta": {"title": "Load Image (input)"}},
      "2": {"class_type": "ImageScale",
            "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "width": 256, "height": 256, "crop": "center"},
            "_meta": {"title": "Scale (size)"}},
      "3": {"class_type": "ImageInvert",
            "inputs": {"image": ["2", 0]},
            "_meta": {"title": "Invert"}},
      "4": {"class_type": "ImageBlend",
            "inputs": {"image1": ["2", 0], "image2": ["3", 0], "blend_factor": 0.35, "blend_mode": "normal"},
            "_meta": {"title": "Blend (strength)"}},
      "5": {"class_type": "SaveImage",
            "inputs": {"images": ["4", 0], "filename_prefix": "realcomfy/img2img"},
            "_meta": {"title": "Save Image"}}
    })
}

/// Adds the prompt branch that weight-free graphs need to load.
fn with_prompt_branch(mut g: Value) -> Value {
    g["90"] = json!({"class_type": "PrimitiveStringMultiline", "inputs": {"value": "{{prompt}}"}});
    g["91"] = json!({"class_type": "PreviewAny", "inputs": {"source": ["90", 0]}});
    g
}

// ---------------------------------------------------------------- shipped workflows

#[test]
fn shipped_workflows_load() {
    let set = shipped();
    let kinds: Vec<(&str, ModelKind)> = set.iter().map(|t| (t.id.as_str(), t.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("sdxl", ModelKind::Txt2Img),
            ("sdxl-img2img", ModelKind::Img2Img),
            ("sdxl-inpaint", ModelKind::Inpaint),
            ("weightfree-blend", ModelKind::Img2Img),
            ("weightfree-img2img", ModelKind::Img2Img),
            ("weightfree-inpaint", ModelKind::Inpaint),
            ("weightfree-txt2img", ModelKind::Txt2Img),
            ("z-image-turbo", ModelKind::Txt2Img),
        ]
    );
    assert_eq!(set.len(), 8);
    assert!(!set.is_empty());
    for t in set.iter() {
        assert!(t.description.is_some(), "{} has no description", t.id);
        assert!(t.allows_size(t.default_size), "{}", t.id);
    }
}

/// What one shipped image-input model must look like after detection.
struct ShippedEdit {
    id: &'static str,
    kind: ModelKind,
    images: &'static [&'static str],
    mask_in_alpha: bool,
    width: &'static [&'static str],
    height: &'static [&'static str],
    strength: &'static str,
    default_strength: f64,
    seed: &'static str,
    prompt: &'static str,
    sizes: Option<&'static [&'static str]>,
    default_size: &'static str,
}

const WEIGHTFREE_SIZES: &[&str] = &["64x64", "256x256", "512x512", "1024x1024"];

const SHIPPED_EDITS: [ShippedEdit; 5] = [
    ShippedEdit {
        id: "sdxl-img2img",
        kind: ModelKind::Img2Img,
        images: &["10.image"],
        mask_in_alpha: false,
        width: &["11.width"],
        height: &["11.height"],
        strength: "3.denoise",
        default_strength: 0.6,
        seed: "3.seed",
        prompt: "6.text",
        sizes: None,
        default_size: "1024x1024",
    },
    ShippedEdit {
        id: "sdxl-inpaint",
        kind: ModelKind::Inpaint,
        images: &["10.image"],
        mask_in_alpha: true,
        width: &["11.width"],
        height: &["11.height"],
        strength: "3.denoise",
        default_strength: 1.0,
        seed: "3.seed",
        prompt: "6.text",
        sizes: None,
        default_size: "1024x1024",
    },
    ShippedEdit {
        id: "weightfree-img2img",
        kind: ModelKind::Img2Img,
        images: &["1.image"],
        mask_in_alpha: false,
        width: &["2.width"],
        height: &["2.height"],
        strength: "3.strength",
        default_strength: 0.6,
        seed: "3.seed",
        prompt: "5.value",
        sizes: Some(WEIGHTFREE_SIZES),
        default_size: "512x512",
    },
    ShippedEdit {
        id: "weightfree-inpaint",
        kind: ModelKind::Inpaint,
        images: &["1.image"],
        mask_in_alpha: true,
        width: &["2.width"],
        height: &["2.height"],
        strength: "3.strength",
        default_strength: 1.0,
        seed: "3.seed",
        prompt: "6.value",
        sizes: Some(WEIGHTFREE_SIZES),
        default_size: "512x512",
    },
    ShippedEdit {
        id: "weightfree-blend",
        kind: ModelKind::Img2Img,
        images: &["1.image", "3.image"],
        mask_in_alpha: false,
        width: &["2.width", "4.width"],
        height: &["2.height", "4.height"],
        strength: "5.blend_factor",
        default_strength: 0.5,
        seed: "6.seed",
        prompt: "8.value",
        sizes: Some(WEIGHTFREE_SIZES),
        default_size: "512x512",
    },
];

#[test]
fn shipped_edit_models_detection() {
    for want in &SHIPPED_EDITS {
        let t = shipped_one(want.id);
        let id = want.id;
        assert_eq!(t.kind, want.kind, "{id}");
        assert_eq!(t.image_slots(), want.images.len(), "{id}");
        assert_eq!(at(&t, Param::Image), want.images, "{id}");
        assert_eq!(t.mask_in_image_alpha(), want.mask_in_alpha, "{id}");
        assert_eq!(t.supports(Param::Mask), want.mask_in_alpha, "{id}");
        assert!(
            at(&t, Param::Mask).is_empty(),
            "{id}: no separate mask file"
        );
        assert_eq!(at(&t, Param::Width), want.width, "{id}");
        assert_eq!(at(&t, Param::Height), want.height, "{id}");
        assert_eq!(at(&t, Param::Strength), [want.strength], "{id}");
        assert_eq!(t.defaults.strength, want.default_strength, "{id}");
        assert_eq!(at(&t, Param::Seed), [want.seed], "{id}");
        assert_eq!(at(&t, Param::Prompt), [want.prompt], "{id}");
        assert!(
            !t.supports(Param::BatchSize),
            "{id}: ImageScale has no batch"
        );
        match want.sizes {
            Some(sizes) => assert_eq!(
                t.sizes,
                sizes
                    .iter()
                    .map(|s| s.parse::<Size>().expect("size"))
                    .collect::<Vec<_>>(),
                "{id}"
            ),
            None => assert_eq!(t.sizes, DEFAULT_SIZES, "{id}"),
        }
        assert_eq!(t.default_size.to_string(), want.default_size, "{id}");

        // Every size and strength target receives the request's values.
        let names: Vec<String> = (0..want.images.len())
            .map(|i| format!("in{i}.png"))
            .collect();
        let out = t.render(&RenderParams {
            prompt: "p".into(),
            seed: 3,
            size: Size::new(256, 64),
            images: names.clone(),
            strength: Some(0.25),
            ..RenderParams::new(t.default_size)
        });
        for (target, name) in want.images.iter().zip(&names) {
            let (node, input_name) = target.split_once('.').expect("node.input");
            assert_eq!(input(&out, node, input_name), name.as_str(), "{id}");
        }
        for (targets, v) in [(want.width, 256), (want.height, 64)] {
            for target in targets {
                let (node, input_name) = target.split_once('.').expect("node.input");
                assert_eq!(input(&out, node, input_name), v, "{id} {target}");
            }
        }
        let (node, input_name) = want.strength.split_once('.').expect("node.input");
        assert_eq!(input(&out, node, input_name), 0.25, "{id}");
        let out = t.render(&RenderParams::new(t.default_size));
        assert_eq!(
            input(&out, node, input_name),
            want.default_strength,
            "{id}: default strength"
        );
    }
}

#[test]
fn shipped_edit_models_scale_without_cropping() {
    // Cropping would shift the pixels against the alpha mask, which ComfyUI only resizes.
    for want in &SHIPPED_EDITS {
        let t = shipped_one(want.id);
        for target in want.width {
            let node = target.split_once('.').map_or("", |(n, _)| n);
            let inputs = &t.graph()[node]["inputs"];
            assert_eq!(inputs["crop"], "disabled", "{} {node}", want.id);
            assert_eq!(inputs["upscale_method"], "lanczos", "{} {node}", want.id);
        }
    }
    let t = shipped_one("sdxl-inpaint");
    assert_eq!(t.graph()["12"]["class_type"], "VAEEncodeForInpaint");
    assert_eq!(t.graph()["12"]["inputs"]["mask"], json!(["10", 1]));
    assert_eq!(t.graph()["12"]["inputs"]["grow_mask_by"], 6);
    let t = shipped_one("sdxl-img2img");
    assert_eq!(
        t.graph()["4"],
        shipped_one("sdxl").graph()["4"],
        "same checkpoint"
    );
}

#[test]
fn z_image_turbo_detection() {
    let t = shipped_one("z-image-turbo");
    assert_eq!(t.output_nodes(), ["9"]);
    assert_eq!(at(&t, Param::Prompt), ["45.text"]);
    // Negative is ConditioningZeroOut of the positive: there is no negative text.
    assert!(!t.supports(Param::NegativePrompt));
    assert_eq!(at(&t, Param::Seed), ["44.seed"]);
    assert_eq!(at(&t, Param::Steps), ["44.steps"]);
    assert_eq!(at(&t, Param::Cfg), ["44.cfg"]);
    assert_eq!(at(&t, Param::Sampler), ["44.sampler_name"]);
    assert_eq!(at(&t, Param::Scheduler), ["44.scheduler"]);
    assert_eq!(at(&t, Param::Width), ["41.width"]);
    assert_eq!(at(&t, Param::Height), ["41.height"]);
    assert_eq!(at(&t, Param::BatchSize), ["41.batch_size"]);
    for p in [Param::Image, Param::Mask, Param::Strength] {
        assert!(!t.supports(p), "{p}");
    }
    assert_eq!(t.sizes, DEFAULT_SIZES);
    assert_eq!(t.default_size, Size::new(1024, 1024));
    assert_eq!(t.quality["hd"].steps, Some(12));
    let graph = detect::Graph::parse(&Value::Object(t.graph().clone())).expect("parses");
    let d = detect::detect(&graph, &Default::default());
    assert_eq!(d.sampler.as_deref(), Some("44"));
    assert!(d.negative_zeroed);
    let g = t.graph();
    assert_eq!(g["44"]["inputs"]["sampler_name"], "dpmpp_2m_sde");
    assert_eq!(g["39"]["inputs"]["type"], "lumina2");
}

#[test]
fn sdxl_detection() {
    let t = shipped_one("sdxl");
    assert_eq!(t.output_nodes(), ["9"]);
    assert_eq!(at(&t, Param::Prompt), ["6.text"]);
    assert_eq!(at(&t, Param::NegativePrompt), ["7.text"]);
    assert_eq!(at(&t, Param::Seed), ["3.seed"]);
    assert_eq!(at(&t, Param::Steps), ["3.steps"]);
    assert_eq!(at(&t, Param::Cfg), ["3.cfg"]);
    assert_eq!(at(&t, Param::Sampler), ["3.sampler_name"]);
    assert_eq!(at(&t, Param::Scheduler), ["3.scheduler"]);
    assert_eq!(at(&t, Param::Width), ["5.width"]);
    assert_eq!(at(&t, Param::Height), ["5.height"]);
    assert!(t.style.contains_key("vivid"));
}

#[test]
fn weightfree_detection() {
    let t = shipped_one("weightfree-txt2img");
    assert_eq!(t.output_nodes(), ["3"], "PreviewAny is not an image output");
    assert_eq!(at(&t, Param::Prompt), ["4.value"]);
    assert_eq!(at(&t, Param::Seed), ["2.seed"]);
    assert_eq!(at(&t, Param::Width), ["1.width"]);
    assert_eq!(at(&t, Param::Height), ["1.height"]);
    for p in [
        Param::NegativePrompt,
        Param::Steps,
        Param::Cfg,
        Param::Sampler,
        Param::Image,
    ] {
        assert!(!t.supports(p), "{p}");
    }
    assert_eq!(
        t.sizes,
        ["64x64", "256x256", "512x512", "1024x1024"].map(|s| s.parse::<Size>().unwrap())
    );
    assert_eq!(t.default_size, Size::new(512, 512));
    assert!(t.allows_size(Size::new(64, 64)));
    assert!(!t.allows_size(Size::new(768, 768)));

    let out = t.render(&RenderParams {
        prompt: "a red fox".into(),
        seed: 7,
        size: Size::new(64, 64),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "4", "value"), "a red fox");
    assert_eq!(input(&out, "2", "seed"), 7);
    assert_eq!(input(&out, "1", "width"), 64);
    assert_eq!(input(&out, "1", "height"), 64);
}

/// Every shipped node must exist in ComfyUI 0.3.64 with these inputs, combo values and ranges
/// (testdata/node_schemas.json is a subset of its /object_info). Model file names are exempt.
#[test]
fn shipped_workflows_match_node_schemas() {
    let schemas: Value =
        serde_json::from_str(include_str!("testdata/node_schemas.json")).expect("schemas parse");
    let exempt = [
        ("UNETLoader", "unet_name"),
        ("CLIPLoader", "clip_name"),
        ("VAELoader", "vae_name"),
        ("CheckpointLoaderSimple", "ckpt_name"),
        ("LoadImage", "image"),
    ];
    let mut graphs: Vec<(String, Value)> = vec![
        ("trace txt2img".into(), trace_txt2img()),
        ("trace img2img".into(), trace_img2img()),
    ];
    for t in shipped().iter() {
        graphs.push((t.id.clone(), Value::Object(t.graph().clone())));
    }
    let mut problems = Vec::new();
    for (name, g) in &graphs {
        let nodes = g.as_object().expect("object");
        for (id, node) in nodes {
            let class = node["class_type"].as_str().unwrap_or_default();
            let Some(schema) = schemas.get(class) else {
                problems.push(format!("{name}: node {id}: unknown class {class}"));
                continue;
            };
            let inputs = node["inputs"].as_object().expect("inputs");
            let required = schema["input"]["required"].as_object().expect("required");
            let optional = schema["input"].get("optional").and_then(Value::as_object);
            for key in required.keys() {
                if !inputs.contains_key(key) {
                    problems.push(format!("{name}: node {id} ({class}): missing input {key}"));
                }
            }
            for (key, v) in inputs {
                let Some(spec) = required
                    .get(key)
                    .or_else(|| optional.and_then(|o| o.get(key)))
                else {
                    problems.push(format!("{name}: node {id} ({class}): unknown input {key}"));
                    continue;
                };
                let at = format!("{name}: node {id} ({class}).{key}");
                if let Some((src, slot)) = detect::as_link(v) {
                    let src_class = nodes[src]["class_type"].as_str().unwrap_or_default();
                    let out_type = &schemas[src_class]["output"][slot as usize];
                    let ty = &spec[0];
                    if ty != "*" && out_type != ty {
                        problems.push(format!("{at}: links a {out_type} into a {ty}"));
                    }
                    continue;
                }
                if detect::placeholder_name(v).is_some() || exempt.contains(&(class, key.as_str()))
                {
                    continue;
                }
                let opts = spec.get(1).cloned().unwrap_or(Value::Null);
                match &spec[0] {
                    Value::Array(choices) if !choices.contains(v) => {
                        problems.push(format!("{at}: {v} is not one of the combo values"));
                    }
                    Value::String(ty) if ty == "INT" || ty == "FLOAT" => {
                        let n = v.as_f64();
                        let ok = n.is_some_and(|n| {
                            opts["min"].as_f64().is_none_or(|m| n >= m)
                                && opts["max"].as_f64().is_none_or(|m| n <= m)
                        }) && (ty == "FLOAT" || v.is_i64() || v.is_u64());
                        if !ok {
                            problems.push(format!("{at}: {v} is not a valid {ty} {opts}"));
                        }
                    }
                    Value::String(ty) if ty == "STRING" && !v.is_string() => {
                        problems.push(format!("{at}: {v} is not a string"));
                    }
                    Value::String(ty) if ty == "BOOLEAN" && !v.is_boolean() => {
                        problems.push(format!("{at}: {v} is not a boolean"));
                    }
                    // The newer combo encoding: ["COMBO", {"options": [...]}].
                    Value::String(ty)
                        if ty == "COMBO"
                            && !opts["options"].as_array().is_some_and(|o| o.contains(v)) =>
                    {
                        problems.push(format!("{at}: {v} is not one of the combo values"));
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---------------------------------------------------------------- rendering

#[test]
fn render_puts_values_in_place_and_leaves_template_alone() {
    let t = shipped_one("z-image-turbo");
    let before = t.graph().clone();
    let out = t.render(&RenderParams {
        prompt: "a cat".into(),
        negative_prompt: Some("ignored: no negative text".into()),
        seed: 12345,
        size: Size::new(768, 1344),
        steps: Some(7),
        cfg: Some(1.5),
        sampler: Some("euler".into()),
        scheduler: Some("simple".into()),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "45", "text"), "a cat");
    assert_eq!(input(&out, "44", "seed"), 12345);
    assert_eq!(input(&out, "44", "steps"), 7);
    assert_eq!(input(&out, "44", "cfg"), 1.5);
    assert_eq!(input(&out, "44", "sampler_name"), "euler");
    assert_eq!(input(&out, "44", "scheduler"), "simple");
    assert_eq!(input(&out, "44", "denoise"), 1, "txt2img keeps denoise 1");
    assert_eq!(input(&out, "41", "width"), 768);
    assert_eq!(input(&out, "41", "height"), 1344);
    assert_eq!(input(&out, "41", "batch_size"), 1);
    assert_eq!(
        input(&out, "44", "positive"),
        &json!(["45", 0]),
        "links untouched"
    );
    assert_eq!(
        out["45"]["_meta"]["title"],
        "CLIP Text Encode (Positive Prompt)"
    );
    assert_eq!(t.graph(), &before, "render must not change the template");
    let again = t.render(&RenderParams {
        prompt: "a cat".into(),
        seed: 12345,
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(
        input(&again, "44", "steps"),
        9,
        "unset values keep the workflow's own"
    );
    assert_eq!(
        input(&again, "41", "width"),
        1024,
        "width 0 means the default size"
    );
}

#[test]
fn render_order_defaults_then_quality_then_style_then_request() {
    let toml = r#"
        [defaults]
        steps = 20
        cfg = 6.0
        negative_prompt = "default neg"
        [quality]
        hd = { steps = 40, cfg = 8.0 }
        [style]
        vivid = { cfg = 9.0, prompt_suffix = ", vivid" }
    "#;
    let t = ok(&sdxl_graph(), Some(toml));
    let base = RenderParams {
        prompt: "p".into(),
        ..RenderParams::new(t.default_size)
    };
    let out = t.render(&base);
    assert_eq!(input(&out, "3", "steps"), 20);
    assert_eq!(input(&out, "3", "cfg"), 6.0);
    assert_eq!(input(&out, "7", "text"), "default neg");
    assert_eq!(input(&out, "6", "text"), "p");

    let out = t.render(&RenderParams {
        quality: Some("hd".into()),
        style: Some("vivid".into()),
        ..base.clone()
    });
    assert_eq!(input(&out, "3", "steps"), 40);
    assert_eq!(input(&out, "3", "cfg"), 9.0, "style applies after quality");
    assert_eq!(input(&out, "6", "text"), "p, vivid");

    let out = t.render(&RenderParams {
        quality: Some("hd".into()),
        steps: Some(5),
        negative_prompt: Some("mine".into()),
        ..base.clone()
    });
    assert_eq!(input(&out, "3", "steps"), 5, "the request wins");
    assert_eq!(input(&out, "7", "text"), "mine");

    let out = t.render(&RenderParams {
        quality: Some("unknown".into()),
        ..base
    });
    assert_eq!(
        input(&out, "3", "steps"),
        20,
        "unlisted quality values change nothing"
    );
}

#[test]
fn render_keeps_workflow_negative_without_defaults() {
    let t = ok(&sdxl_graph(), None);
    let out = t.render(&RenderParams::new(t.default_size));
    assert_eq!(input(&out, "7", "text"), "neg");
}

#[test]
fn render_clamps_and_wraps_into_input_ranges() {
    let t = ok(&sdxl_graph(), None);
    let out = t.render(&RenderParams {
        seed: u64::MAX,
        steps: Some(50_000),
        cfg: Some(1e9),
        size: Size::new(8, 20_000),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(
        input(&out, "3", "seed"),
        u64::MAX,
        "KSampler seeds go to 2^64-1"
    );
    assert_eq!(input(&out, "3", "steps"), 10000);
    assert_eq!(input(&out, "3", "cfg"), 100.0);
    assert_eq!(input(&out, "5", "width"), 16, "EmptyLatentImage min is 16");
    assert_eq!(input(&out, "5", "height"), 16384);

    // A seed fed from a PrimitiveInt (i64 on the Python side) wraps instead of clamping.
    let mut g = sdxl_graph();
    g["3"]["inputs"]["seed"] = json!(["20", 0]);
    g["20"] = json!({"class_type": "PrimitiveInt", "inputs": {"value": 5}});
    let t = ok(&g, None);
    assert_eq!(at(&t, Param::Seed), ["20.value"]);
    let max = i64::MAX as u64;
    for (seed, want) in [(3, 3), (max, max), (max + 1, 0), (u64::MAX, max)] {
        let out = t.render(&RenderParams {
            seed,
            ..RenderParams::new(t.default_size)
        });
        assert_eq!(input(&out, "20", "value"), want, "seed {seed}");
    }
}

#[test]
fn render_strength_only_for_img2img() {
    let mut g = sdxl_graph();
    g["3"]["inputs"]["latent_image"] = json!(["11", 0]);
    g["10"] = json!({"class_type": "LoadImage", "inputs": {"image": "in.png"}});
    g["11"] = json!({"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}});
    let t = ok(&g, None);
    assert_eq!(t.kind, ModelKind::Img2Img);
    assert_eq!(at(&t, Param::Image), ["10.image"]);
    assert_eq!(at(&t, Param::Strength), ["3.denoise"]);
    assert!(!t.supports(Param::Width), "size comes from the image");
    let out = t.render(&RenderParams {
        images: vec!["upload_1.png".into()],
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "10", "image"), "upload_1.png");
    assert_eq!(input(&out, "3", "denoise"), 0.6, "default strength");
    let out = t.render(&RenderParams {
        strength: Some(0.25),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "3", "denoise"), 0.25);
}

// ---------------------------------------------------------------- detection on other graphs

#[test]
fn trace_txt2img_detection() {
    let g = trace_txt2img();
    let graph = detect::Graph::parse(&g).expect("parses");
    let d = detect::detect(&graph, &Default::default());
    assert!(d.errors.is_empty());
    assert_eq!(d.outputs, ["3"]);
    let b = |p: Param| d.bindings.get(&p).map(|v| v[0].to_string());
    assert_eq!(b(Param::Width).as_deref(), Some("1.width (EmptyImage)"));
    assert_eq!(b(Param::Seed).as_deref(), Some("2.seed (ImageAddNoise)"));
    assert_eq!(b(Param::Prompt), None);
    // As a template it needs the prompt branch.
    let e = errs(&g, None);
    assert!(
        e[0].starts_with("workflows/t.json: no prompt destination"),
        "{e:?}"
    );
    let t = ok(&with_prompt_branch(g), None);
    assert_eq!(at(&t, Param::Prompt), ["90.value"]);
}

#[test]
fn trace_img2img_detection() {
    let t = ok(&with_prompt_branch(trace_img2img()), None);
    assert_eq!(t.kind, ModelKind::Img2Img);
    assert_eq!(at(&t, Param::Image), ["1.image"]);
    assert_eq!(
        at(&t, Param::Width),
        ["2.width"],
        "ImageScale sets the output size"
    );
    assert_eq!(t.output_nodes(), ["5"]);
    assert!(!t.supports(Param::Seed));
    assert!(!t.supports(Param::Strength), "no sampler denoise to bind");
}

#[test]
fn sampler_custom_advanced_family() {
    let g = json!({
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "f.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "p", "clip": ["9", 0]}},
        "3": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 0], "guidance": 3.5}},
        "4": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["3", 0]}},
        "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "6": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "7": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 20, "denoise": 1}},
        "8": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "9": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "a", "clip_name2": "b", "type": "flux"}},
        "10": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": ["5", 0], "guider": ["4", 0], "sampler": ["6", 0], "sigmas": ["7", 0], "latent_image": ["8", 0]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["12", 0]}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "13": {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}}
    });
    let t = ok(&g, None);
    assert_eq!(at(&t, Param::Prompt), ["2.text"], "through FluxGuidance");
    assert_eq!(at(&t, Param::Seed), ["5.noise_seed"]);
    assert_eq!(at(&t, Param::Steps), ["7.steps"]);
    assert_eq!(at(&t, Param::Scheduler), ["7.scheduler"]);
    assert_eq!(at(&t, Param::Sampler), ["6.sampler_name"]);
    assert_eq!(at(&t, Param::Width), ["8.width"]);
    assert!(!t.supports(Param::Cfg), "BasicGuider has no cfg");
    assert!(!t.supports(Param::NegativePrompt));
    assert_eq!(t.output_nodes(), ["13"]);
}

#[test]
fn ksampler_advanced_uses_noise_seed() {
    let mut g = sdxl_graph();
    let inputs = g["3"]["inputs"].as_object_mut().expect("inputs");
    inputs.remove("seed");
    inputs.remove("denoise");
    inputs.insert("noise_seed".into(), json!(5));
    inputs.insert("add_noise".into(), json!("enable"));
    g["3"]["class_type"] = json!("KSamplerAdvanced");
    let t = ok(&g, None);
    assert_eq!(at(&t, Param::Seed), ["3.noise_seed"]);
}

#[test]
fn inpaint_detection() {
    // Separate mask file through LoadImageMask.
    let mut g = sdxl_graph();
    g["3"]["inputs"]["latent_image"] = json!(["12", 0]);
    g["10"] = json!({"class_type": "LoadImage", "inputs": {"image": "in.png"}});
    g["11"] =
        json!({"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}});
    g["12"] = json!({"class_type": "VAEEncodeForInpaint", "inputs": {
        "pixels": ["10", 0], "vae": ["4", 2], "mask": ["11", 0], "grow_mask_by": 6}});
    let t = ok(&g, None);
    assert_eq!(t.kind, ModelKind::Inpaint);
    assert_eq!(at(&t, Param::Image), ["10.image"]);
    assert_eq!(at(&t, Param::Mask), ["11.image"]);
    assert!(!t.mask_in_image_alpha());
    let out = t.render(&RenderParams {
        images: vec!["i.png".into()],
        mask: Some("m.png".into()),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "11", "image"), "m.png");
    assert_eq!(
        input(&out, "3", "denoise"),
        1.0,
        "inpaint defaults to full denoise"
    );

    // The mask is the LoadImage's own alpha (its MASK output) through GrowMask.
    let mut g = sdxl_graph();
    g["3"]["inputs"]["latent_image"] = json!(["12", 0]);
    g["10"] = json!({"class_type": "LoadImage", "inputs": {"image": "in.png"}});
    g["11"] = json!({"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}});
    g["13"] = json!({"class_type": "GrowMask", "inputs": {"mask": ["10", 1], "expand": 4, "tapered_corners": true}});
    g["12"] = json!({"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["11", 0], "mask": ["13", 0]}});
    let t = ok(&g, None);
    assert_eq!(t.kind, ModelKind::Inpaint);
    assert!(t.mask_in_image_alpha());
    assert!(t.supports(Param::Mask));
    assert_eq!(at(&t, Param::Mask), Vec::<String>::new());

    // Declared img2img: the mask path is not offered.
    let t = ok(&g, Some("kind = \"img2img\""));
    assert_eq!(t.kind, ModelKind::Img2Img);
    assert!(!t.supports(Param::Mask));
}

#[test]
fn outputs_are_in_id_order_and_unreachable_nodes_ignored() {
    let mut g = sdxl_graph();
    g["10"] = json!({"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}});
    // A stray sampler no output depends on is not a second sampler.
    g["20"] = g["3"].clone();
    let t = ok(&g, None);
    assert_eq!(t.output_nodes(), ["9", "10"]);
    assert_eq!(at(&t, Param::Seed), ["3.seed"]);
}

#[test]
fn natural_order() {
    let mut ids = vec!["10", "9", "10:3", "a", "2", "10:10", "010"];
    ids.sort_by(|a, b| detect::natural_cmp(a, b));
    assert_eq!(ids, ["2", "9", "010", "10", "10:3", "10:10", "a"]);
}

// ---------------------------------------------------------------- explicit bindings

#[test]
fn placeholders_bind_and_render_as_numbers() {
    let mut g = sdxl_graph();
    g["3"]["inputs"]["seed"] = json!("{{seed}}");
    g["3"]["inputs"]["steps"] = json!("{{ steps }}");
    g["5"]["inputs"]["width"] = json!("{{width}}");
    g["7"]["inputs"]["text"] = json!("{{negative_prompt}}");
    let e = errs(&g, None);
    assert!(
        e.iter()
            .any(|e| e.contains("\"{{steps}}\" but [defaults] has no steps")),
        "{e:?}"
    );
    let t = ok(&g, Some("[defaults]\nsteps = 12"));
    let out = t.render(&RenderParams {
        seed: 99,
        size: Size::new(640, t.default_size.height),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "3", "seed"), 99);
    assert_eq!(input(&out, "3", "steps"), 12);
    assert_eq!(input(&out, "5", "width"), 640);
    assert_eq!(
        input(&out, "7", "text"),
        "",
        "an unset negative placeholder becomes empty"
    );
}

#[test]
fn placeholder_errors_name_the_node() {
    let mut g = sdxl_graph();
    g["6"]["inputs"]["text"] = json!("{{promt}}");
    let e = errs(&g, None);
    assert!(
        e[0].starts_with(
            "workflows/t.json: node 6 (CLIPTextEncode): input \"text\": unknown placeholder"
        ),
        "{e:?}"
    );
    g["6"]["inputs"]["text"] = json!("photo of {{prompt}}, 4k");
    let e = errs(&g, None);
    assert!(
        e[0].contains("node 6 (CLIPTextEncode)") && e[0].contains("whole value"),
        "{e:?}"
    );
}

#[test]
fn bindings_by_id_list_and_title_override_detection() {
    let toml = r#"
        [bindings]
        prompt = ["title:Positive Prompt.text", "7.text"]
        seed = "title:KSampler v1.2.seed"
    "#;
    let mut g = sdxl_graph();
    g["3"]["_meta"] = json!({"title": "KSampler v1.2"});
    let t = ok(&g, Some(toml));
    assert_eq!(at(&t, Param::Prompt), ["6.text", "7.text"]);
    assert_eq!(at(&t, Param::Seed), ["3.seed"]);
    assert_eq!(
        at(&t, Param::NegativePrompt),
        ["7.text"],
        "other params still detected"
    );
}

#[test]
fn binding_errors_name_file_and_node() {
    let cases = [
        (
            "prompt = \"99.text\"",
            "workflows/t.toml: node 99: [bindings] prompt = \"99.text\": no such node",
        ),
        (
            "prompt = \"6.txt\"",
            "workflows/t.toml: node 6 (CLIPTextEncode): [bindings] prompt = \"6.txt\": has no input \"txt\"",
        ),
        (
            "prompt = \"6.clip\"",
            "workflows/t.toml: node 6 (CLIPTextEncode): [bindings] prompt = \"6.clip\": input \"clip\" is a link",
        ),
        (
            "prompt = \"title:Nope.text\"",
            "workflows/t.toml: [bindings] prompt = \"title:Nope.text\": no node has the title \"Nope\"",
        ),
        (
            "prompt = \"6\"",
            "workflows/t.toml: [bindings] prompt = \"6\": expected",
        ),
        (
            "colour = \"6.text\"",
            "workflows/t.toml: [bindings] colour: unknown value name",
        ),
    ];
    for (binding, want) in cases {
        let e = errs(&sdxl_graph(), Some(&format!("[bindings]\n{binding}")));
        assert!(e.iter().any(|e| e.starts_with(want)), "{binding}: {e:?}");
    }
    let mut g = sdxl_graph();
    g["7"]["_meta"]["title"] = json!("Positive Prompt");
    let e = errs(
        &g,
        Some("[bindings]\nprompt = \"title:Positive Prompt.text\""),
    );
    assert!(e[0].contains("is used by nodes 6, 7"), "{e:?}");
}

// ---------------------------------------------------------------- load errors

#[test]
fn ui_format_is_rejected() {
    let g = json!({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []});
    let e = errs(&g, None);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("workflows/t.json: this is a UI-format workflow"),
        "{e:?}"
    );
    assert!(e[0].contains("Export (API)"));
}

#[test]
fn malformed_graphs_are_rejected() {
    let e = errs(&json!([1, 2]), None);
    assert!(e[0].contains("top level must be a JSON object"), "{e:?}");
    let e = errs(&json!({}), None);
    assert!(e[0].contains("no nodes"), "{e:?}");
    let e = errs(&json!({"1": {"inputs": {}}}), None);
    assert!(
        e[0].starts_with("workflows/t.json: node 1: is not a node"),
        "{e:?}"
    );
    let mut g = sdxl_graph();
    g["8"]["inputs"]["vae"] = json!(["44", 2]);
    let e = errs(&g, None);
    assert!(
        e[0].starts_with(
            "workflows/t.json: node 8 (VAEDecode): input \"vae\" links to node \"44\""
        ),
        "{e:?}"
    );
    let mut g = sdxl_graph();
    g.as_object_mut().expect("object").remove("9");
    let e = errs(&g, None);
    assert!(
        e.iter().any(|e| e.contains("no image output node")),
        "{e:?}"
    );
}

#[test]
fn ambiguous_samplers_need_a_binding() {
    // A refiner pass: two reachable samplers.
    let mut g = sdxl_graph();
    g["20"] = g["3"].clone();
    g["20"]["inputs"]["latent_image"] = json!(["3", 0]);
    g["8"]["inputs"]["samples"] = json!(["20", 0]);
    let e = errs(&g, None);
    assert!(
        e[0].starts_with("workflows/t.json: node 3 (KSampler): ambiguous: 2 samplers (3 (KSampler), 20 (KSampler))"),
        "{e:?}"
    );
    let t = ok(&g, Some("[bindings]\nseed = \"20.seed\""));
    assert_eq!(at(&t, Param::Seed), ["20.seed"]);
    assert_eq!(
        at(&t, Param::Steps),
        ["20.steps"],
        "the bound sampler is the main one"
    );
    assert_eq!(
        at(&t, Param::Width),
        ["5.width"],
        "size found through the first pass"
    );
}

/// LoadImage nodes (by id) chained through ImageBlend nodes into a SaveImage, plus the prompt
/// branch; `alpha` also feeds that LoadImage's MASK output into an ImageCompositeMasked.
fn load_images_graph(ids: &[&str], alpha: Option<&str>) -> Value {
    let mut g = with_prompt_branch(json!({}));
    for id in ids {
        g[*id] = json!({"class_type": "LoadImage", "inputs": {"image": format!("{id}.png")}});
    }
    let mut last = json!([ids[0], 0]);
    for (k, id) in ids.iter().enumerate().skip(1) {
        let blend = format!("{}", 50 + k);
        g[&blend] = json!({"class_type": "ImageBlend", "inputs": {
            "image1": last, "image2": [id, 0], "blend_factor": 0.5, "blend_mode": "normal"}});
        last = json!([blend, 0]);
    }
    if let Some(a) = alpha {
        g["60"] = json!({"class_type": "ImageCompositeMasked", "inputs": {
            "destination": [a, 0], "source": last, "x": 0, "y": 0, "resize_source": false,
            "mask": [a, 1]}});
        last = json!(["60", 0]);
    }
    g["70"] =
        json!({"class_type": "SaveImage", "inputs": {"images": last, "filename_prefix": "x"}});
    g
}

#[test]
fn several_load_images_are_image_slots_in_id_order() {
    let t = ok(&load_images_graph(&["10", "2"], None), None);
    assert_eq!(t.kind, ModelKind::Img2Img);
    assert_eq!(t.image_slots(), 2);
    assert_eq!(
        at(&t, Param::Image),
        ["2.image", "10.image"],
        "natural order"
    );

    let t = ok(&load_images_graph(&["10", "2", "7"], None), None);
    assert_eq!(t.image_slots(), 3);
    assert_eq!(at(&t, Param::Image), ["2.image", "7.image", "10.image"]);

    // Fewer images than slots: the last one fills the rest.
    let files = |out: &Value| -> Vec<String> {
        ["2", "7", "10"]
            .iter()
            .map(|id| {
                input(out, id, "image")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let render = |images: &[&str]| {
        t.render(&RenderParams {
            images: images.iter().map(|s| (*s).to_owned()).collect(),
            ..RenderParams::new(t.default_size)
        })
    };
    assert_eq!(files(&render(&["a.png"])), ["a.png", "a.png", "a.png"]);
    assert_eq!(
        files(&render(&["a.png", "b.png"])),
        ["a.png", "b.png", "b.png"]
    );
    assert_eq!(
        files(&render(&["a.png", "b.png", "c.png"])),
        ["a.png", "b.png", "c.png"]
    );
    assert_eq!(
        files(&render(&[])),
        ["2.png", "7.png", "10.png"],
        "no images leaves the workflow's own names"
    );
}

#[test]
fn image_bindings_override_slot_detection() {
    let g = load_images_graph(&["2", "10", "7"], None);
    let t = ok(&g, Some("[bindings]\nimage = [\"10.image\", \"2.image\"]"));
    assert_eq!(
        at(&t, Param::Image),
        ["10.image", "2.image"],
        "order as given"
    );
    assert_eq!(t.image_slots(), 2);
    let out = t.render(&RenderParams {
        images: vec!["a.png".into(), "b.png".into()],
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "10", "image"), "a.png");
    assert_eq!(input(&out, "2", "image"), "b.png");
    assert_eq!(
        input(&out, "7", "image"),
        "7.png",
        "unbound LoadImage untouched"
    );

    let t = ok(&g, Some("[bindings]\nimage = \"7.image\""));
    assert_eq!(at(&t, Param::Image), ["7.image"]);
    assert_eq!(t.image_slots(), 1);
}

#[test]
fn mask_in_alpha_only_from_the_first_image_slot() {
    // The alpha source is the first slot: the mask rides in the first image.
    let t = ok(&load_images_graph(&["2", "10"], Some("2")), None);
    assert_eq!(t.kind, ModelKind::Inpaint);
    assert!(t.mask_in_image_alpha());
    assert_eq!(at(&t, Param::Image), ["2.image", "10.image"]);
    assert!(at(&t, Param::Mask).is_empty());

    // Anywhere else it is a mask file of its own, not an image slot.
    let t = ok(&load_images_graph(&["2", "10"], Some("10")), None);
    assert_eq!(t.kind, ModelKind::Inpaint);
    assert!(!t.mask_in_image_alpha());
    assert_eq!(at(&t, Param::Image), ["2.image"]);
    assert_eq!(at(&t, Param::Mask), ["10.image"]);
    let out = t.render(&RenderParams {
        images: vec!["a.png".into()],
        mask: Some("m.png".into()),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "10", "image"), "m.png");

    // Bindings that put it first make it the alpha source again...
    let g = load_images_graph(&["2", "10"], Some("10"));
    let t = ok(&g, Some("[bindings]\nimage = [\"10.image\", \"2.image\"]"));
    assert!(t.mask_in_image_alpha());
    assert!(at(&t, Param::Mask).is_empty());
    // ...and bindings that keep it in a later slot are refused.
    let e = errs(&g, Some("[bindings]\nimage = [\"2.image\", \"10.image\"]"));
    assert!(
        e[0].starts_with("workflows/t.json: node 10 (LoadImage): its alpha is the mask, but [bindings] image makes it image slot 2 of 2"),
        "{e:?}"
    );
}

#[test]
fn no_prompt_destination_is_rejected() {
    let mut g = sdxl_graph();
    g["6"]["inputs"]["text"] = json!(["30", 0]);
    g["30"] = json!({"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b", "delimiter": ""}});
    let e = errs(&g, None);
    assert!(
        e[0].starts_with("workflows/t.json: no prompt destination"),
        "{e:?}"
    );
    assert!(e[0].contains("t.toml"), "tells where to bind: {e:?}");
    // A Primitive string feeding the encoder is followed.
    g["30"] = json!({"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a"}});
    let t = ok(&g, None);
    assert_eq!(at(&t, Param::Prompt), ["30.value"]);
}

#[test]
fn kind_conflicts_are_rejected() {
    let e = errs(&sdxl_graph(), Some("kind = \"img2img\""));
    assert!(e[0].contains("kind is img2img but no LoadImage"), "{e:?}");
    let mut g = sdxl_graph();
    g["10"] = json!({"class_type": "PrimitiveString", "inputs": {"value": "{{image}}"}});
    g["11"] = json!({"class_type": "PreviewAny", "inputs": {"source": ["10", 0]}});
    assert_eq!(
        ok(&g, None).kind,
        ModelKind::Img2Img,
        "an image placeholder makes it img2img"
    );
    let e = errs(&g, Some("kind = \"txt2img\""));
    assert!(
        e[0].starts_with("workflows/t.toml: image is bound but kind is txt2img"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- sidecar

#[test]
fn sidecar_full() {
    let toml = r#"
        id = "my-model"
        description = "desc"
        kind = "txt2img"
        sizes = ["512x512", "768x768"]
        [defaults]
        steps = 30
        cfg = 5.5
        sampler = "dpmpp_2m"
        scheduler = "karras"
        negative_prompt = "ugly"
        strength = 0.4
        [quality]
        low = { steps = 10 }
        [style]
        natural = { sampler = "euler", scheduler = "normal", negative_prompt = "n", strength = 0.3 }
    "#;
    let t = ok(&sdxl_graph(), Some(toml));
    assert_eq!(t.id, "my-model");
    assert_eq!(t.description.as_deref(), Some("desc"));
    assert_eq!(t.sizes, [Size::new(512, 512), Size::new(768, 768)]);
    assert_eq!(
        t.default_size,
        Size::new(512, 512),
        "first size when 1024x1024 is absent"
    );
    assert_eq!(
        t.defaults,
        Defaults {
            steps: Some(30),
            cfg: Some(5.5),
            sampler: Some("dpmpp_2m".into()),
            scheduler: Some("karras".into()),
            negative_prompt: Some("ugly".into()),
            strength: 0.4,
        }
    );
    assert_eq!(t.quality["low"].steps, Some(10));
    assert_eq!(t.style["natural"].sampler.as_deref(), Some("euler"));
    let out = t.render(&RenderParams {
        style: Some("natural".into()),
        ..RenderParams::new(t.default_size)
    });
    assert_eq!(input(&out, "3", "sampler_name"), "euler");
    assert_eq!(input(&out, "3", "scheduler"), "normal");
    assert_eq!(input(&out, "3", "cfg"), 5.5);
    assert_eq!(input(&out, "7", "text"), "n");
    assert_eq!(
        input(&out, "3", "denoise"),
        1,
        "strength never touches txt2img"
    );
}

#[test]
fn sidecar_errors() {
    let cases = [
        (
            "sizes = [\"512 x 512\"]",
            "workflows/t.toml: line 1: invalid size \"512 x 512\"",
        ),
        (
            "\n\ndefault_size = \"0x512\"",
            "workflows/t.toml: line 3: invalid size",
        ),
        (
            "stepz = 3",
            "workflows/t.toml: line 1: unknown field `stepz`",
        ),
        (
            "kind = \"video\"",
            "workflows/t.toml: line 1: unknown variant `video`",
        ),
        (
            "[quality]\nhd = { stepz = 3 }",
            "workflows/t.toml: line 2: unknown field `stepz`",
        ),
        (
            "[defaults]\nstrength = 1.5",
            "workflows/t.toml: [defaults]: strength must be within 0..=1",
        ),
        (
            "[quality]\nhd = { steps = 0 }",
            "workflows/t.toml: [quality] hd: steps must be within",
        ),
        (
            "sizes = [\"512x512\"]\ndefault_size = \"768x768\"",
            "workflows/t.toml: default_size 768x768 is not in sizes",
        ),
        ("sizes = []", "workflows/t.toml: sizes must not be empty"),
        (
            "id = \"has space\"",
            "workflows/t.toml: model id \"has space\" must be",
        ),
    ];
    for (toml, want) in cases {
        let e = errs(&sdxl_graph(), Some(toml));
        assert!(e.iter().any(|e| e.starts_with(want)), "{toml}: {e:?}");
    }
}

#[test]
fn size_parsing() {
    assert_eq!("1024x768".parse::<Size>(), Ok(Size::new(1024, 768)));
    assert_eq!("16384x1".parse::<Size>(), Ok(Size::new(16384, 1)));
    for bad in [
        "",
        "1024",
        "1024x",
        "x1024",
        "0x512",
        "512x0",
        "16385x512",
        "512 x512",
        " 512x512",
        "512X512",
        "+512x512",
        "512x-1",
        "1e3x512",
        "512x512x512",
        "１２x12",
        "99999999999x1",
    ] {
        assert!(bad.parse::<Size>().is_err(), "{bad:?} should be rejected");
    }
    assert_eq!(Size::new(768, 1344).to_string(), "768x1344");
}

// ---------------------------------------------------------------- TemplateSet

#[test]
fn load_is_all_or_nothing() {
    let dir = TempDir::new("all-or-nothing");
    let good = serde_json::to_string_pretty(&sdxl_graph()).expect("json");
    dir.write("good.json", &good);
    dir.write("bad.json", r#"{"nodes": [], "links": []}"#);
    dir.write("orphan.toml", "description = \"x\"");
    dir.write("notes.txt", "ignored");
    dir.write(".hidden.json", "not json, ignored");
    let errors = TemplateSet::load(&dir.0, &[]).expect_err("must fail");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{text:?}");
    assert!(
        text.iter()
            .any(|e| e.contains("orphan.toml") && e.contains("orphan.json is missing"))
    );
    assert!(
        text.iter()
            .any(|e| e.contains("bad.json") && e.contains("UI-format"))
    );

    std::fs::remove_file(dir.0.join("bad.json")).expect("rm");
    std::fs::remove_file(dir.0.join("orphan.toml")).expect("rm");
    let set = TemplateSet::load(&dir.0, &[]).expect("loads");
    assert_eq!(set.len(), 1);
    assert!(set.get("good").is_some());
    assert_eq!(
        set.get("good").map(|t| t.file.clone()),
        Some(dir.0.join("good.json"))
    );
}

#[test]
fn load_extra_files_and_duplicate_ids() {
    let dir = TempDir::new("extra");
    let other = TempDir::new("extra-other");
    let g = serde_json::to_string(&sdxl_graph()).expect("json");
    dir.write("a.json", &g);
    let extra = other.write("b.json", &g);
    other.write("b.toml", "id = \"from-extra\"");
    let set = TemplateSet::load(&dir.0, std::slice::from_ref(&extra)).expect("loads");
    let ids: Vec<&str> = set.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "from-extra"]);

    // The same file listed twice counts once.
    let a = dir.0.join("a.json");
    assert_eq!(TemplateSet::load(&dir.0, &[a]).expect("loads").len(), 1);

    // A missing dir is fine when extra files are given, an error otherwise.
    let missing = dir.0.join("nope");
    assert_eq!(
        TemplateSet::load(&missing, std::slice::from_ref(&extra))
            .expect("loads")
            .len(),
        1
    );
    assert!(TemplateSet::load(&missing, &[]).is_err());
    let e = TemplateSet::load(&dir.0, &[other.0.join("c.yaml")]).expect_err("bad extra");
    assert!(e[0].to_string().contains("must end in .json"));

    other.write("b.toml", "id = \"a\"");
    let e = TemplateSet::load(&dir.0, &[extra]).expect_err("duplicate id");
    assert!(
        e[0].to_string()
            .contains("model id \"a\" is already used by"),
        "{e:?}"
    );
}

#[test]
fn created_is_stable_and_plausible() {
    assert_eq!(created_time("z-image-turbo"), created_time("z-image-turbo"));
    assert_ne!(created_time("sdxl"), created_time("z-image-turbo"));
    // Pinned so that a change of hash function shows up here rather than in clients' caches.
    assert_eq!(
        created_time(""),
        1_700_000_000 + 0xcbf2_9ce4_8422_2325_u64 % 10_000_000
    );
    for t in shipped().iter() {
        assert!((1_700_000_000..1_710_000_000).contains(&t.created));
        assert_eq!(t.created, shipped_one(&t.id).created);
    }
}

#[test]
fn error_display_names_file_and_node() {
    let e = TemplateError {
        file: PathBuf::from("workflows/foo.json"),
        node: Some(NodeRef {
            id: "7".into(),
            class_type: Some("KSampler".into()),
        }),
        message: "boom".into(),
        pending: false,
    };
    assert_eq!(e.to_string(), "workflows/foo.json: node 7 (KSampler): boom");
    let e = TemplateError::file(Path::new("workflows/foo.json"), "boom");
    assert_eq!(e.to_string(), "workflows/foo.json: boom");
}

#[test]
fn param_names_round_trip() {
    for p in Param::ALL {
        assert_eq!(Param::from_name(p.name()), Some(p));
    }
    assert_eq!(
        serde_json::to_value(ModelKind::Img2Img).ok(),
        Some(json!("img2img"))
    );
}

#[test]
fn hostile_graphs_do_not_panic() {
    let graphs = [
        // Conditioning and latent cycles.
        json!({
            "1": {"class_type": "KSampler", "inputs": {"seed": 1, "positive": ["2", 0], "negative": ["2", 1], "latent_image": ["3", 0]}},
            "2": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["2", 0], "negative": ["2", 1]}},
            "3": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
        }),
        // Mask cycle, odd values, huge slots and ids.
        json!({
            "1": {"class_type": "GrowMask", "inputs": {"mask": ["1", 18446744073709551615_u64]}},
            "2": {"class_type": "SetLatentNoiseMask", "inputs": {"mask": ["1", 0], "samples": [1, 2, 3]}},
            "é:10": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0], "x": {"__value__": [1]}}},
            "3": {"class_type": "EmptyImage", "inputs": {"width": -5, "height": 1.5, "seed": -1}}
        }),
        json!({"1": {"class_type": "SaveImage", "inputs": []}}),
        json!({"1": 5, "2": null}),
        json!("text"),
        json!(null),
    ];
    for g in graphs {
        let _ = build_str(&g, None);
    }
    let _ = assemble::build(Path::new("x.json"), "{\"1\": {", "x", None);
    for text in [
        "\u{0}",
        "[[",
        "id = 5",
        "sizes = \"1x1\"",
        "[bindings]\nprompt = []",
    ] {
        let _ = sidecar::parse(text);
    }
    let e = errs(&sdxl_graph(), Some("[bindings]\nprompt = []"));
    assert!(e[0].contains("empty list"), "{e:?}");
}

#[test]
fn saved_prompt_is_the_workflow_text_unless_a_placeholder() {
    assert_eq!(
        shipped_one("sdxl-img2img").saved_prompt(),
        "a photograph of a lighthouse on a rocky coast at sunset, dramatic sky"
    );
    assert_eq!(shipped_one("weightfree-img2img").saved_prompt(), "");
}

#[test]
fn a_size_rule_allows_sizes_beyond_the_list() {
    let t = ok(
        &sdxl_graph(),
        Some("[size_rule]\nmin = 256\nmax = 2048\nmultiple_of = 64\nmax_pixels = 1048576\n"),
    );
    assert!(t.allows_size(Size::new(1024, 1024)));
    assert!(
        t.allows_size(Size::new(1280, 768)),
        "not in the list, within the rule"
    );
    assert!(!t.allows_size(Size::new(1000, 1000)));
    assert!(!t.allows_size(Size::new(1536, 1536)));
    assert_eq!(t.default_size, Size::new(1024, 1024));
    assert!(t.sizes.iter().all(|s| s.pixels() <= 1_048_576) && t.sizes.len() > 3);

    let wrong = errs(
        &sdxl_graph(),
        Some("default_size = \"100x100\"\n[size_rule]\nmin = 256\nmax = 512\n"),
    );
    assert!(
        wrong.iter().any(|e| e.contains("default_size 100x100")),
        "{wrong:?}"
    );
    let wrong = errs(&sdxl_graph(), Some("[size_rule]\nmin = 900\nmax = 512\n"));
    assert!(
        wrong.iter().any(|e| e.contains("[size_rule]: min and max")),
        "{wrong:?}"
    );
    let wrong = errs(
        &sdxl_graph(),
        Some("[size_rule]\nmin = 256\nmax = 512\nsides = 3\n"),
    );
    assert!(
        wrong.iter().any(|e| e.contains("unknown field `sides`")),
        "{wrong:?}"
    );
}

#[test]
fn a_missing_prompt_names_the_text_inputs_that_could_take_it() {
    let mut g = sdxl_graph();
    g["6"]["inputs"]["text"] = json!(["30", 0]);
    g["30"] =
        json!({"class_type": "CR Prompt Text", "inputs": {"prompt_text": "a castle on a hill"}});
    g["31"] = json!({"class_type": "StringFunction|pysssss", "inputs": {"text_a": ["30", 0], "action": "append", "tidy_tags": "yes"}});
    g["6"]["inputs"]["text"] = json!(["31", 0]);
    let e = errs(&g, None);
    assert!(
        e[0].contains("text inputs that could take it: \"30.prompt_text\" (CR Prompt Text);"),
        "{e:?}"
    );
    assert!(
        e[0].contains("add `prompt = \"30.prompt_text\"` under [bindings]"),
        "{e:?}"
    );
    // The binding it suggests, pointed at the right node, loads.
    let t = ok(&g, Some("[bindings]\nprompt = \"30.prompt_text\""));
    assert_eq!(at(&t, Param::Prompt), ["30.prompt_text"]);
}

#[test]
fn custom_nodes_that_follow_comfyuis_conventions_are_detected() {
    // Efficiency Nodes: the loader encodes both prompts, held as its own text widgets.
    let g = json!({
        "1": {"class_type": "Efficient Loader", "inputs": {
            "ckpt_name": "x.safetensors", "vae_name": "Baked VAE", "clip_skip": -1,
            "lora_name": "None", "lora_model_strength": 1.0, "lora_clip_strength": 1.0,
            "positive": "a castle", "negative": "blurry", "token_normalization": "none",
            "weight_interpretation": "comfy", "empty_latent_width": 512,
            "empty_latent_height": 768, "batch_size": 1}},
        "2": {"class_type": "KSampler (Efficient)", "inputs": {
            "model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2],
            "latent_image": ["1", 3], "optional_vae": ["1", 4], "seed": 5, "steps": 20,
            "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "preview_method": "auto", "vae_decode": "true"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 5], "filename_prefix": "x"}}
    });
    let t = ok(
        &g,
        Some("[bindings]\nwidth = \"1.empty_latent_width\"\nheight = \"1.empty_latent_height\""),
    );
    assert_eq!(at(&t, Param::Prompt), ["1.positive"]);
    assert_eq!(at(&t, Param::NegativePrompt), ["1.negative"]);
    assert_eq!(at(&t, Param::Seed), ["2.seed"]);
    assert_eq!(at(&t, Param::Sampler), ["2.sampler_name"]);

    // A prompt text node and a seed node linked into core nodes are followed to their widget.
    let mut g = sdxl_graph();
    g["30"] = json!({"class_type": "CR Prompt Text", "inputs": {"prompt": "a lighthouse"}});
    g["31"] = json!({"class_type": "Seed (rgthree)", "inputs": {"seed": 77}});
    g["6"]["inputs"]["text"] = json!(["30", 0]);
    g["3"]["inputs"]["seed"] = json!(["31", 0]);
    let t = ok(&g, None);
    assert_eq!(at(&t, Param::Prompt), ["30.prompt"]);
    assert_eq!(at(&t, Param::Seed), ["31.seed"]);
    // A node that reads a file is not a value to overwrite.
    g["30"] = json!({"class_type": "Load Text File", "inputs": {"file_path": "prompts/a.txt"}});
    assert!(errs(&g, None)[0].contains("no prompt destination"));
}

/// Every text encoder of a real ComfyUI (0.3.64's `/object_info`, as the simulator serves it)
/// that makes image conditioning has a prompt input detection knows.
#[test]
fn every_core_text_encoder_has_a_known_prompt_input() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/data/object_info.json");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Audio and video track encoders, not image models.
    let not_images = ["TextEncodeAceStepAudio", "WanTrackToVideo"];
    let mut encoders = 0;
    for (class, schema) in info.as_object().unwrap() {
        let makes_conditioning = schema["output"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("CONDITIONING")));
        let required = schema["input"]["required"].as_object();
        let texts: Vec<&String> = required
            .into_iter()
            .flatten()
            .filter(|(_, spec)| spec[0] == "STRING")
            .map(|(name, _)| name)
            .collect();
        if !makes_conditioning || texts.is_empty() || not_images.contains(&class.as_str()) {
            continue;
        }
        encoders += 1;
        assert!(
            texts
                .iter()
                .any(|t| detect::TEXT_INPUTS.contains(&t.as_str())),
            "{class}: none of {texts:?} is a known prompt input"
        );
    }
    assert!(encoders >= 15, "only {encoders} encoders found");
}
