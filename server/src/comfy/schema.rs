//! A server's node classes and what each input accepts, as its `/object_info` lists them: the
//! ground truth for whether a workflow can run there (its node types exist, its model files
//! are installed, its values are in range).

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::{Value, value::RawValue};

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
    /// Each input's spec as sent (`["INT", {"min": 0, …}]`), kept as text and read through
    /// [`NodeSchema::spec`]: the options `InputSpec` drops (`control_after_generate`,
    /// `forceInput`, `image_upload`, …) decide a node's widgets, which only importing a
    /// UI-format workflow asks for.
    specs: HashMap<String, Box<RawValue>>,
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
    ///
    /// A server with many custom nodes lists megabytes of schemas, mostly descriptions and
    /// outputs the bridge never reads. So the body is never built into one JSON tree: each
    /// class's parts are found in the text and only the inputs are parsed, one at a time.
    /// Parsing the whole tree held about twenty times the body's size at once.
    pub fn from_json(body: &str) -> Result<ObjectInfo, serde_json::Error> {
        let map: HashMap<Cow<'_, str>, &RawValue> = match serde_json::from_str(body) {
            Ok(map) => map,
            Err(e) if e.is_data() => return Ok(ObjectInfo::default()),
            Err(e) => return Err(e),
        };
        let classes = map
            .into_iter()
            .map(|(name, info)| (name.into_owned(), NodeSchema::from_json(info)))
            .collect();
        Ok(ObjectInfo { classes })
    }

    /// The same from a JSON value, for tests that write their schemas with `json!`.
    #[cfg(test)]
    pub fn from_value(body: &Value) -> ObjectInfo {
        ObjectInfo::from_json(&body.to_string()).expect("a JSON value's text parses")
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

/// One class's entry, as raw parts: each is parsed only as far as it is read.
#[derive(Deserialize)]
struct ClassParts<'a> {
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input_order: Option<&'a RawValue>,
    #[serde(borrow, default)]
    display_name: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SectionParts<'a> {
    #[serde(borrow, default)]
    required: Option<&'a RawValue>,
    #[serde(borrow, default)]
    optional: Option<&'a RawValue>,
}

/// `raw` read as `T`, or `None` where it has another shape.
fn lenient<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

impl NodeSchema {
    fn from_json(info: &RawValue) -> NodeSchema {
        let mut schema = NodeSchema::default();
        let Some(parts) = lenient::<ClassParts>(Some(info)) else {
            return schema;
        };
        let sections = lenient::<SectionParts>(parts.input);
        let listed_order = lenient::<HashMap<Cow<'_, str>, Value>>(parts.input_order);
        let mut order = Vec::new();
        for section in ["required", "optional"] {
            let raw = sections.as_ref().and_then(|s| match section {
                "required" => s.required,
                _ => s.optional,
            });
            // Name order, as the frontend's own fallback for inputs missing from `input_order`.
            let Some(inputs) = lenient::<BTreeMap<Cow<'_, str>, &RawValue>>(raw) else {
                continue;
            };
            for (input, spec) in &inputs {
                let parsed: Value = serde_json::from_str(spec.get()).unwrap_or(Value::Null);
                schema
                    .inputs
                    .insert(input.to_string(), InputSpec::parse(&parsed));
                schema.specs.insert(input.to_string(), (*spec).to_owned());
                if section == "required" {
                    schema.required.push(input.to_string());
                }
            }
            let listed: Vec<&str> = listed_order
                .as_ref()
                .and_then(|o| o.get(section))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|n| inputs.contains_key(*n))
                .collect();
            order.extend(listed.iter().map(|n| n.to_string()));
            order.extend(
                inputs
                    .keys()
                    .filter(|n| !listed.contains(&n.as_ref()))
                    .map(|n| n.to_string()),
            );
        }
        if listed_order.is_some() {
            schema.order = Some(order);
        }
        schema.display_name = lenient::<Option<String>>(parts.display_name).flatten();
        schema
    }

    /// An input's spec as the server sent it (`["INT", {"min": 0, …}]`); null when the class
    /// has no such input.
    pub fn spec(&self, input: &str) -> Value {
        self.specs
            .get(input)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or(Value::Null)
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
        let info = ObjectInfo::from_value(&json!({
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
    fn odd_shapes_leave_only_their_own_part_unchecked() {
        let info = ObjectInfo::from_value(&json!({
            "Half": {"input": {"required": "not an object", "optional": {"a\"b": ["INT", {}]}},
                     "input_order": ["not", "an", "object"], "display_name": 7},
            "Empty": {},
            "Text": "a class that is no object"
        }));
        let half = info.class("Half").unwrap();
        assert_eq!(
            half.inputs["a\"b"],
            InputSpec::Int {
                min: None,
                max: None
            }
        );
        assert!(half.required.is_empty());
        assert_eq!(
            (half.order.clone(), half.display_name.clone()),
            (None, None)
        );
        assert!(info.class("Empty").unwrap().inputs.is_empty());
        assert!(info.class("Text").unwrap().inputs.is_empty());
        assert!(ObjectInfo::from_json("[1, 2]").unwrap().is_empty());
        assert!(ObjectInfo::from_json("{\"cut\": ").is_err());
    }

    #[test]
    fn keeps_input_order_display_name_and_raw_specs() {
        let info = ObjectInfo::from_value(&json!({
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
        assert_eq!(clip.spec("device")[1]["advanced"], json!(true));
        let old = info.class("Old").unwrap();
        assert_eq!(old.order, None);
        assert_eq!(old.display_name, None);
    }

    #[test]
    fn a_real_servers_object_info_parses() {
        let info =
            ObjectInfo::from_json(include_str!("../templates/testdata/node_schemas.json")).unwrap();
        assert!(!info.is_empty());
        let ksampler = info.class("KSampler").expect("KSampler");
        assert!(matches!(
            ksampler.inputs["steps"],
            InputSpec::Int { min: Some(_), .. }
        ));
    }
}
