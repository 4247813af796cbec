//! A server's node classes and what each input accepts, as its `/object_info` lists them: the
//! ground truth for whether a workflow can run there (its node types exist, its model files
//! are installed, its values are in range).

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

/// What one server can run.
#[derive(Debug, Default)]
pub struct ObjectInfo {
    classes: HashMap<String, NodeSchema>,
}

#[derive(Debug, Default)]
pub struct NodeSchema {
    pub inputs: HashMap<String, InputSpec>,
    /// Inputs without which the node does not run.
    pub required: Vec<String>,
    /// Every input, the required ones first, in the server's `input_order`; `None` when the
    /// server sends none (older ComfyUI), as the parsed JSON does not keep its key order.
    /// ComfyUI's frontend lays out a node's widgets in this order.
    pub order: Option<Vec<String>>,
    /// Each input's spec as sent (`["INT", {"min": 0, …}]`): the options `InputSpec` drops
    /// (`control_after_generate`, `forceInput`, `image_upload`, …) decide a node's widgets.
    pub specs: HashMap<String, Value>,
    /// The name ComfyUI's menus show (`display_name`), a node's title unless it was renamed.
    pub display_name: Option<String>,
}

/// Where a node class's schema is looked up: one server's `/object_info`, or several servers'
/// (the first that has the class), as converting a UI-format workflow needs only the widget
/// order, which every server with the class agrees on.
pub trait NodeClasses {
    fn class(&self, name: &str) -> Option<&NodeSchema>;
}

impl NodeClasses for ObjectInfo {
    fn class(&self, name: &str) -> Option<&NodeSchema> {
        self.classes.get(name)
    }
}

impl NodeClasses for Vec<Arc<ObjectInfo>> {
    fn class(&self, name: &str) -> Option<&NodeSchema> {
        self.iter().find_map(|info| info.classes.get(name))
    }
}

/// What an input accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// One of these values (samplers, schedulers, model files, …).
    Combo(Vec<Value>),
    Int {
        min: Option<f64>,
        max: Option<f64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    String,
    Boolean,
    /// A link type (`MODEL`, `LATENT`, …) or one this bridge does not check.
    Other,
}

impl ObjectInfo {
    /// Reads `/object_info`'s body. Classes or inputs in shapes it does not know are kept as
    /// unchecked rather than refused: a newer ComfyUI must not make every model unavailable.
    pub fn parse(body: &Value) -> ObjectInfo {
        let Some(map) = body.as_object() else {
            return ObjectInfo::default();
        };
        let classes = map
            .iter()
            .map(|(name, info)| {
                let mut schema = NodeSchema::default();
                let mut order = Vec::new();
                for section in ["required", "optional"] {
                    let Some(inputs) = info["input"][section].as_object() else {
                        continue;
                    };
                    for (input, spec) in inputs {
                        schema.inputs.insert(input.clone(), InputSpec::parse(spec));
                        schema.specs.insert(input.clone(), spec.clone());
                        if section == "required" {
                            schema.required.push(input.clone());
                        }
                    }
                    let listed = info["input_order"][section].as_array();
                    let listed: Vec<&str> = listed
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .filter(|n| inputs.contains_key(*n))
                        .collect();
                    order.extend(listed.iter().map(|n| n.to_string()));
                    // The frontend puts inputs missing from `input_order` last; their JSON key
                    // order is lost here, so name order stands in for it.
                    order.extend(
                        inputs
                            .keys()
                            .filter(|n| !listed.contains(&n.as_str()))
                            .cloned(),
                    );
                }
                if info["input_order"].is_object() {
                    schema.order = Some(order);
                }
                schema.display_name = info["display_name"].as_str().map(str::to_owned);
                (name.clone(), schema)
            })
            .collect();
        ObjectInfo { classes }
    }

    pub fn class(&self, name: &str) -> Option<&NodeSchema> {
        self.classes.get(name)
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

impl InputSpec {
    /// One input's spec: `["INT", {"min": 1}]`, `[["a", "b"], {…}]` (a combo, as ComfyUI 0.3
    /// writes it) or `["COMBO", {"options": ["a", "b"]}]` (as newer versions do).
    fn parse(spec: &Value) -> InputSpec {
        let options = &spec[1];
        let bound = |key: &str| options[key].as_f64();
        match &spec[0] {
            Value::Array(values) => InputSpec::Combo(values.clone()),
            Value::String(kind) => match kind.as_str() {
                "COMBO" => {
                    InputSpec::Combo(options["options"].as_array().cloned().unwrap_or_default())
                }
                "INT" => InputSpec::Int {
                    min: bound("min"),
                    max: bound("max"),
                },
                "FLOAT" => InputSpec::Float {
                    min: bound("min"),
                    max: bound("max"),
                },
                "STRING" => InputSpec::String,
                "BOOLEAN" => InputSpec::Boolean,
                _ => InputSpec::Other,
            },
            _ => InputSpec::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_every_spec_shape() {
        let info = ObjectInfo::parse(&json!({
            "CheckpointLoaderSimple": {"input": {"required": {
                "ckpt_name": [["a.safetensors", "b.safetensors"], {"tooltip": "…"}]}}},
            "KSampler": {"input": {"required": {
                "model": ["MODEL", {}],
                "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615u64}],
                "cfg": ["FLOAT", {"min": 0.0, "max": 100.0, "step": 0.1}],
                "sampler_name": ["COMBO", {"options": ["euler", "dpmpp_2m"]}]},
                "optional": {"flag": ["BOOLEAN", {}], "note": ["STRING", {"multiline": true}]}}},
            "Odd": {"input": "not an object"}
        }));
        assert_eq!(info.len(), 3);
        let ckpt = &info.class("CheckpointLoaderSimple").unwrap().inputs["ckpt_name"];
        assert_eq!(
            ckpt,
            &InputSpec::Combo(vec![json!("a.safetensors"), json!("b.safetensors")])
        );
        let sampler = info.class("KSampler").unwrap();
        assert_eq!(sampler.inputs["model"], InputSpec::Other);
        assert_eq!(
            sampler.inputs["cfg"],
            InputSpec::Float {
                min: Some(0.0),
                max: Some(100.0)
            }
        );
        assert_eq!(
            sampler.inputs["sampler_name"],
            InputSpec::Combo(vec![json!("euler"), json!("dpmpp_2m")])
        );
        assert_eq!(sampler.inputs["flag"], InputSpec::Boolean);
        assert_eq!(sampler.required.len(), 4);
        assert!(info.class("Odd").unwrap().inputs.is_empty());
        assert!(info.class("Missing").is_none());
    }

    #[test]
    fn keeps_input_order_display_name_and_raw_specs() {
        let info = ObjectInfo::parse(&json!({
            "CLIPLoader": {
                "input": {"required": {"type": [["sd3", "lumina2"]], "clip_name": [[]]},
                          "optional": {"device": [["default", "cpu"], {"advanced": true}]}},
                "input_order": {"required": ["clip_name", "type"], "optional": ["device"]},
                "display_name": "Load CLIP"},
            "Old": {"input": {"required": {"b": ["INT"], "a": ["INT"]}}, "display_name": null}
        }));
        let clip = info.class("CLIPLoader").unwrap();
        let order: Vec<&str> = clip.order.iter().flatten().map(String::as_str).collect();
        assert_eq!(order, ["clip_name", "type", "device"]);
        assert_eq!(clip.display_name.as_deref(), Some("Load CLIP"));
        assert_eq!(clip.specs["device"][1]["advanced"], json!(true));
        let old = info.class("Old").unwrap();
        assert_eq!(old.order, None);
        assert_eq!(old.display_name, None);
    }

    #[test]
    fn a_real_servers_object_info_parses() {
        let real: Value =
            serde_json::from_str(include_str!("../templates/testdata/node_schemas.json")).unwrap();
        let info = ObjectInfo::parse(&real);
        assert!(!info.is_empty());
        let ksampler = info.class("KSampler").expect("KSampler");
        assert!(matches!(
            ksampler.inputs["steps"],
            InputSpec::Int { min: Some(_), .. }
        ));
    }
}
