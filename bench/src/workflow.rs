//! The workflow both sides run: `weightfree-txt2img`, built-in nodes only, so the same graph
//! runs on the simulator and on any real ComfyUI.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

pub const MODEL: &str = "weightfree-txt2img";

#[derive(Clone)]
pub struct Workflow {
    graph: Value,
}

impl Workflow {
    pub fn load(workflows: &Path) -> anyhow::Result<Workflow> {
        let path = workflows.join(format!("{MODEL}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Workflow {
            graph: serde_json::from_str(&text)?,
        })
    }

    /// The graph for one image, with a fresh seed as the bridge uses, so nothing is cached.
    pub fn render(&self, size: u32, prompt: &str) -> Value {
        let mut graph = self.graph.clone();
        let seed = rand::random::<u64>() % (1 << 53);
        for node in graph
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let class = node["class_type"].as_str().unwrap_or("").to_string();
            let inputs = &mut node["inputs"];
            match Some(class.as_str()) {
                Some("EmptyImage") => {
                    inputs["width"] = json!(size);
                    inputs["height"] = json!(size);
                }
                Some("ImageAddNoise") => inputs["seed"] = json!(seed),
                Some("PrimitiveStringMultiline") => inputs["value"] = json!(prompt),
                _ => {}
            }
        }
        graph
    }
}
