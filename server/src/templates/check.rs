//! Whether a workflow can run on a given server: every node type it uses exists there, every
//! model file it names is installed, and every value it sends is one the server accepts.

use std::{collections::BTreeSet, fmt};

use serde_json::Value;

use super::{Param, RenderParams, Template};
use crate::comfy::{InputSpec, ObjectInfo};

/// Why a workflow cannot run on a server.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    MissingNode {
        node: String,
        class: String,
    },
    MissingFile {
        node: String,
        class: String,
        input: String,
        file: String,
    },
    /// A value the server's list for that input does not hold.
    NotAnOption {
        node: String,
        class: String,
        input: String,
        value: String,
    },
    OutOfRange {
        node: String,
        class: String,
        input: String,
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    MissingInput {
        node: String,
        class: String,
        input: String,
    },
}

impl Problem {
    /// Whether another server (or this one, restarted with other nodes or files) could run
    /// the workflow as it is. Otherwise the workflow itself is wrong.
    pub fn server_side(&self) -> bool {
        matches!(
            self,
            Problem::MissingNode { .. } | Problem::MissingFile { .. }
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingNode { node, class } => {
                write!(f, "missing node type `{class}` (node {node})")
            }
            Problem::MissingFile {
                node,
                class,
                input,
                file,
            } => write!(
                f,
                "missing model file `{file}` (node {node} {class}.{input})"
            ),
            Problem::NotAnOption {
                node,
                class,
                input,
                value,
            } => write!(
                f,
                "`{value}` is not an option of node {node} {class}.{input}"
            ),
            Problem::OutOfRange {
                node,
                class,
                input,
                value,
                min,
                max,
            } => {
                let bound = |b: &Option<f64>| b.map_or("…".to_string(), |v| v.to_string());
                write!(
                    f,
                    "{value} is out of range for node {node} {class}.{input} ({} to {})",
                    bound(min),
                    bound(max)
                )
            }
            Problem::MissingInput { node, class, input } => {
                write!(
                    f,
                    "node {node} ({class}) lacks its required input `{input}`"
                )
            }
        }
    }
}

/// Values each request sets anew: checking the saved ones would say nothing.
const PER_REQUEST: [Param; 5] = [
    Param::Prompt,
    Param::NegativePrompt,
    Param::Seed,
    Param::Image,
    Param::Mask,
];

/// Extensions of the files ComfyUI's model folders hold.
const MODEL_EXTENSIONS: [&str; 8] = [
    ".safetensors",
    ".sft",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".onnx",
];

pub(super) fn check(t: &Template, info: &ObjectInfo) -> Vec<Problem> {
    let skipped: BTreeSet<(&str, &str)> = PER_REQUEST
        .iter()
        .flat_map(|p| t.targets(*p))
        .map(|target| (target.node.as_str(), target.input.as_str()))
        .collect();
    // The graph as it is sent with the model's defaults, and with each quality and style,
    // which may name other samplers or schedulers.
    let base = RenderParams::new(t.default_size);
    let mut variants = vec![base.clone()];
    variants.extend(t.quality.keys().map(|q| RenderParams {
        quality: Some(q.clone()),
        ..base.clone()
    }));
    variants.extend(t.style.keys().map(|s| RenderParams {
        style: Some(s.clone()),
        ..base.clone()
    }));
    let mut problems = Vec::new();
    for params in variants {
        for problem in check_graph(&t.render(&params), info, &skipped) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn check_graph(graph: &Value, info: &ObjectInfo, skipped: &BTreeSet<(&str, &str)>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(nodes) = graph.as_object() else {
        return problems;
    };
    for (id, node) in nodes {
        let class = node["class_type"].as_str().unwrap_or_default();
        let Some(schema) = info.class(class) else {
            problems.push(Problem::MissingNode {
                node: id.clone(),
                class: class.to_string(),
            });
            continue;
        };
        let inputs = node["inputs"].as_object();
        for required in &schema.required {
            if inputs.is_none_or(|i| !i.contains_key(required)) {
                problems.push(Problem::MissingInput {
                    node: id.clone(),
                    class: class.to_string(),
                    input: required.clone(),
                });
            }
        }
        for (input, value) in inputs.into_iter().flatten() {
            // Links (`["4", 0]`) carry another node's output; their type is not a value.
            if value.is_array() || skipped.contains(&(id.as_str(), input.as_str())) {
                continue;
            }
            let Some(spec) = schema.inputs.get(input) else {
                continue;
            };
            if let Some(problem) = check_value(id, class, input, value, spec) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn check_value(
    node: &str,
    class: &str,
    input: &str,
    value: &Value,
    spec: &InputSpec,
) -> Option<Problem> {
    let (node, class, input_name) = (node.to_string(), class.to_string(), input.to_string());
    match spec {
        InputSpec::Combo(options) => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if options
                .iter()
                .any(|o| o == value || o.as_str() == Some(&text))
            {
                return None;
            }
            Some(if is_model_file(&text) {
                Problem::MissingFile {
                    node,
                    class,
                    input: input_name,
                    file: text,
                }
            } else {
                Problem::NotAnOption {
                    node,
                    class,
                    input: input_name,
                    value: text,
                }
            })
        }
        InputSpec::Int { min, max } | InputSpec::Float { min, max } => {
            let v = value.as_f64()?;
            let below = min.is_some_and(|m| v < m);
            let above = max.is_some_and(|m| v > m);
            (below || above).then_some(Problem::OutOfRange {
                node,
                class,
                input: input_name,
                value: v,
                min: *min,
                max: *max,
            })
        }
        _ => None,
    }
}

/// The model files the workflow loads, in node order.
pub(super) fn model_files(t: &Template) -> Vec<String> {
    let mut files = Vec::new();
    for node in t.graph().values() {
        for value in node["inputs"]
            .as_object()
            .into_iter()
            .flat_map(|i| i.values())
        {
            if let Some(text) = value.as_str()
                && is_model_file(text)
                && !files.iter().any(|f| f == text)
            {
                files.push(text.to_string());
            }
        }
    }
    files
}

fn is_model_file(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}
