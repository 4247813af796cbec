//! `POST /prompt` validation, following `execution.validate_prompt` and
//! `validate_inputs` of ComfyUI 0.3.64 (error types, messages, and the in-place
//! coercion of widget values).

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use crate::schema;

pub(crate) struct Accepted {
    pub prompt: Map<String, Value>,
    pub outputs: Vec<String>,
    pub node_errors: Map<String, Value>,
    /// Model file names the prompt used, so `/object_info` can list them when the server
    /// accepts any name.
    pub models: BTreeSet<String>,
}

pub(crate) struct Rejected {
    pub error: Value,
    pub node_errors: Map<String, Value>,
}

impl Rejected {
    pub(crate) fn body(&self) -> Value {
        json!({"error": self.error, "node_errors": self.node_errors})
    }
}

fn top_error(kind: &str, message: &str, details: &str) -> Rejected {
    Rejected {
        error: json!({"type": kind, "message": message, "details": details, "extra_info": {}}),
        node_errors: Map::new(),
    }
}

/// A Python exception escaping `validate_inputs`.
struct Raised {
    kind: &'static str,
    message: String,
}

type Verdict = (bool, Vec<Value>);

struct Validator<'a> {
    prompt: &'a mut Map<String, Value>,
    file_exists: &'a dyn Fn(&str) -> bool,
    installed: &'a schema::Installed,
    validated: Vec<(String, Verdict)>,
    index: HashMap<String, usize>,
    models: BTreeSet<String>,
}

const FAKE_TRACEBACK: &str = "  File \"/sim/ComfyUI/execution.py\", line 1101, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n";

/// Sort node ids the way people number them (2 before 10).
pub(crate) fn id_order(a: &String, b: &String) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

pub(crate) fn validate(
    prompt: &Map<String, Value>,
    partial_targets: Option<&[String]>,
    file_exists: &dyn Fn(&str) -> bool,
    installed: &schema::Installed,
) -> Result<Accepted, Rejected> {
    let mut prompt = prompt.clone();
    let mut outputs: Vec<String> = Vec::new();
    for (id, node) in prompt.iter() {
        let Some(class_type) = node.get("class_type") else {
            return Err(top_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                &format!("Node ID '#{id}'"),
            ));
        };
        let class_name = py_str(class_type);
        if !installed.has_class(&class_name) {
            return Err(top_error(
                "invalid_prompt",
                &format!("Cannot execute because node {class_name} does not exist."),
                &format!("Node ID '#{id}'"),
            ));
        }
        if schema::is_output_node(&class_name) && partial_targets.is_none_or(|t| t.contains(id)) {
            outputs.push(id.clone());
        }
    }
    if outputs.is_empty() {
        return Err(top_error("prompt_no_outputs", "Prompt has no outputs", ""));
    }
    outputs.sort_by(id_order);

    let mut v = Validator {
        prompt: &mut prompt,
        file_exists,
        installed,
        validated: Vec::new(),
        index: HashMap::new(),
        models: BTreeSet::new(),
    };
    let mut good = Vec::new();
    let mut failed_output_errors: Vec<Value> = Vec::new();
    let mut node_errors = Map::new();
    for o in &outputs {
        let (ok, reasons) = match v.validate_inputs(o) {
            Ok(r) => r,
            Err(ex) => {
                let reasons = vec![json!({
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": ex.message,
                    "extra_info": {"exception_type": ex.kind, "traceback": [FAKE_TRACEBACK]},
                })];
                v.record(o, (false, reasons.clone()));
                (false, reasons)
            }
        };
        if ok {
            good.push(o.clone());
            continue;
        }
        failed_output_errors.extend(reasons);
        for (node_id, (valid, reasons)) in &v.validated {
            if *valid || reasons.is_empty() {
                continue;
            }
            let entry = node_errors.entry(node_id.clone()).or_insert_with(|| {
                let class_type = v
                    .prompt
                    .get(node_id)
                    .and_then(|n| n.get("class_type"))
                    .cloned();
                json!({"errors": reasons, "dependent_outputs": [], "class_type": class_type})
            });
            if let Some(deps) = entry
                .get_mut("dependent_outputs")
                .and_then(Value::as_array_mut)
            {
                deps.push(json!(o));
            }
        }
    }
    let models = std::mem::take(&mut v.models);
    if good.is_empty() {
        let details: Vec<String> = failed_output_errors
            .iter()
            .map(|e| format!("{}: {}", py_str(&e["message"]), py_str(&e["details"])))
            .collect();
        return Err(Rejected {
            error: json!({
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": details.join("\n"),
                "extra_info": {},
            }),
            node_errors,
        });
    }
    Ok(Accepted {
        prompt,
        outputs: good,
        node_errors,
        models,
    })
}

impl Validator<'_> {
    fn record(&mut self, id: &str, verdict: Verdict) {
        if let Some(i) = self.index.get(id) {
            self.validated[*i].1 = verdict;
        } else {
            self.index.insert(id.to_string(), self.validated.len());
            self.validated.push((id.to_string(), verdict));
        }
    }

    fn validate_inputs(&mut self, id: &str) -> Result<Verdict, Raised> {
        if let Some(i) = self.index.get(id) {
            return Ok(self.validated[*i].1.clone());
        }
        let node = self.prompt.get(id).cloned().unwrap_or(Value::Null);
        let class_type = py_str(&node["class_type"]);
        let mut inputs = node
            .get("inputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut errors = Vec::new();
        let mut valid = true;
        for spec in schema::inputs(&class_type) {
            let x = spec.name.as_str();
            let mut info = spec.config.clone();
            let Some(val) = inputs.get(x).cloned() else {
                if spec.required {
                    errors.push(json!({"type": "required_input_missing", "message": "Required input is missing",
                        "details": x, "extra_info": {"input_name": x}}));
                }
                continue;
            };
            let input_type = schema::spec_type(&info);
            if let Value::Array(link) = &val {
                if link.len() != 2 {
                    errors.push(json!({"type": "bad_linked_input",
                        "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                        "details": x, "extra_info": {"input_name": x, "input_config": info, "received_value": val}}));
                    continue;
                }
                let o_id = match &link[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let Some(o_node) = self.prompt.get(&o_id).filter(|_| link[0].is_string()) else {
                    return Err(Raised {
                        kind: "KeyError",
                        message: match &link[0] {
                            Value::String(s) => format!("'{s}'"),
                            other => other.to_string(),
                        },
                    });
                };
                let o_class = py_str(&o_node["class_type"]);
                let returns = schema::return_types(&o_class);
                let slot = link[1].as_u64().ok_or_else(|| Raised {
                    kind: "TypeError",
                    message: "tuple indices must be integers or slices, not str".into(),
                })?;
                let received_type = returns.get(slot as usize).cloned().ok_or_else(|| Raised {
                    kind: "IndexError",
                    message: "tuple index out of range".into(),
                })?;
                if !types_match(&received_type, &input_type) {
                    errors.push(json!({"type": "return_type_mismatch",
                        "message": "Return type mismatch between linked nodes",
                        "details": format!("{x}, received_type({received_type}) mismatch input_type({input_type})"),
                        "extra_info": {"input_name": x, "input_config": info, "received_type": received_type,
                                       "linked_node": val}}));
                    continue;
                }
                match self.validate_inputs(&o_id) {
                    Ok((ok, _)) => {
                        if !ok {
                            valid = false;
                        }
                    }
                    Err(ex) => {
                        valid = false;
                        let reasons = vec![json!({"type": "exception_during_inner_validation",
                            "message": "Exception when validating inner node", "details": ex.message,
                            "extra_info": {"input_name": x, "input_config": info, "exception_message": ex.message,
                                           "exception_type": ex.kind, "traceback": [FAKE_TRACEBACK],
                                           "linked_node": val}})];
                        self.record(&o_id, (false, reasons));
                    }
                }
                continue;
            }
            let mut val = val;
            if let Some(inner) = val.get("__value__").filter(|_| val.is_object()) {
                val = inner.clone();
                inputs.insert(x.to_string(), val.clone());
            }
            let coerced = match input_type.as_str() {
                "INT" => to_int(&val).map(int_value),
                "FLOAT" => to_float(&val).map(float_value),
                "STRING" => Ok(Value::String(py_str(&val))),
                "BOOLEAN" => Ok(Value::Bool(truthy(&val))),
                _ => Ok(val.clone()),
            };
            let val = match coerced {
                Ok(c) => c,
                Err(ex) => {
                    errors.push(json!({"type": "invalid_input_type",
                        "message": format!("Failed to convert an input value to a {input_type} value"),
                        "details": format!("{x}, {}, {ex}", py_str(&val)),
                        "extra_info": {"input_name": x, "input_config": info, "received_value": val,
                                       "exception_message": ex}}));
                    continue;
                }
            };
            inputs.insert(x.to_string(), val.clone());
            let opts = schema::spec_options(&info);
            if let (Some(min), Some(n)) = (opts.get("min"), val.as_number())
                && num_lt(n, min)
            {
                errors.push(json!({"type": "value_smaller_than_min",
                    "message": format!("Value {} smaller than min of {}", py_num(&val), py_num(min)),
                    "details": x, "extra_info": {"input_name": x, "input_config": info, "received_value": val}}));
                continue;
            }
            if let (Some(max), Some(n)) = (opts.get("max"), val.as_number())
                && num_gt(n, max)
            {
                errors.push(json!({"type": "value_bigger_than_max",
                    "message": format!("Value {} bigger than max of {}", py_num(&val), py_num(max)),
                    "details": x, "extra_info": {"input_name": x, "input_config": info, "received_value": val}}));
                continue;
            }
            let is_upload = opts
                .get("image_upload")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if is_upload {
                // LoadImage's VALIDATE_INPUTS replaces the combo check.
                let name = py_str(&val);
                if !(self.file_exists)(&name) {
                    errors.push(json!({"type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": format!("{x} - Invalid image file: {name}"),
                        "extra_info": {"input_name": x, "input_config": info, "received_value": val}}));
                }
                continue;
            }
            if let Some(mut options) = schema::combo_options(&info) {
                if schema::is_model_picker(&class_type, x, &info) {
                    match &self.installed.model_files {
                        None => {
                            if let Some(name) = val.as_str().filter(|s| !s.is_empty()) {
                                self.models.insert(name.to_string());
                                continue;
                            }
                        }
                        // ComfyUI checks against the list `/object_info` shows, so the error's
                        // `input_config` carries the installed files too.
                        Some(files) => {
                            let list = schema::model_options(&info, files);
                            options = list.iter().map(|f| json!(f)).collect();
                            schema::set_options(&mut info, list);
                        }
                    }
                }
                if !options.iter().any(|o| loose_eq(o, &val)) {
                    let (list_info, config) = if options.len() > 20 {
                        (format!("(list of length {})", options.len()), Value::Null)
                    } else {
                        (py_list(&options), info.clone())
                    };
                    errors.push(json!({"type": "value_not_in_list", "message": "Value not in list",
                        "details": format!("{x}: '{}' not in {list_info}", py_str(&val)),
                        "extra_info": {"input_name": x, "input_config": config, "received_value": val}}));
                }
            }
        }
        if let Some(n) = self.prompt.get_mut(id).and_then(Value::as_object_mut) {
            n.insert("inputs".into(), Value::Object(inputs));
        }
        let verdict = (errors.is_empty() && valid, errors);
        self.record(id, verdict.clone());
        Ok(verdict)
    }
}

fn types_match(received: &str, input: &str) -> bool {
    if received == input || received == "*" || input == "*" {
        return true;
    }
    if input == "COMBO" {
        return matches!(received, "COMBO" | "STRING");
    }
    let r: BTreeSet<&str> = received.split(',').map(str::trim).collect();
    let i: BTreeSet<&str> = input.split(',').map(str::trim).collect();
    r.is_subset(&i) || i.is_subset(&r)
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn num_lt(n: &serde_json::Number, bound: &Value) -> bool {
    match (n.as_i128(), bound.as_i128()) {
        (Some(a), Some(b)) => a < b,
        _ => n.as_f64().zip(bound.as_f64()).is_some_and(|(a, b)| a < b),
    }
}

fn num_gt(n: &serde_json::Number, bound: &Value) -> bool {
    match (n.as_i128(), bound.as_i128()) {
        (Some(a), Some(b)) => a > b,
        _ => n.as_f64().zip(bound.as_f64()).is_some_and(|(a, b)| a > b),
    }
}

trait AsI128 {
    fn as_i128(&self) -> Option<i128>;
}
impl AsI128 for serde_json::Number {
    fn as_i128(&self) -> Option<i128> {
        self.as_i64()
            .map(i128::from)
            .or_else(|| self.as_u64().map(i128::from))
    }
}
impl AsI128 for Value {
    fn as_i128(&self) -> Option<i128> {
        self.as_number().and_then(AsI128::as_i128)
    }
}

/// Python's `int(v)`.
pub(crate) fn to_int(v: &Value) -> Result<i128, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i128() {
                return Ok(i);
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_finite() {
                Ok(f.trunc() as i128)
            } else {
                Err("cannot convert float NaN to integer".into())
            }
        }
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::String(s) => s
            .trim()
            .replace('_', "")
            .parse::<i128>()
            .map_err(|_| format!("invalid literal for int() with base 10: '{s}'")),
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            py_type(other)
        )),
    }
}

/// Python's `float(v)`.
pub(crate) fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => {
            let t = s.trim().to_ascii_lowercase();
            match t.as_str() {
                "inf" | "+inf" | "infinity" => Ok(f64::INFINITY),
                "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                _ => t
                    .parse::<f64>()
                    .map_err(|_| format!("could not convert string to float: '{s}'")),
            }
        }
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            py_type(other)
        )),
    }
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float",
    }
}

pub(crate) fn int_value(i: i128) -> Value {
    if let Ok(v) = i64::try_from(i) {
        json!(v)
    } else if let Ok(v) = u64::try_from(i) {
        json!(v)
    } else {
        json!(i as f64)
    }
}

fn float_value(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str(v)` for JSON values.
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(_) => py_num(v),
        Value::Array(a) => py_list(a),
        Value::Object(_) => crate::render::py_json(v).replace('"', "'"),
    }
}

/// Python's repr of a number: `1.0` stays `1.0`, ints have no point.
pub(crate) fn py_num(v: &Value) -> String {
    match v.as_number() {
        Some(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        Some(n) => n.to_string(),
        None => py_str(v),
    }
}

fn py_list(items: &[Value]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            Value::String(s) => format!("'{s}'"),
            other => py_str(other),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prompt: Value) -> Result<Accepted, Rejected> {
        let map = prompt.as_object().cloned().unwrap_or_default();
        validate(
            &map,
            None,
            &|n: &str| n == "there.png",
            &schema::Installed::default(),
        )
    }

    fn first_error(r: &Rejected, node: &str) -> Value {
        r.node_errors[node]["errors"][0].clone()
    }

    #[test]
    fn trace_04_min_and_max() {
        let r = run(json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 512, "batch_size": 1, "color": 0}},
            "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": 1.5}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}
        }))
        .err()
        .unwrap();
        assert_eq!(r.error["type"], "prompt_outputs_failed_validation");
        assert_eq!(r.error["details"], "");
        let e = first_error(&r, "1");
        assert_eq!(e["message"], "Value 0 smaller than min of 1");
        let e = first_error(&r, "2");
        assert_eq!(e["message"], "Value 1.5 bigger than max of 1.0");
        assert_eq!(r.node_errors["2"]["dependent_outputs"], json!(["3"]));
    }

    #[test]
    fn combos_types_and_links() {
        let r = run(json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": "abc", "color": 0}},
            "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "weird",
                  "width": 8, "height": 8, "crop": "disabled"}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 1, "steps": 1, "cfg": 1,
                  "sampler_name": "nope", "scheduler": "simple", "positive": ["1", 0], "negative": ["1", 0],
                  "latent_image": ["5", 0], "denoise": 1}},
            "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}}
        }))
        .err()
        .unwrap();
        let e = first_error(&r, "1");
        assert_eq!(e["type"], "invalid_input_type");
        assert_eq!(
            e["details"],
            "batch_size, abc, invalid literal for int() with base 10: 'abc'"
        );
        let e = first_error(&r, "2");
        assert_eq!(e["type"], "value_not_in_list");
        assert_eq!(
            e["details"],
            "upscale_method: 'weird' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"
        );
        let e = first_error(&r, "3");
        assert_eq!(e["type"], "return_type_mismatch");
        assert_eq!(
            e["details"],
            "images, received_type(LATENT) mismatch input_type(IMAGE)"
        );
        let errs = r.node_errors["6"]["errors"].as_array().unwrap();
        assert!(errs.iter().any(|e| e["type"] == "return_type_mismatch"));
        let long = errs
            .iter()
            .find(|e| e["type"] == "value_not_in_list")
            .unwrap();
        assert!(
            long["details"]
                .as_str()
                .unwrap()
                .contains("(list of length")
        );
        assert_eq!(long["extra_info"]["input_config"], Value::Null);
    }

    #[test]
    fn missing_inputs_links_and_uploads() {
        let r = run(json!({
            "1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}},
            "3": {"class_type": "LoadImage", "inputs": {"image": "gone.png"}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
            "5": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0, 2]}}
        }))
        .err()
        .unwrap();
        assert_eq!(first_error(&r, "1")["type"], "required_input_missing");
        assert_eq!(first_error(&r, "2")["type"], "exception_during_validation");
        assert_eq!(first_error(&r, "2")["details"], "'99'");
        assert_eq!(
            first_error(&r, "3")["details"],
            "image - Invalid image file: gone.png"
        );
        assert_eq!(first_error(&r, "5")["type"], "bad_linked_input");
        assert!(
            r.error["details"]
                .as_str()
                .unwrap()
                .contains("Required input is missing: images")
        );
    }

    #[test]
    fn partial_success_coercion_and_models() {
        let ok = run(json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "there.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": 7}},
            "3": {"class_type": "SaveImage", "inputs": {}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "any.safetensors"}},
            "5": {"class_type": "EmptyImage", "inputs": {"width": "64", "height": 64.0, "batch_size": 1, "color": 0}},
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
            "7": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
        }))
        .ok()
        .unwrap();
        assert_eq!(ok.outputs, ["2", "6", "7"]);
        assert!(ok.node_errors.contains_key("3"));
        assert_eq!(ok.prompt["2"]["inputs"]["filename_prefix"], "7");
        assert_eq!(ok.prompt["5"]["inputs"]["width"], 64);
        assert!(ok.models.contains("any.safetensors"));
    }

    #[test]
    fn top_level_errors() {
        let r = run(json!({"1": {"inputs": {}}})).err().unwrap();
        assert_eq!(r.error["type"], "invalid_prompt");
        assert_eq!(r.error["details"], "Node ID '#1'");
        let r = run(json!({"2": {"class_type": "Nope", "inputs": {}}}))
            .err()
            .unwrap();
        assert_eq!(
            r.error["message"],
            "Cannot execute because node Nope does not exist."
        );
        let r = run(json!({"1": {"class_type": "EmptyImage", "inputs": {}}}))
            .err()
            .unwrap();
        assert_eq!(r.error["type"], "prompt_no_outputs");
        let r = run(json!({})).err().unwrap();
        assert_eq!(r.error["type"], "prompt_no_outputs");
    }
}
