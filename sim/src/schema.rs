//! Node schemas: the real `/object_info` of ComfyUI 0.3.64, plus what the
//! simulator changes about it (the bundled SaveImageWebsocket node, and file
//! pickers that list "installed" model files).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

static OBJECT_INFO: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let mut map: Map<String, Value> =
        serde_json::from_str(include_str!("../data/object_info.json")).unwrap_or_default();
    // A custom node shipped in ComfyUI's repo; the capture ran without it.
    map.insert(
        "SaveImageWebsocket".into(),
        json!({
            "input": {"required": {"images": ["IMAGE"]}},
            "input_order": {"required": ["images"]},
            "output": [], "output_is_list": [], "output_name": [],
            "name": "SaveImageWebsocket", "display_name": "SaveImageWebsocket",
            "description": "", "python_module": "custom_nodes.websocket_image_save",
            "category": "api node/image/websocket", "output_node": true
        }),
    );
    map
});

/// Model files the simulator pretends to have installed, besides any name a
/// prompt has used.
pub(crate) const DEMO_MODELS: &[&str] = &[
    "ae.safetensors",
    "qwen_3_4b.safetensors",
    "sd_xl_base_1.0.safetensors",
    "v1-5-pruned-emaonly.safetensors",
    "z_image_turbo_bf16.safetensors",
];

pub(crate) fn class(name: &str) -> Option<&'static Value> {
    OBJECT_INFO.get(name)
}

pub(crate) fn is_output_node(class_type: &str) -> bool {
    class(class_type)
        .and_then(|c| c.get("output_node"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub(crate) fn return_types(class_type: &str) -> Vec<String> {
    class(class_type)
        .and_then(|c| c.get("output"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| match t {
                    Value::String(s) => s.clone(),
                    _ => "COMBO".to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) struct InputSpec {
    pub name: String,
    pub required: bool,
    /// The spec array exactly as `/object_info` shows it.
    pub config: Value,
}

/// Required then optional inputs, in `input_order`.
pub(crate) fn inputs(class_type: &str) -> Vec<InputSpec> {
    let mut out = Vec::new();
    let Some(c) = class(class_type) else {
        return out;
    };
    for (cat, required) in [("required", true), ("optional", false)] {
        let Some(specs) = c
            .pointer(&format!("/input/{cat}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let order: Vec<String> = c
            .pointer(&format!("/input_order/{cat}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| specs.keys().cloned().collect());
        for name in order {
            if let Some(config) = specs.get(&name) {
                out.push(InputSpec {
                    name,
                    required,
                    config: config.clone(),
                });
            }
        }
    }
    out
}

/// Type of an input spec: a type name, or `COMBO` for either combo encoding.
pub(crate) fn spec_type(config: &Value) -> String {
    match config.get(0) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(_)) => "COMBO".to_string(),
        _ => "*".to_string(),
    }
}

pub(crate) fn spec_options(config: &Value) -> Map<String, Value> {
    config
        .get(1)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn combo_options(config: &Value) -> Option<Vec<Value>> {
    match config.get(0) {
        Some(Value::Array(a)) => Some(a.clone()),
        Some(Value::String(s)) if s == "COMBO" => Some(
            config
                .get(1)
                .and_then(|o| o.get("options"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// File pickers list a models folder. The capture had no model files, so their
/// lists are empty; the simulator instead has "every model installed".
pub(crate) fn is_model_picker(class_type: &str, input: &str, config: &Value) -> bool {
    let named = input.ends_with("_name")
        && !matches!(
            input,
            "sampler_name" | "scheduler_name" | "control_after_generate"
        );
    let empty = combo_options(config).is_some_and(|o| o.is_empty());
    (empty || (named && class_type.contains("Loader"))) && combo_options(config).is_some()
}

/// What one server has installed. The default is the demo's "everything": every node of
/// ComfyUI 0.3.64 and any model file a prompt names.
#[derive(Clone, Debug, Default)]
pub(crate) struct Installed {
    /// `None`: any model file name is accepted (and listed from then on), so demo workflows
    /// run whatever checkpoint they name. `Some`: the files of a real server's model folders.
    pub model_files: Option<BTreeSet<String>>,
    pub missing_nodes: BTreeSet<String>,
}

impl Installed {
    pub(crate) fn has_class(&self, name: &str) -> bool {
        class(name).is_some() && !self.missing_nodes.contains(name)
    }
}

fn is_upload(config: &Value) -> bool {
    config
        .get(1)
        .and_then(|o| o.get("image_upload"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// What a model picker lists given these files. The capture's own entries stay, because
/// ComfyUI adds them whatever the folders hold (VAELoader's `pixel_space`, the checkpoint
/// configs it ships).
pub(crate) fn model_options(config: &Value, files: &BTreeSet<String>) -> Vec<String> {
    let mut l = files.clone();
    if let Some(existing) = combo_options(config) {
        l.extend(existing.iter().filter_map(|v| v.as_str().map(String::from)));
    }
    l.into_iter().collect()
}

/// Replaces a combo's list in whichever of the two encodings the spec uses.
pub(crate) fn set_options(config: &mut Value, list: Vec<String>) {
    let Some(arr) = config.as_array_mut() else {
        return;
    };
    if matches!(arr.first(), Some(Value::Array(_))) {
        arr[0] = json!(list);
    } else if let Some(opts) = arr.get_mut(1).and_then(Value::as_object_mut) {
        opts.insert("options".into(), json!(list));
    }
}

/// `/object_info` as this simulator reports it.
pub(crate) fn object_info(
    input_files: &[String],
    seen_models: &BTreeSet<String>,
    installed: &Installed,
) -> Map<String, Value> {
    let mut map = OBJECT_INFO.clone();
    map.retain(|class_type, _| !installed.missing_nodes.contains(class_type));
    let models: BTreeSet<String> = match &installed.model_files {
        Some(files) => files.clone(),
        None => DEMO_MODELS
            .iter()
            .map(|s| s.to_string())
            .chain(seen_models.iter().cloned())
            .collect(),
    };
    for (class_type, info) in map.iter_mut() {
        for cat in ["required", "optional"] {
            let Some(specs) = info
                .pointer_mut(&format!("/input/{cat}"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (name, config) in specs.iter_mut() {
                let list = if is_upload(config) {
                    input_files.to_vec()
                } else if is_model_picker(class_type, name, config) {
                    model_options(config, &models)
                } else {
                    continue;
                };
                set_options(config, list);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_the_nodes_the_simulator_runs() {
        for c in [
            "EmptyImage",
            "ImageAddNoise",
            "ImageInvert",
            "ImageBlend",
            "ImageScale",
            "ImageScaleBy",
            "ImageBlur",
            "ImageToMask",
            "MaskPreview",
            "PreviewImage",
            "SaveImage",
            "LoadImage",
            "GetImageSize",
            "PreviewAny",
            "PrimitiveString",
            "PrimitiveStringMultiline",
            "PrimitiveInt",
            "PrimitiveFloat",
            "StringConcatenate",
            "SaveImageWebsocket",
            "CheckpointLoaderSimple",
            "UNETLoader",
            "CLIPLoader",
            "VAELoader",
            "ModelSamplingAuraFlow",
            "ModelSamplingSD3",
            "CLIPTextEncode",
            "ConditioningZeroOut",
            "EmptyLatentImage",
            "EmptySD3LatentImage",
            "KSampler",
            "KSamplerAdvanced",
            "SamplerCustomAdvanced",
            "RandomNoise",
            "BasicGuider",
            "CFGGuider",
            "KSamplerSelect",
            "BasicScheduler",
            "VAEDecode",
            "VAEEncode",
            "VAEEncodeForInpaint",
            "SetLatentNoiseMask",
            "LoraLoader",
        ] {
            assert!(class(c).is_some(), "{c} missing");
        }
        assert!(is_output_node("SaveImageWebsocket"));
        assert!(!is_output_node("EmptyImage"));
        assert_eq!(
            return_types("CheckpointLoaderSimple"),
            ["MODEL", "CLIP", "VAE"]
        );
    }

    #[test]
    fn pickers_list_demo_models_and_uploads() {
        let seen: BTreeSet<String> = ["mine.safetensors".to_string()].into();
        let info = object_info(&["a.png".into()], &seen, &Installed::default());
        let ckpt = &info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0];
        assert!(
            ckpt.as_array()
                .unwrap()
                .contains(&json!("mine.safetensors"))
        );
        assert!(
            ckpt.as_array()
                .unwrap()
                .contains(&json!("sd_xl_base_1.0.safetensors"))
        );
        assert_eq!(
            info["LoadImage"]["input"]["required"]["image"][0],
            json!(["a.png"])
        );
        let sampler = &info["KSampler"]["input"]["required"]["sampler_name"][0];
        assert!(sampler.as_array().unwrap().contains(&json!("euler")));
        assert!(
            !sampler
                .as_array()
                .unwrap()
                .contains(&json!("ae.safetensors"))
        );
    }
}
