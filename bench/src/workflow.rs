//! The workflows the direct client runs, the same graphs the bridge makes from the same files.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// The one-server comparison's model: built-in nodes only, so the same graph runs on the
/// simulator and on any real ComfyUI.
pub const MODEL: &str = "weightfree-txt2img";

#[derive(Clone)]
pub struct Workflow {
    graph: Value,
    /// The node the sampler takes its positive conditioning from, whose text is the prompt.
    positive: Option<String>,
}

impl Workflow {
    pub fn load(workflows: &Path, model: &str) -> anyhow::Result<Workflow> {
        let path = workflows.join(format!("{model}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let graph: Value = serde_json::from_str(&text)?;
        let positive = nodes(&graph)
            .find_map(|(_, node)| node["inputs"]["positive"][0].as_str())
            .map(str::to_string);
        Ok(Workflow { graph, positive })
    }

    /// The graph for one image, with a fresh seed as the bridge uses, so nothing is cached.
    pub fn render(&self, size: u32, prompt: &str) -> Value {
        let mut graph = self.graph.clone();
        let seed = rand::random::<u64>() % (1 << 53);
        for (id, node) in graph.as_object_mut().into_iter().flat_map(|m| m.iter_mut()) {
            let class = node["class_type"].as_str().unwrap_or("").to_string();
            let inputs = &mut node["inputs"];
            match class.as_str() {
                "EmptyImage" | "EmptyLatentImage" => {
                    inputs["width"] = json!(size);
                    inputs["height"] = json!(size);
                }
                "ImageAddNoise" | "KSampler" => inputs["seed"] = json!(seed),
                "PrimitiveStringMultiline" => inputs["value"] = json!(prompt),
                "CLIPTextEncode" if self.positive.as_ref() == Some(id) => {
                    inputs["text"] = json!(prompt);
                }
                _ => {}
            }
        }
        graph
    }
}

fn nodes(graph: &Value) -> impl Iterator<Item = (&String, &Value)> {
    graph.as_object().into_iter().flat_map(|m| m.iter())
}
