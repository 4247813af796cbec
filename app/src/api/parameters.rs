//! What an image was made with, in the text form A1111-style tools write into a PNG's
//! `parameters` chunk and read back (prompt, negative prompt, then one line of settings), and
//! as read from the `prompt` graph ComfyUI embeds. The bridge writes it; the web app reads it
//! from a dropped image into its form.

use serde_json::Value;

use super::size::Size;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parameters {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub seed: Option<u64>,
    pub size: Option<Size>,
    pub model: Option<String>,
}

/// A PNG text chunk's keyword for A1111's parameters.
pub const PARAMETERS_KEY: &str = "parameters";

impl Parameters {
    /// The A1111 form:
    ///
    /// ```text
    /// a red fox
    /// Negative prompt: blurry
    /// Steps: 25, Sampler: euler, Schedule type: normal, CFG scale: 7, Seed: 1, Size: 512x512, Model: sdxl
    /// ```
    pub fn to_a1111(&self) -> String {
        let mut out = self.prompt.clone();
        if let Some(n) = &self.negative_prompt {
            out.push_str("\nNegative prompt: ");
            out.push_str(n);
        }
        let mut settings: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.steps {
            settings.push(("Steps", s.to_string()));
        }
        if let Some(s) = &self.sampler {
            settings.push(("Sampler", quoted(s)));
        }
        if let Some(s) = &self.scheduler {
            settings.push(("Schedule type", quoted(s)));
        }
        if let Some(c) = self.cfg {
            settings.push(("CFG scale", c.to_string()));
        }
        if let Some(s) = self.seed {
            settings.push(("Seed", s.to_string()));
        }
        if let Some(s) = self.size {
            settings.push(("Size", s.to_string()));
        }
        if let Some(m) = &self.model {
            settings.push(("Model", quoted(m)));
        }
        if !settings.is_empty() {
            out.push('\n');
            let line: Vec<String> = settings
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            out.push_str(&line.join(", "));
        }
        out
    }

    /// Reads the A1111 form back. The last line is the settings when it has `Steps:` or
    /// another known key; lines from `Negative prompt:` on are the negative prompt.
    pub fn from_a1111(text: &str) -> Parameters {
        let mut lines: Vec<&str> = text.lines().collect();
        let settings = match lines.last() {
            Some(last) if is_settings_line(last) => settings(last),
            _ => Vec::new(),
        };
        if !settings.is_empty() {
            lines.pop();
        }
        let mut prompt = Vec::new();
        let mut negative: Option<Vec<&str>> = None;
        for line in lines {
            match (&mut negative, line.strip_prefix("Negative prompt:")) {
                (None, Some(rest)) => negative = Some(vec![rest.trim_start()]),
                (Some(n), _) => n.push(line),
                (None, None) => prompt.push(line),
            }
        }
        let mut p = Parameters {
            prompt: prompt.join("\n").trim().to_string(),
            negative_prompt: negative
                .map(|n| n.join("\n").trim().to_string())
                .filter(|n| !n.is_empty()),
            ..Parameters::default()
        };
        for (key, value) in settings {
            match key.as_str() {
                "Steps" => p.steps = value.parse().ok(),
                "Sampler" => p.sampler = Some(value),
                "Schedule type" => p.scheduler = Some(value),
                "CFG scale" => p.cfg = value.parse().ok(),
                "Seed" => p.seed = value.parse().ok(),
                "Size" => p.size = value.parse().ok(),
                "Model" => p.model = Some(value),
                _ => {}
            }
        }
        p
    }

    /// The settings of a ComfyUI API-format graph (its PNG `prompt` chunk): the first
    /// sampler's seed, steps, cfg, sampler and scheduler, the text of the encoders feeding its
    /// positive and negative inputs, and the first latent's size.
    pub fn from_comfy_prompt(graph: &Value) -> Option<Parameters> {
        let nodes = graph.as_object()?;
        let mut ids: Vec<&String> = nodes.keys().collect();
        ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.as_str()));
        let inputs = |id: &str| nodes.get(id).map(|n| &n["inputs"]);
        let sampler = ids
            .iter()
            .filter_map(|id| inputs(id))
            .find(|i| i.get("latent_image").is_some() && i.get("positive").is_some())?;
        let text_from = |link: &Value| -> Option<String> {
            let mut at = link.get(0)?.as_str()?.to_string();
            // Through a few pass-through nodes (guiders, conditioning tweaks) to the text.
            for _ in 0..8 {
                let node = inputs(&at)?;
                for key in ["text", "prompt", "text_g", "clip_l"] {
                    if let Some(t) = node.get(key).and_then(Value::as_str) {
                        return Some(t.to_string());
                    }
                }
                let next = [
                    "conditioning",
                    "positive",
                    "conditioning_to",
                    "conditioning_1",
                ]
                .iter()
                .find_map(|k| node.get(*k)?.get(0)?.as_str())?;
                at = next.to_string();
            }
            None
        };
        let number = |key: &str| sampler.get(key).and_then(Value::as_f64);
        let size = ids.iter().find_map(|id| {
            let i = inputs(id)?;
            let (w, h) = (i.get("width")?.as_u64()?, i.get("height")?.as_u64()?);
            Some(Size::new(u32::try_from(w).ok()?, u32::try_from(h).ok()?))
        });
        Some(Parameters {
            prompt: sampler
                .get("positive")
                .and_then(text_from)
                .unwrap_or_default(),
            negative_prompt: sampler
                .get("negative")
                .and_then(text_from)
                .filter(|n| !n.is_empty()),
            steps: number("steps").and_then(|s| u32::try_from(s as u64).ok()),
            cfg: number("cfg"),
            sampler: sampler["sampler_name"].as_str().map(str::to_owned),
            scheduler: sampler["scheduler"].as_str().map(str::to_owned),
            seed: sampler
                .get("seed")
                .or_else(|| sampler.get("noise_seed"))
                .and_then(Value::as_u64),
            size,
            model: None,
        })
    }
}

/// A PNG's uncompressed text chunks (`tEXt`, and `iTXt` without compression) as
/// `(keyword, text)`; empty for anything that is not a PNG.
pub fn png_text(png: &[u8]) -> Vec<(String, String)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let mut out = Vec::new();
    if !png.starts_with(SIGNATURE) {
        return out;
    }
    let mut at = SIGNATURE.len();
    while let Some(header) = png.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let Some(data) = png.get(at + 8..at + 8 + len) else {
            break;
        };
        if kind == b"IEND" {
            break;
        }
        if let Some(zero) = data.iter().position(|b| *b == 0) {
            let keyword = String::from_utf8_lossy(&data[..zero]).into_owned();
            let rest = &data[zero + 1..];
            match kind {
                // Latin-1 text.
                b"tEXt" => out.push((keyword, rest.iter().map(|b| char::from(*b)).collect())),
                // Compression flag, method, language tag, translated keyword, then UTF-8 text.
                b"iTXt" if rest.first() == Some(&0) => {
                    let after_flags = rest.get(2..).unwrap_or_default();
                    let mut parts = after_flags.splitn(3, |b| *b == 0);
                    let (_, _, text) = (parts.next(), parts.next(), parts.next());
                    if let Some(text) = text {
                        out.push((keyword, String::from_utf8_lossy(text).into_owned()));
                    }
                }
                _ => {}
            }
        }
        at += 12 + len;
    }
    out
}

/// The parameters an image carries: A1111's `parameters` chunk, else ComfyUI's `prompt` graph.
pub fn read_png(png: &[u8]) -> Option<Parameters> {
    let chunks = png_text(png);
    let find = |key: &str| chunks.iter().find(|(k, _)| k == key).map(|(_, t)| t);
    if let Some(text) = find(PARAMETERS_KEY) {
        return Some(Parameters::from_a1111(text));
    }
    let graph: Value = serde_json::from_str(find("prompt")?).ok()?;
    Parameters::from_comfy_prompt(&graph)
}

const KEYS: [&str; 7] = [
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Seed",
    "Size",
    "Model",
];

fn is_settings_line(line: &str) -> bool {
    KEYS.iter().any(|k| line.starts_with(&format!("{k}: ")))
}

/// A value with a comma, colon or quote is written as a JSON string, as A1111 does.
fn quoted(v: &str) -> String {
    if v.contains([',', ':', '"', '\n']) {
        serde_json::to_string(v).unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// `Key: value, Key: "quoted, value"` pairs.
fn settings(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while let Some((key, after)) = rest.split_once(": ") {
        let key = key.trim().to_string();
        let (value, next) = if after.starts_with('"') {
            let mut de = serde_json::Deserializer::from_str(after).into_iter::<String>();
            match de.next() {
                Some(Ok(v)) => (v, &after[de.byte_offset()..]),
                _ => break,
            }
        } else {
            match after.split_once(", ") {
                Some((v, n)) => (v.to_string(), n),
                None => (after.to_string(), ""),
            }
        };
        out.push((key, value.trim().to_string()));
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn full() -> Parameters {
        Parameters {
            prompt: "a red fox\nin snow".into(),
            negative_prompt: Some("blurry, low quality".into()),
            steps: Some(25),
            cfg: Some(7.5),
            sampler: Some("dpmpp_2m".into()),
            scheduler: Some("karras".into()),
            seed: Some(18_446_744_073_709_551_615),
            size: Some(Size::new(1024, 768)),
            model: Some("house, style".into()),
        }
    }

    #[test]
    fn the_a1111_form_round_trips() {
        let p = full();
        let text = p.to_a1111();
        assert_eq!(
            text,
            "a red fox\nin snow\nNegative prompt: blurry, low quality\nSteps: 25, Sampler: \
             dpmpp_2m, Schedule type: karras, CFG scale: 7.5, Seed: 18446744073709551615, \
             Size: 1024x768, Model: \"house, style\""
        );
        assert_eq!(Parameters::from_a1111(&text), p);
        let bare = Parameters {
            prompt: "just words".into(),
            ..Parameters::default()
        };
        assert_eq!(Parameters::from_a1111(&bare.to_a1111()), bare);
    }

    #[test]
    fn reads_what_a1111_itself_writes() {
        let text = "masterpiece, a cat\nNegative prompt: lowres\nSteps: 20, Sampler: Euler a, \
                    Schedule type: Automatic, CFG scale: 7, Seed: 3405691582, Size: 512x768, \
                    Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";
        let p = Parameters::from_a1111(text);
        assert_eq!(p.prompt, "masterpiece, a cat");
        assert_eq!(p.negative_prompt.as_deref(), Some("lowres"));
        assert_eq!(p.steps, Some(20));
        assert_eq!(p.sampler.as_deref(), Some("Euler a"));
        assert_eq!(p.seed, Some(3_405_691_582));
        assert_eq!(p.size, Some(Size::new(512, 768)));
        assert_eq!(p.model.as_deref(), Some("v1-5-pruned-emaonly"));
    }

    #[test]
    fn reads_a_comfyui_prompt_graph() {
        let graph = json!({
            "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 8.0,
                "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}}
        });
        let p = Parameters::from_comfy_prompt(&graph).unwrap();
        assert_eq!(p.prompt, "a lighthouse");
        assert_eq!(p.negative_prompt, None);
        assert_eq!((p.seed, p.steps, p.cfg), (Some(42), Some(20), Some(8.0)));
        assert_eq!(p.sampler.as_deref(), Some("euler"));
        assert_eq!(p.size, Some(Size::new(512, 640)));
        assert_eq!(Parameters::from_comfy_prompt(&json!({"1": {}})), None);
    }
}
