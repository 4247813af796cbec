use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::comfy::ObjectInfo;
use crate::templates::{RenderParams, TemplateSet};

/// Verbatim entries of a real ComfyUI 0.3.64 `/object_info` (see testdata/README.md).
const OBJECT_INFO: &str = include_str!("../testdata/ui/object_info.json");
const WORKFLOWS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows");

fn info() -> ObjectInfo {
    ObjectInfo::from_json(OBJECT_INFO).expect("object_info.json")
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/src/templates/testdata/ui/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn shipped(name: &str) -> Value {
    let path = format!("{WORKFLOWS}/{name}.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn convert(ui: &Value) -> Value {
    match to_api(ui, &info()) {
        Ok(v) => v,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

fn convert_err(ui: &Value) -> String {
    match to_api(ui, &info()) {
        Ok(v) => panic!("expected a conversion error, got {v:#}"),
        Err(e) => e.to_string(),
    }
}

/// JSON equality where numbers compare by value: the frontend writes `1` where a file written
/// by hand may say `1.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn without_meta(graph: &Value) -> Value {
    let mut g = graph.clone();
    for node in g.as_object_mut().expect("object").values_mut() {
        node.as_object_mut().expect("node").remove("_meta");
    }
    g
}

fn assert_converts_to(name: &str, got: &Value, want: &Value) {
    assert!(
        same(&without_meta(got), &without_meta(want)),
        "{name}: converted graph differs\n got: {got:#}\nwant: {want:#}"
    );
    for (id, node) in want.as_object().expect("object") {
        assert_eq!(
            got[id]["_meta"], node["_meta"],
            "{name}: node {id}'s title differs"
        );
    }
}

// ------------------------------------------------------------ shipped workflows

#[test]
fn ui_twins_of_the_shipped_workflows_convert_to_them() {
    for name in [
        "sdxl",
        "sdxl-img2img",
        "sdxl-inpaint",
        "weightfree-txt2img",
        "weightfree-img2img",
        "weightfree-inpaint",
        "weightfree-blend",
        "z-image-turbo",
    ] {
        let ui = fixture(name);
        assert!(is_ui_format(&ui), "{name}");
        assert!(!is_ui_format(&shipped(name)), "{name}");
        assert_converts_to(name, &convert(&ui), &shipped(name));
    }
}

#[test]
fn fixtures_are_against_the_real_object_info() {
    let real: Value = serde_json::from_str(OBJECT_INFO).expect("object_info.json");
    let ksampler = &real["KSampler"];
    assert_eq!(
        ksampler["input"]["required"]["seed"][1]["control_after_generate"],
        true
    );
    assert_eq!(ksampler["input_order"]["required"][1], "seed");
    assert_eq!(
        real["LoadImage"]["input"]["required"]["image"][1]["image_upload"],
        true
    );
}

/// A converted workflow is an ordinary template: it loads with its sidecar and renders.
#[test]
fn a_converted_workflow_loads_and_renders_as_a_template() {
    let dir = TempDir::new("converted");
    let api = convert(&fixture("sdxl-img2img"));
    std::fs::write(dir.0.join("sdxl-img2img.json"), api.to_string()).expect("write");
    let sidecar = Path::new(WORKFLOWS).join("sdxl-img2img.toml");
    std::fs::copy(&sidecar, dir.0.join("sdxl-img2img.toml")).expect("copy sidecar");
    let set = match TemplateSet::load(&dir.0, &[]) {
        Ok(s) => s,
        Err(e) => panic!("converted workflow does not load: {e:#?}"),
    };
    let t = set.get("sdxl-img2img").expect("template");
    assert_eq!(t.image_slots(), 1);
    let mut p = RenderParams::new(t.default_size);
    p.prompt = "a castle".into();
    p.seed = 7;
    p.images = vec!["up.png".into()];
    p.strength = Some(0.4);
    let out = t.render(&p);
    assert_eq!(out["6"]["inputs"]["text"], "a castle");
    assert_eq!(out["3"]["inputs"]["seed"], 7);
    assert_eq!(out["3"]["inputs"]["denoise"], 0.4);
    assert_eq!(out["10"]["inputs"]["image"], "up.png");
    assert_eq!(out["12"]["inputs"]["pixels"], json!(["11", 0]));
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ui-format-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------ graph features

#[test]
fn reroutes_primitives_and_notes_leave_no_trace() {
    let got = convert(&fixture("frontend-only-nodes"));
    let mut want = shipped("sdxl");
    want["3"]["inputs"]["seed"] = json!(1234);
    want["6"]["inputs"]["text"] = json!("a red fox in the snow");
    assert_converts_to("frontend-only-nodes", &got, &want);
}

#[test]
fn muted_nodes_vanish_and_bypassed_ones_pass_their_input_on() {
    let got = convert(&fixture("muted-and-bypassed"));
    let mut want = shipped("sdxl");
    // Links from the muted ImageInvert go, and so does the IMAGE the bypassed VAEDecode has
    // no input to pass on.
    want["32"] = json!({"inputs": {"filename_prefix": "inverted"}, "class_type": "SaveImage",
                        "_meta": {"title": "Save Image"}});
    want["34"] = json!({"inputs": {"filename_prefix": "no-image"}, "class_type": "SaveImage",
                        "_meta": {"title": "Save Image"}});
    assert_converts_to("muted-and-bypassed", &got, &want);
    assert_eq!(got["3"]["inputs"]["latent_image"], json!(["5", 0]));
}

#[test]
fn subgraphs_are_refused_by_name() {
    let e = convert_err(&fixture("subgraph"));
    assert!(
        e.starts_with(
            "node 10 (5f3c2b1a-9d8e-4c7b-a6f5-0e1d2c3b4a59 \"Sample and decode\"): is a subgraph"
        ),
        "{e}"
    );
    assert!(
        e.contains("Unpack Subgraph") && e.contains("Export (API)"),
        "{e}"
    );
    let err = to_api(&fixture("subgraph"), &info()).expect_err("subgraph");
    let node = err.node.expect("node");
    assert_eq!(node.id, "10");
    assert_eq!(node.title.as_deref(), Some("Sample and decode"));
}

/// A small UI workflow from `(id, type, inputs, outputs, widgets_values)` with `links`.
fn ui(nodes: &[(i64, &str, Value, Value, Value)], links: Value) -> Value {
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|(id, ty, inputs, outputs, values)| {
            json!({"id": id, "type": ty, "mode": 0, "inputs": inputs, "outputs": outputs,
                   "properties": {}, "widgets_values": values})
        })
        .collect();
    json!({"nodes": nodes, "links": links, "version": 0.4})
}

fn empty_image(id: i64, link: i64) -> (i64, &'static str, Value, Value, Value) {
    (
        id,
        "EmptyImage",
        json!([]),
        json!([{"name": "IMAGE", "type": "IMAGE", "links": [link]}]),
        json!([64, 64, 1, 0]),
    )
}

fn save_image(id: i64, link: Option<i64>) -> (i64, &'static str, Value, Value, Value) {
    (
        id,
        "SaveImage",
        json!([{"name": "images", "type": "IMAGE", "link": link}]),
        json!([]),
        json!(["out"]),
    )
}

#[test]
fn links_in_the_object_form_of_newer_files_work() {
    let mut g = ui(&[empty_image(1, 1), save_image(2, Some(1))], json!([]));
    g["links"] = json!([{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2,
                         "target_slot": 0, "type": "IMAGE"}]);
    let got = convert(&g);
    assert_eq!(got["2"]["inputs"]["images"], json!(["1", 0]));
    assert_eq!(got["1"]["inputs"]["color"], 0);
    assert_eq!(got["1"]["_meta"]["title"], "EmptyImage");
}

#[test]
fn titles_fall_back_to_the_display_name_then_the_class() {
    let mut g = ui(
        &[
            (
                1,
                "EmptySD3LatentImage",
                json!([]),
                json!([]),
                json!([8, 8, 1]),
            ),
            (
                2,
                "LoadImageMask",
                json!([]),
                json!([]),
                json!(["m.png", "red", "image"]),
            ),
        ],
        json!([]),
    );
    g["nodes"][1]["title"] = json!("My mask");
    let got = convert(&g);
    assert_eq!(got["1"]["_meta"]["title"], "EmptySD3LatentImage");
    assert_eq!(got["2"]["_meta"]["title"], "My mask");
    // The upload button's value sits after the required inputs, `channel` included.
    assert_eq!(
        got["2"]["inputs"],
        json!({"image": "m.png", "channel": "red"})
    );
}

#[test]
fn a_reroute_loop_is_an_error_not_a_hang() {
    let reroute = |id: i64, input: i64, output: i64| {
        (
            id,
            "Reroute",
            json!([{"name": "", "type": "*", "link": input}]),
            json!([{"name": "", "type": "IMAGE", "links": [output]}]),
            Value::Null,
        )
    };
    let g = ui(
        &[reroute(1, 2, 1), reroute(2, 1, 2), save_image(3, Some(3))],
        json!([
            [1, 1, 0, 2, 0, "IMAGE"],
            [2, 2, 0, 1, 0, "IMAGE"],
            [3, 1, 0, 3, 0, "IMAGE"]
        ]),
    );
    let e = convert_err(&g);
    assert!(e.contains("go round in a circle"), "{e}");
}

#[test]
fn broken_links_are_errors_naming_the_node() {
    let g = ui(&[save_image(2, Some(9))], json!([]));
    let e = convert_err(&g);
    assert_eq!(
        e,
        "node 2 (SaveImage): input \"images\" refers to link 9, which the workflow does not have"
    );
    let g = ui(&[save_image(2, Some(1))], json!([[1, 7, 0, 2, 0, "IMAGE"]]));
    assert!(convert_err(&g).contains("linked from node 7, which the workflow does not have"));
}

#[test]
fn a_reroute_with_nothing_in_leaves_the_widget_value() {
    let g = ui(
        &[
            (
                1,
                "Reroute",
                json!([{"name": "", "type": "*", "link": null}]),
                json!([{"name": "", "type": "INT", "links": [1]}]),
                Value::Null,
            ),
            (
                2,
                "ImageAddNoise",
                json!([{"name": "image", "type": "IMAGE", "link": null},
                       {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 1}]),
                json!([]),
                json!([5, "fixed", 0.5]),
            ),
        ],
        json!([[1, 1, 0, 2, 1, "INT"]]),
    );
    assert_eq!(
        convert(&g)["2"]["inputs"],
        json!({"seed": 5, "strength": 0.5})
    );
}

#[test]
fn a_bypassed_node_passes_the_same_slot_then_the_same_type() {
    // ImageCompositeMasked bypassed: its IMAGE output takes `destination` (slot 0), the first
    // input of that type, even though `source` is linked too.
    let mut g = ui(
        &[
            empty_image(1, 1),
            empty_image(2, 2),
            (
                3,
                "ImageCompositeMasked",
                json!([{"name": "destination", "type": "IMAGE", "link": 1},
                       {"name": "source", "type": "IMAGE", "link": 2},
                       {"name": "mask", "type": "MASK", "link": null}]),
                json!([{"name": "IMAGE", "type": "IMAGE", "links": [3]}]),
                json!([0, 0, false]),
            ),
            save_image(4, Some(3)),
        ],
        json!([
            [1, 1, 0, 3, 0, "IMAGE"],
            [2, 2, 0, 3, 1, "IMAGE"],
            [3, 3, 0, 4, 0, "IMAGE"]
        ]),
    );
    g["nodes"][2]["mode"] = json!(4);
    let got = convert(&g);
    assert_eq!(got["4"]["inputs"]["images"], json!(["1", 0]));
    assert!(got.get("3").is_none());
    // With `destination` unlinked, the bypass finds nothing more: the input is dropped.
    g["nodes"][2]["inputs"][0]["link"] = Value::Null;
    let got = convert(&g);
    assert_eq!(got["4"]["inputs"], json!({"filename_prefix": "out"}));
}

#[test]
fn slot_types_fit_like_litegraphs() {
    assert!(fits("IMAGE", "image"));
    assert!(fits("*", "LATENT"));
    assert!(fits("", "LATENT"));
    assert!(fits("IMAGE,MASK", "MASK"));
    assert!(!fits("IMAGE", "MASK"));
    assert!(!fits("IMAGE,LATENT", "MASK,MODEL"));
}

// ------------------------------------------------------------ widget values

#[test]
fn seed_controls_and_upload_buttons_take_a_slot_each() {
    let g = ui(
        &[
            (
                1,
                "KSamplerAdvanced",
                json!([]),
                json!([]),
                json!([
                    "enable",
                    42,
                    "increment",
                    20,
                    8,
                    "euler",
                    "normal",
                    0,
                    10000,
                    "disable"
                ]),
            ),
            (2, "PrimitiveInt", json!([]), json!([]), json!([5, "fixed"])),
            (
                3,
                "LoadImage",
                json!([]),
                json!([]),
                json!(["a.png", "image"]),
            ),
        ],
        json!([]),
    );
    let got = convert(&g);
    assert_eq!(got["1"]["inputs"]["noise_seed"], 42);
    assert_eq!(got["1"]["inputs"]["steps"], 20);
    assert_eq!(got["1"]["inputs"]["return_with_leftover_noise"], "disable");
    assert_eq!(got["2"]["inputs"], json!({"value": 5}));
    assert_eq!(got["3"]["inputs"], json!({"image": "a.png"}));
}

/// The frontend gives a seed or noise_seed INT a control combo unless told not to, any INT or
/// FLOAT one when told to, and a combo told to a control combo and a filter box.
#[test]
fn control_widgets_follow_the_frontends_rules() {
    let info = ObjectInfo::from_value(&json!({"Controls": {
        "input": {"required": {
            "seed": ["INT", {}],
            "noise_seed": ["INT", {"control_after_generate": false}],
            "count": ["INT", {"control_after_generate": "fixed"}],
            "scale": ["FLOAT", {"control_after_generate": true}],
            "pick": [["a", "b"], {"control_after_generate": true}],
            "steps": ["INT", {}]}},
        "input_order": {"required": ["seed", "noise_seed", "count", "scale", "pick", "steps"]}}}));
    let g = ui(
        &[(
            1,
            "Controls",
            json!([]),
            json!([]),
            json!([1, "fixed", 2, 3, "fixed", 0.5, "fixed", "b", "fixed", "", 9]),
        )],
        json!([]),
    );
    let got = to_api(&g, &info).expect("converts");
    assert_eq!(
        got["1"]["inputs"],
        json!({"seed": 1, "noise_seed": 2, "count": 3, "scale": 0.5, "pick": "b", "steps": 9})
    );
}

#[test]
fn a_widget_count_that_does_not_match_is_refused() {
    // Saved before the control combo existed: one value short.
    let g = ui(
        &[(
            1,
            "KSamplerAdvanced",
            json!([]),
            json!([]),
            json!(["enable", 42, 20, 8, "euler", "normal", 0, 10000, "disable"]),
        )],
        json!([]),
    );
    let e = convert_err(&g);
    assert!(
        e.starts_with(
            "node 1 (KSamplerAdvanced): has 9 widget values, but KSamplerAdvanced on this \
             server has 10 widgets (add_noise, noise_seed, control_after_generate, steps,"
        ),
        "{e}"
    );
    assert!(e.contains("Export (API)"), "{e}");
    let mut g = ui(&[save_image(1, None)], json!([]));
    g["nodes"][0]["widgets_values"] = json!({"filename_prefix": "x"});
    assert!(convert_err(&g).contains("widgets_values is not a list"));
}

#[test]
fn values_saved_for_force_input_widgets_by_old_frontends_are_dropped() {
    let save_lora = |values: Value| {
        ui(
            &[(
                1,
                "SaveLoRANode",
                json!([{"name": "lora", "type": "LORA_MODEL", "link": null}]),
                json!([]),
                values,
            )],
            json!([]),
        )
    };
    let want = json!({"prefix": "loras/x"});
    assert_eq!(convert(&save_lora(json!(["loras/x"])))["1"]["inputs"], want);
    assert_eq!(
        convert(&save_lora(json!(["loras/x", 0])))["1"]["inputs"],
        want
    );
    assert!(convert_err(&save_lora(json!(["loras/x", 0, 1]))).contains("has 3 widget values"));
}

#[test]
fn preview_any_may_carry_its_preview_widgets() {
    let g = ui(
        &[(
            1,
            "PreviewAny",
            json!([{"name": "source", "type": "*", "link": null}]),
            json!([]),
            json!([null, null, false]),
        )],
        json!([]),
    );
    assert_eq!(convert(&g)["1"]["inputs"], json!({}));
}

#[test]
fn list_values_are_boxed_so_they_do_not_read_as_links() {
    let g = ui(
        &[(
            1,
            "PrimitiveStringMultiline",
            json!([]),
            json!([]),
            json!([["a", 1]]),
        )],
        json!([]),
    );
    assert_eq!(
        convert(&g)["1"]["inputs"]["value"],
        json!({"__value__": ["a", 1]})
    );
}

#[test]
fn a_primitive_feeds_every_widget_it_is_linked_to() {
    let noise = |id: i64, link: i64| {
        (
            id,
            "ImageAddNoise",
            json!([{"name": "image", "type": "IMAGE", "link": null},
                   {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": link}]),
            json!([]),
            json!([0, "randomize", 0.5]),
        )
    };
    let primitive = (
        9,
        "PrimitiveNode",
        json!([]),
        json!([{"name": "INT", "type": "INT", "widget": {"name": "seed"}, "links": [1, 2]}]),
        json!([77, "fixed"]),
    );
    let mut g = ui(
        &[noise(1, 1), noise(2, 2), primitive],
        json!([[1, 9, 0, 1, 1, "INT"], [2, 9, 0, 2, 1, "INT"]]),
    );
    let got = convert(&g);
    assert_eq!(got["1"]["inputs"]["seed"], 77);
    assert_eq!(got["2"]["inputs"]["seed"], 77);
    assert!(got.get("9").is_none());

    g["nodes"][2]["properties"] = json!({"Run widget replace on values": true});
    g["nodes"][2]["widgets_values"] = json!(["%date:yyyy%", "fixed"]);
    assert!(convert_err(&g).contains("Run widget replace on values"));
}

#[test]
fn unknown_and_frontend_drawn_node_types_are_refused() {
    let g = ui(
        &[(1, "SuperSampler", json!([]), json!([]), json!([]))],
        json!([]),
    );
    let e = convert_err(&g);
    assert!(
        e.starts_with("node 1 (SuperSampler): the server lacks node type SuperSampler"),
        "{e}"
    );
    // A muted node of an unknown type is simply left out.
    let mut g = ui(
        &[
            (1, "SuperSampler", json!([]), json!([]), json!([])),
            save_image(2, None),
        ],
        json!([]),
    );
    g["nodes"][0]["mode"] = json!(2);
    assert!(convert(&g).get("1").is_none());

    for (class, needle) in [
        ("WebcamCapture", "WEBCAM widget"),
        ("LoadAudio", "audio_upload"),
        ("LoadImageOutput", "loads its options from the server"),
    ] {
        let g = ui(&[(1, class, json!([]), json!([]), json!([]))], json!([]));
        let e = convert_err(&g);
        assert!(e.contains(needle) && e.contains("Export (API)"), "{e}");
    }
    let g = ui(
        &[(1, "workflow>Upscale", json!([]), json!([]), json!([]))],
        json!([]),
    );
    assert!(convert_err(&g).contains("is a group node"));
}

#[test]
fn a_server_without_input_order_cannot_name_widgets() {
    let info = ObjectInfo::from_value(&json!({"SaveImage": {"input": {"required": {
        "images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}}}}));
    let e = to_api(&ui(&[save_image(1, None)], json!([])), &info)
        .expect_err("no input_order")
        .to_string();
    assert!(e.contains("no input_order for SaveImage"), "{e}");
}

#[test]
fn linked_inputs_the_server_does_not_have_are_refused() {
    let mut g = ui(
        &[empty_image(1, 1), save_image(2, Some(1))],
        json!([[1, 1, 0, 2, 0, "IMAGE"]]),
    );
    g["nodes"][1]["inputs"][0]["name"] = json!("pictures");
    let e = convert_err(&g);
    assert!(
        e.contains("input \"pictures\" is linked, but SaveImage"),
        "{e}"
    );
}

#[test]
fn not_a_ui_workflow() {
    let e = to_api(&shipped("sdxl"), &info()).expect_err("API format");
    assert!(e.to_string().contains("not a UI-format workflow"));
}

// ------------------------------------------------------------ frontend replacements

#[test]
fn dynamic_prompts_are_resolved_as_the_frontend_does_or_refused() {
    assert_eq!(
        dynamic_prompt("a cat // a dog\non a mat"),
        Ok("a cat \non a mat".into())
    );
    assert_eq!(dynamic_prompt("a /* big */cat"), Ok("a cat".into()));
    assert_eq!(
        dynamic_prompt("an /* open comment"),
        Ok("an /* open comment".into())
    );
    assert_eq!(
        dynamic_prompt("{masterpiece}, cat"),
        Ok("masterpiece, cat".into())
    );
    assert_eq!(dynamic_prompt(r"a \{b\} \| c"), Ok("a {b} | c".into()));
    assert_eq!(dynamic_prompt("{x|x}"), Ok("x".into()));
    assert_eq!(dynamic_prompt("a {red|blue} car"), Err(()));
    assert_eq!(dynamic_prompt("{{a|b}}"), Err(()));
    assert_eq!(
        dynamic_prompt("trailing \\"),
        Ok("trailing \\undefined".into())
    );

    let mut g = fixture("sdxl");
    g["nodes"][2]["widgets_values"] = json!(["blurry // keep it short"]);
    assert_eq!(convert(&g)["7"]["inputs"]["text"], "blurry ");
    g["nodes"][2]["widgets_values"] = json!(["{blurry|grainy}"]);
    let e = convert_err(&g);
    assert!(
        e.starts_with("node 7 (CLIPTextEncode \"Negative Prompt\"): input \"text\" has a {a|b}"),
        "{e}"
    );
}

#[test]
fn filename_prefix_replacements_the_frontend_makes_are_refused() {
    let with_prefix = |prefix: &str| {
        let mut g = fixture("sdxl");
        let save = g["nodes"]
            .as_array_mut()
            .expect("nodes")
            .iter_mut()
            .find(|n| n["type"] == "SaveImage")
            .expect("SaveImage");
        save["widgets_values"] = json!([prefix]);
        g
    };
    for ok in [
        "out/%width%x%height%",
        "100%",
        "%year%-%month%",
        "%nothing.here%",
    ] {
        assert_eq!(
            convert(&with_prefix(ok))["9"]["inputs"]["filename_prefix"],
            ok
        );
    }
    for refused in [
        "%date:yyyy-MM-dd%/x",
        "run_%KSampler.seed%",
        "%Positive Prompt.text%",
    ] {
        let e = convert_err(&with_prefix(refused));
        assert!(e.contains("fills in when it queues"), "{refused}: {e}");
    }
    assert_eq!(percent_patterns("%%a%b%c%"), ["a", "c"]);
}

// ------------------------------------------------------------ images

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = u32::try_from(data.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    c.extend_from_slice(&body);
    c.extend_from_slice(&crc32(&body).to_be_bytes());
    c
}

fn tiny_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(1, 1)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A real PNG with `chunks` after its header, as Pillow puts ComfyUI's text chunks.
fn png_with(chunks: &[Vec<u8>]) -> Vec<u8> {
    let png = tiny_png();
    let header_end = 8 + 8 + 13 + 4;
    let mut out = png[..header_end].to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&png[header_end..]);
    image::load_from_memory(&out).expect("still a valid PNG");
    out
}

fn text(key: &str, value: &str) -> Vec<u8> {
    let mut data = key.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(value.as_bytes());
    chunk(b"tEXt", &data)
}

fn itext(key: &str, value: &str) -> Vec<u8> {
    let mut data = key.as_bytes().to_vec();
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(value.as_bytes());
    chunk(b"iTXt", &data)
}

#[test]
fn a_comfyui_png_gives_its_prompt_else_its_workflow() {
    let prompt = shipped("sdxl").to_string();
    let workflow = fixture("sdxl").to_string();
    let png = png_with(&[text("prompt", &prompt), text("workflow", &workflow)]);
    assert_eq!(workflow_from_png(&png), Some(shipped("sdxl")));

    let png = png_with(&[text("workflow", &workflow)]);
    let got = workflow_from_png(&png).expect("workflow");
    assert!(is_ui_format(&got));
    assert_converts_to("png", &convert(&got), &shipped("sdxl"));

    // Pillow writes text Latin-1 can't hold as iTXt.
    let mut api = shipped("sdxl");
    api["6"]["inputs"]["text"] = json!("灯台 🌅");
    let png = png_with(&[itext("prompt", &api.to_string())]);
    assert_eq!(workflow_from_png(&png), Some(api));

    let png = png_with(&[text("parameters", "a cat, Steps: 20")]);
    assert_eq!(workflow_from_png(&png), None);
    assert_eq!(workflow_from_png(b"not an image"), None);
    let mut cut = png_with(&[text("prompt", &prompt)]);
    cut.truncate(60);
    assert_eq!(workflow_from_png(&cut), None);
}

/// A TIFF block with `strings` as ASCII entries of its first IFD, like Pillow's EXIF.
fn exif(strings: &[(u16, &str)]) -> Vec<u8> {
    let mut out = b"Exif\0\0II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    let count = u16::try_from(strings.len()).expect("count");
    out.extend_from_slice(&count.to_le_bytes());
    let mut data_at = 8 + 2 + 12 * strings.len() + 4;
    let mut data = Vec::new();
    for (tag, s) in strings {
        let len = s.len() + 1;
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&u32::try_from(len).expect("len").to_le_bytes());
        out.extend_from_slice(&u32::try_from(data_at).expect("offset").to_le_bytes());
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        data_at += len;
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(&u32::try_from(data.len()).expect("len").to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// A real extended WebP (VP8X) with an EXIF chunk, as SaveAnimatedWEBP writes.
fn webp_with(exif_block: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbaImage::new(1, 1)
        .write_to(&mut out, image::ImageFormat::WebP)
        .expect("encode webp");
    let simple = out.into_inner();
    let mut vp8x = vec![0x08, 0, 0, 0];
    vp8x.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend_from_slice(&simple[12..]);
    body.extend(riff_chunk(b"EXIF", exif_block));
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&u32::try_from(body.len()).expect("len").to_le_bytes());
    file.extend(body);
    image::load_from_memory(&file).expect("still a valid WebP");
    file
}

#[test]
fn a_comfyui_webp_gives_its_prompt_else_its_workflow() {
    let prompt = format!("prompt:{}", shipped("sdxl"));
    let workflow = format!("workflow:{}", fixture("sdxl"));
    let webp = webp_with(&exif(&[(0x010f, &workflow), (0x0110, &prompt)]));
    assert_eq!(workflow_from_png(&webp), Some(shipped("sdxl")));
    let webp = webp_with(&exif(&[(0x010f, &format!("Workflow:{}", fixture("sdxl")))]));
    assert_eq!(workflow_from_png(&webp), Some(fixture("sdxl")));
    let webp = webp_with(&exif(&[(0x010f, "Make")]));
    assert_eq!(workflow_from_png(&webp), None);
}

#[test]
fn hostile_input_does_not_panic() {
    let graphs = [
        json!({"nodes": [1, "x", null, []], "links": []}),
        json!({"nodes": [{"id": 1}], "links": []}),
        json!({"nodes": [{"id": 1.5, "type": "SaveImage"}], "links": []}),
        json!({"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"link": "x"}]}], "links": []}),
        json!({"nodes": [{"id": 1, "type": "SaveImage"}, {"id": 1, "type": "SaveImage"}],
               "links": []}),
        json!({"nodes": [], "links": [[1], {"id": "a"}, 7]}),
        json!({"nodes": [{"id": 1, "type": "SaveImage", "mode": 4,
                          "outputs": [{"type": "IMAGE"}]},
                         {"id": 2, "type": "SaveImage", "inputs": [{"name": "images",
                          "type": "IMAGE", "link": 1}], "widgets_values": ["x"]}],
               "links": [[1, 1, -3, 2, 0, "IMAGE"]]}),
        json!({"nodes": [{"id": 1, "type": "Reroute", "inputs": [], "outputs": []},
                         {"id": 2, "type": "SaveImage", "inputs": [{"name": "images",
                          "type": "IMAGE", "link": 1}], "widgets_values": ["x"]}],
               "links": [[1, 1, 99, 2, 0, "IMAGE"]]}),
        json!({"nodes": [{"id": 1, "type": "KSampler", "widgets_values": [[], {}, null]}],
               "links": []}),
    ];
    for g in graphs {
        let _ = to_api(&g, &info());
    }
    let png = png_with(&[text("prompt", "{not json")]);
    for cut in 0..png.len() {
        let _ = workflow_from_png(&png[..cut]);
    }
    let webp = webp_with(&exif(&[(0x0110, "prompt:{}")]));
    for cut in 0..webp.len() {
        let _ = workflow_from_png(&webp[..cut]);
    }
    let mut bad = webp_with(&exif(&[(0x0110, "prompt:{}")]));
    let at = bad.windows(4).position(|w| w == b"EXIF").expect("EXIF") + 8 + 6 + 4;
    bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(workflow_from_png(&bad), None);
}
