//! The workflows the direct client runs, the same graphs the bridge makes from the same files.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// The one-server comparison's model: built-in nodes only, so the same graph runs on the
/// simulator and on any real ComfyUI.
pub const MODEL: &str = "weightfree-txt2img";

/// The fleet's model: a sampler with steps, so the simulator's step delay gives every job the
/// same real duration, as a GPU would (the weightfree graph has no sampler and only two delayed
/// nodes, so its time is mostly the simulator's CPU, which four simulators share).
pub const FLEET_MODEL: &str = "sdxl";

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

    /// The sampler's step count, if the graph has a sampler.
    pub fn steps(&self) -> Option<u64> {
        nodes(&self.graph).find_map(|(_, node)| node["inputs"]["steps"].as_u64())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_graph_gets_the_size_prompt_and_a_fresh_seed_where_the_bridge_puts_them() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows"));
        let workflow = Workflow::load(dir, FLEET_MODEL).unwrap();
        let (a, b) = (
            workflow.render(512, "a benchmark"),
            workflow.render(512, "a benchmark"),
        );
        let sampler = a
            .as_object()
            .unwrap()
            .values()
            .find(|n| n["class_type"] == "KSampler")
            .unwrap();
        let linked = |input: &str| &a[sampler["inputs"][input][0].as_str().unwrap()]["inputs"];
        assert_eq!(linked("positive")["text"], "a benchmark");
        assert_ne!(linked("negative")["text"], "a benchmark");
        assert_eq!(linked("latent_image")["width"], 512);
        assert_eq!(linked("latent_image")["height"], 512);
        let seed = |g: &Value| {
            g.as_object()
                .unwrap()
                .values()
                .find(|n| n["class_type"] == "KSampler")
                .unwrap()["inputs"]["seed"]
                .clone()
        };
        assert_ne!(seed(&a), seed(&b));
        assert_eq!(workflow.steps(), Some(25));
    }
}
