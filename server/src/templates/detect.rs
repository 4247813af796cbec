//! Finds where request values go by following an API-format graph's links.
//!
//! Everything is decided from `class_type`, input names and links, because the server has no
//! `/object_info` at load time. Nodes are visited in id order (numeric ids numerically), never
//! in file order, so the result does not depend on how the export was written.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{NodeRef, Param, Target};

/// Bounds every backwards walk, so a cyclic graph cannot hang the loader.
const MAX_WALK: usize = 64;

/// Inputs through which conditioning passes unchanged in meaning (timestep ranges, guidance,
/// areas, combine): the first linked one is followed towards the text encoder.
const COND_INPUTS: [&str; 7] = [
    "conditioning",
    "conditioning_to",
    "conditioning_1",
    "cond",
    "positive",
    "conditioning_from",
    "conditioning_2",
];
/// String inputs that hold prompt text across the core encoders (SDXL, SD3, Flux, HiDream,
/// Lumina2, HunyuanDiT, Qwen image edit); a test checks them against a real server's nodes.
pub(super) const TEXT_INPUTS: [&str; 11] = [
    "text",
    "prompt",
    "text_g",
    "text_l",
    "clip_l",
    "clip_g",
    "t5xxl",
    "llama",
    "user_prompt",
    "bert",
    "mt5xl",
];
/// Inputs followed from a sampler's `latent_image` back to the node that sets the size.
const LATENT_INPUTS: [&str; 6] = [
    "samples",
    "pixels",
    "image",
    "latent",
    "latent_image",
    "images",
];
const MASK_INPUTS: [&str; 4] = ["mask", "image", "masks", "images"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeError {
    pub node: Option<NodeRef>,
    pub message: String,
}

impl NodeError {
    pub fn new(node: Option<NodeRef>, message: impl Into<String>) -> NodeError {
        NodeError {
            node,
            message: message.into(),
        }
    }

    pub fn at(id: &str, class_type: Option<&str>, message: impl Into<String>) -> NodeError {
        NodeError::new(
            Some(NodeRef {
                id: id.to_owned(),
                class_type: class_type.map(str::to_owned),
            }),
            message,
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub class_type: String,
    pub title: Option<String>,
    pub inputs: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(super) struct Graph {
    raw: Map<String, Value>,
    nodes: BTreeMap<String, Node>,
    order: Vec<String>,
}

/// `["<node id>", <output index>]` is a link; anything else is a widget value.
pub(super) fn is_link(v: &Value) -> bool {
    as_link(v).is_some()
}

pub(super) fn as_link(v: &Value) -> Option<(&str, u64)> {
    match v.as_array()?.as_slice() {
        [Value::String(id), Value::Number(n)] => Some((id.as_str(), n.as_u64()?)),
        _ => None,
    }
}

/// `"{{name}}"` (spaces inside the braces allowed) → `name`.
pub(super) fn placeholder_name(v: &Value) -> Option<&str> {
    v.as_str()?
        .strip_prefix("{{")?
        .strip_suffix("}}")
        .map(str::trim)
}

/// Orders `"2" < "10" < "10:3" < "a"`: digit runs compare as numbers.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        let (cx, rx) = split_chunk(x);
        let (cy, ry) = split_chunk(y);
        let ord = match (cx.is_empty(), cy.is_empty()) {
            // Ties such as "07" vs "7" fall back to plain order, keeping the order total.
            (true, true) => return a.cmp(b),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ if is_digits(cx) && is_digits(cy) => {
                let (nx, ny) = (cx.trim_start_matches('0'), cy.trim_start_matches('0'));
                nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny))
            }
            _ => cx.cmp(cy),
        };
        if ord != Ordering::Equal {
            return ord;
        }
        (x, y) = (rx, ry);
    }
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Splits off a leading run of digits, or else one character.
fn split_chunk(s: &str) -> (&str, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n = if digits > 0 {
        digits
    } else {
        s.chars().next().map_or(0, char::len_utf8)
    };
    s.split_at(n)
}

impl Graph {
    pub fn parse(v: &Value) -> Result<Graph, Vec<NodeError>> {
        let Some(obj) = v.as_object() else {
            return Err(vec![NodeError::new(
                None,
                "the top level must be a JSON object mapping node ids to nodes (an API-format \
                 workflow)",
            )]);
        };
        if obj.get("nodes").is_some_and(Value::is_array) {
            return Err(vec![NodeError::new(
                None,
                "this is a UI-format workflow (it has a top-level \"nodes\" array); in ComfyUI \
                 use Workflow → Export (API) and save that file instead",
            )]);
        }
        if obj.is_empty() {
            return Err(vec![NodeError::new(None, "the workflow has no nodes")]);
        }
        let mut errors = Vec::new();
        let mut nodes = BTreeMap::new();
        for (id, node) in obj {
            let class_type = node
                .get("class_type")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            let inputs = node.get("inputs").and_then(Value::as_object);
            match (class_type, inputs) {
                (Some(c), Some(i)) => {
                    let title = node
                        .get("_meta")
                        .and_then(|m| m.get("title"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    nodes.insert(
                        id.clone(),
                        Node {
                            class_type: c.to_owned(),
                            title,
                            inputs: i.clone(),
                        },
                    );
                }
                (None, _) => errors.push(NodeError::at(
                    id,
                    None,
                    "is not a node: it needs a \"class_type\" string (is this an API-format \
                     export?)",
                )),
                (Some(c), None) => {
                    errors.push(NodeError::at(id, Some(c), "has no \"inputs\" object"))
                }
            }
        }
        for (id, node) in &nodes {
            for (name, v) in &node.inputs {
                if let Some((src, _)) = as_link(v)
                    && !nodes.contains_key(src)
                {
                    errors.push(NodeError::at(
                        id,
                        Some(node.class_type.as_str()),
                        format!("input {name:?} links to node {src:?}, which does not exist"),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut order: Vec<String> = nodes.keys().cloned().collect();
        order.sort_by(|a, b| natural_cmp(a, b));
        Ok(Graph {
            raw: obj.clone(),
            nodes,
            order,
        })
    }

    /// Node ids in natural order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// A widget value (not a link).
    pub fn literal(&self, id: &str, input: &str) -> Option<&Value> {
        self.node(id)?.inputs.get(input).filter(|v| !is_link(v))
    }

    /// Inputs that look like prompt text (free text, not a file name or a menu choice), as
    /// `"<id>.<input>" (<class>)`, for an error that must say where the prompt could go.
    pub fn text_inputs(&self) -> Vec<String> {
        let looks_like_text = |v: &Value| {
            v.as_str().is_some_and(|t| {
                let file = t.rsplit_once('.').is_some_and(|(_, ext)| {
                    (1..=12).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                (t.contains(' ') || t.is_empty() || t.len() > 24) && !file
            })
        };
        self.ids()
            .filter_map(|id| Some((id, self.node(id)?)))
            .flat_map(|(id, node)| {
                node.inputs
                    .iter()
                    .filter(|(_, v)| looks_like_text(v))
                    .map(move |(name, _)| format!("\"{id}.{name}\" ({})", node.class_type))
            })
            .collect()
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.raw
    }

    fn link(&self, id: &str, input: &str) -> Option<(&str, u64)> {
        as_link(self.node(id)?.inputs.get(input)?)
    }

    fn first_link(&self, id: &str, inputs: &[&str]) -> Option<(&str, u64)> {
        inputs.iter().find_map(|i| self.link(id, i))
    }

    fn target(&self, id: &str, input: &str) -> Option<Target> {
        let node = self.node(id)?;
        Some(Target {
            node: id.to_owned(),
            input: input.to_owned(),
            class_type: node.class_type.clone(),
        })
    }

    /// The widget that really holds an input's value: the input itself, or, linked into it,
    /// the `value` of a Primitive node or the one widget of a custom node that only holds a
    /// value (a prompt text node, a seed node).
    fn widget(&self, id: &str, input: &str) -> Option<Target> {
        match self.link(id, input) {
            Some((src, _)) => self
                .literal(src, "value")
                .and(self.target(src, "value"))
                .or_else(|| self.value_node(src)),
            None => self.literal(id, input).and(self.target(id, input)),
        }
    }

    /// The single widget of a node with no links in and nothing but one value-like widget
    /// (`prompt_text`, `text`, `string`, `seed`, …); a node that reads a file or takes links
    /// computes its output, and is not followed.
    fn value_node(&self, id: &str) -> Option<Target> {
        let node = self.node(id)?;
        if node.inputs.values().any(is_link) {
            return None;
        }
        let [(name, _)] = node.inputs.iter().collect::<Vec<_>>()[..] else {
            return None;
        };
        let value_like = ["text", "prompt", "string", "value", "seed"]
            .iter()
            .any(|k| name.contains(k));
        value_like.then(|| self.target(id, name)).flatten()
    }

    /// Every node the given ones depend on, themselves included.
    fn upstream<'a>(&'a self, starts: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = starts.into_iter().collect();
        while let Some(id) = stack.pop() {
            let Some((key, node)) = self.nodes.get_key_value(id) else {
                continue;
            };
            if !seen.insert(key.as_str()) {
                continue;
            }
            stack.extend(node.inputs.values().filter_map(as_link).map(|(s, _)| s));
        }
        seen
    }

    fn int_literal(&self, id: &str, input: &str) -> bool {
        self.literal(id, input).is_some_and(Value::is_u64)
    }

    fn links_from(&self, src: &str, slot: u64) -> bool {
        self.nodes
            .values()
            .flat_map(|n| n.inputs.values())
            .filter_map(as_link)
            .any(|l| l == (src, slot))
    }
}

fn is_output_class(class: &str) -> bool {
    class.starts_with("Save") || class.starts_with("Preview") || class == "MaskPreview"
}

fn is_sampler(node: &Node) -> bool {
    node.inputs.get("latent_image").is_some_and(is_link)
        && (node.inputs.contains_key("positive") || node.inputs.contains_key("guider"))
}

fn is_load_image(node: &Node) -> bool {
    node.class_type.starts_with("LoadImage")
        && !matches!(
            node.class_type.as_str(),
            "LoadImageMask" | "LoadImageOutput"
        )
        && node.inputs.get("image").is_some_and(Value::is_string)
}

/// Exact `"{{name}}"` inputs. A known placeholder inside a longer string is an error, since it
/// would otherwise be sent to ComfyUI verbatim.
pub(super) fn placeholders(g: &Graph) -> Result<BTreeMap<Param, Vec<Target>>, Vec<NodeError>> {
    let mut out: BTreeMap<Param, Vec<Target>> = BTreeMap::new();
    let mut errors = Vec::new();
    for id in g.ids() {
        let Some(node) = g.node(id) else { continue };
        for (input, v) in &node.inputs {
            let err = |m: String| NodeError::at(id, Some(node.class_type.as_str()), m);
            if let Some(name) = placeholder_name(v) {
                match Param::from_name(name) {
                    Some(p) => out.entry(p).or_default().extend(g.target(id, input)),
                    None => errors.push(err(format!(
                        "input {input:?}: unknown placeholder \"{{{{{name}}}}}\""
                    ))),
                }
            } else if let Some(s) = v.as_str()
                && let Some(p) = Param::ALL
                    .iter()
                    .find(|p| s.contains(&format!("{{{{{}}}}}", p.name())))
            {
                errors.push(err(format!(
                    "input {input:?}: a placeholder must be the whole value, e.g. \"{{{{{p}}}}}\""
                )));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[derive(Debug, Default)]
pub(super) struct Detection {
    /// Image output nodes, in id order.
    pub outputs: Vec<String>,
    pub bindings: BTreeMap<Param, Vec<Target>>,
    /// The main sampler, when there is one.
    pub sampler: Option<String>,
    /// The negative conditioning is the positive one zeroed: there is no negative text.
    pub negative_zeroed: bool,
    pub mask_in_image_alpha: bool,
    pub errors: Vec<NodeError>,
}

impl Detection {
    fn bind(&mut self, param: Param, targets: impl IntoIterator<Item = Target>) {
        let slot = self.bindings.entry(param).or_default();
        for t in targets {
            if !slot.contains(&t) {
                slot.push(t);
            }
        }
        if slot.is_empty() {
            self.bindings.remove(&param);
        }
    }
}

/// Detects outputs and injection points; `explicit` bindings only serve to pick the main sampler
/// when there are several.
pub(super) fn detect(g: &Graph, explicit: &BTreeMap<Param, Vec<Target>>) -> Detection {
    let mut d = Detection::default();
    let out_ids: Vec<&str> = g
        .ids()
        .filter(|id| g.node(id).is_some_and(|n| is_output_class(&n.class_type)))
        .collect();
    d.outputs = out_ids
        .iter()
        // MaskPreview shows its `mask` as an image, as the other preview nodes do `images`.
        .filter(|id| {
            g.node(id)
                .is_some_and(|n| n.inputs.contains_key("images") || n.inputs.contains_key("mask"))
        })
        .map(|id| (*id).to_owned())
        .collect();
    let reachable = g.upstream(out_ids.iter().copied());
    let live: Vec<&str> = g.ids().filter(|id| reachable.contains(id)).collect();

    let samplers: Vec<&str> = live
        .iter()
        .copied()
        .filter(|id| g.node(id).is_some_and(is_sampler))
        .collect();
    d.sampler = pick_sampler(g, &samplers, explicit, &mut d.errors).map(str::to_owned);

    match d.sampler.clone() {
        Some(s) => from_sampler(g, &s, &mut d),
        None => {
            // Weight-free graphs: the first size source and seed input stand in for the sampler's.
            let size = live
                .iter()
                .find(|id| {
                    g.node(id)
                        .is_some_and(|n| n.class_type.starts_with("Empty"))
                        && has_size(g, id)
                })
                .or_else(|| live.iter().find(|id| has_size(g, id)));
            if let Some(id) = size {
                bind_size(g, id, &mut d);
            }
            let seed = live.iter().find_map(|id| {
                ["seed", "noise_seed"]
                    .into_iter()
                    .find(|i| g.int_literal(id, i))
                    .and_then(|i| g.target(id, i))
            });
            d.bind(Param::Seed, seed);
        }
    }
    images_and_masks(g, &live, explicit, &mut d);
    d
}

fn pick_sampler<'a>(
    g: &Graph,
    samplers: &[&'a str],
    explicit: &BTreeMap<Param, Vec<Target>>,
    errors: &mut Vec<NodeError>,
) -> Option<&'a str> {
    match samplers {
        [] => return None,
        [one] => return Some(one),
        _ => {}
    }
    let bound: BTreeSet<&str> = explicit
        .values()
        .flatten()
        .map(|t| t.node.as_str())
        .collect();
    let hits: Vec<&str> = samplers
        .iter()
        .copied()
        .filter(|s| components(g, s).iter().any(|c| bound.contains(c)))
        .collect();
    if let [one] = hits.as_slice() {
        return Some(one);
    }
    if explicit.contains_key(&Param::Prompt) && explicit.contains_key(&Param::Seed) {
        return None;
    }
    let first = samplers[0];
    let class = g.node(first).map(|n| n.class_type.clone());
    let list: Vec<String> = samplers
        .iter()
        .map(|s| format!("{s} ({})", g.node(s).map_or("?", |n| n.class_type.as_str())))
        .collect();
    errors.push(NodeError::at(
        first,
        class.as_deref(),
        format!(
            "ambiguous: {} samplers ({}); bind the main one's values in the sidecar's \
             [bindings], e.g. seed = \"{first}.seed\"",
            samplers.len(),
            list.join(", ")
        ),
    ));
    None
}

/// The sampler plus the nodes that feed its noise, guider, sampler and sigmas inputs (the
/// SamplerCustomAdvanced family keeps seed, cfg, steps there).
fn components<'a>(g: &'a Graph, s: &'a str) -> Vec<&'a str> {
    let mut out = vec![s];
    out.extend(
        ["noise", "guider", "sampler", "sigmas"]
            .into_iter()
            .filter_map(|i| g.link(s, i).map(|(src, _)| src)),
    );
    out
}

fn from_sampler(g: &Graph, s: &str, d: &mut Detection) {
    let parts = components(g, s);
    let widgets: [(Param, &[&str]); 6] = [
        (Param::Seed, &["seed", "noise_seed"]),
        (Param::Steps, &["steps"]),
        (Param::Cfg, &["cfg"]),
        (Param::Sampler, &["sampler_name"]),
        (Param::Scheduler, &["scheduler"]),
        (Param::Strength, &["denoise"]),
    ];
    for (param, names) in widgets {
        let t = parts.iter().find_map(|c| {
            names
                .iter()
                .find(|n| g.node(c).is_some_and(|node| node.inputs.contains_key(**n)))
                .and_then(|n| g.widget(c, n))
        });
        d.bind(param, t);
    }

    let positive = parts
        .iter()
        .find_map(|c| g.first_link(c, &["positive", "conditioning", "cond1"]));
    let negative = parts.iter().find_map(|c| g.link(c, "negative"));
    let pos_end = positive
        .map(|l| trace_cond(g, l, false))
        .unwrap_or(CondEnd::Nothing);
    let neg_end = negative
        .map(|l| trace_cond(g, l, true))
        .unwrap_or(CondEnd::Nothing);
    let pos_targets = match &pos_end {
        CondEnd::Encoder(targets) => Some(targets.clone()),
        _ => None,
    };
    if let CondEnd::Encoder(targets) = pos_end {
        d.bind(Param::Prompt, targets);
    }
    match neg_end {
        // The same text on both sides means there is no separate negative text to set.
        CondEnd::Encoder(targets) if Some(&targets) != pos_targets.as_ref() => {
            d.bind(Param::NegativePrompt, targets);
        }
        CondEnd::ZeroOut => d.negative_zeroed = true,
        _ => {}
    }

    if let Some(l) = g.link(s, "latent_image")
        && let Some(id) = walk_to_size(g, l)
    {
        bind_size(g, &id, d);
    }
}

enum CondEnd {
    /// The text inputs the conditioning was encoded from.
    Encoder(Vec<Target>),
    ZeroOut,
    Nothing,
}

/// Follows conditioning back from a sampler's `positive` (or, with `negative`, its `negative`)
/// input to the text it encodes.
fn trace_cond(g: &Graph, start: (&str, u64), negative: bool) -> CondEnd {
    let (mut id, mut slot) = start;
    for _ in 0..MAX_WALK {
        let Some(node) = g.node(id) else {
            return CondEnd::Nothing;
        };
        // Loaders that encode both prompts themselves (Efficiency Nodes' Efficient Loader and
        // its kin) hold them as `positive` and `negative` text widgets.
        let side = if negative { "negative" } else { "positive" };
        if g.literal(id, "positive").is_some_and(Value::is_string)
            && g.literal(id, "negative").is_some_and(Value::is_string)
        {
            return CondEnd::Encoder(g.target(id, side).into_iter().collect());
        }
        let texts: Vec<Target> = TEXT_INPUTS
            .iter()
            .filter(|i| node.inputs.contains_key(**i))
            .filter_map(|i| g.widget(id, i))
            .filter(|t| g.literal(&t.node, &t.input).is_some_and(Value::is_string))
            .collect();
        if !texts.is_empty() {
            return CondEnd::Encoder(texts);
        }
        if node.class_type == "ConditioningZeroOut" {
            return CondEnd::ZeroOut;
        }
        // Pair nodes (ControlNetApplyAdvanced, InpaintModelConditioning) output positive at
        // slot 0 and negative at slot 1.
        let next = if g.link(id, "positive").is_some() && g.link(id, "negative").is_some() {
            match slot {
                0 => g.link(id, "positive"),
                1 => g.link(id, "negative"),
                _ => None,
            }
        } else {
            g.first_link(id, &COND_INPUTS).or_else(|| {
                node.inputs
                    .iter()
                    .filter(|(k, _)| k.contains("cond"))
                    .find_map(|(_, v)| as_link(v))
            })
        };
        match next {
            Some(l) => (id, slot) = l,
            None => return CondEnd::Nothing,
        }
    }
    CondEnd::Nothing
}

fn has_size(g: &Graph, id: &str) -> bool {
    g.int_literal(id, "width") && g.int_literal(id, "height")
}

fn walk_to_size(g: &Graph, start: (&str, u64)) -> Option<String> {
    let mut id = start.0;
    for _ in 0..MAX_WALK {
        if has_size(g, id) {
            return Some(id.to_owned());
        }
        id = g.first_link(id, &LATENT_INPUTS)?.0;
    }
    None
}

fn bind_size(g: &Graph, id: &str, d: &mut Detection) {
    d.bind(Param::Width, g.target(id, "width"));
    d.bind(Param::Height, g.target(id, "height"));
    if g.int_literal(id, "batch_size") {
        d.bind(Param::BatchSize, g.target(id, "batch_size"));
    }
}

fn trace_mask<'a>(g: &'a Graph, start: (&'a str, u64)) -> Option<(&'a str, u64)> {
    let (mut id, mut slot) = start;
    for _ in 0..MAX_WALK {
        let node = g.node(id)?;
        if node.class_type == "LoadImageMask" || is_load_image(node) {
            return Some((id, slot));
        }
        (id, slot) = g.first_link(id, &MASK_INPUTS)?;
    }
    None
}

/// Binds every LoadImage that is not a mask source as an image slot, in node-id order, so a
/// workflow with k of them takes 1..=k input images (reference images for edit models). The
/// mask may ride in the alpha of the first slot only: the caller merges the mask into the
/// first uploaded image, so an alpha source in any other slot would read whatever alpha that
/// image happens to have. Such a LoadImage is a mask file of its own instead.
fn images_and_masks(
    g: &Graph,
    live: &[&str],
    explicit: &BTreeMap<Param, Vec<Target>>,
    d: &mut Detection,
) {
    let mut mask_files: Vec<&str> = live
        .iter()
        .copied()
        .filter(|id| g.node(id).is_some_and(|n| n.class_type == "LoadImageMask"))
        .collect();
    let mut alpha_sources: Vec<&str> = Vec::new();
    for id in live {
        let Some(l) = g.link(id, "mask") else {
            continue;
        };
        let Some((src, slot)) = trace_mask(g, l) else {
            continue;
        };
        let is_image = g.node(src).is_some_and(is_load_image);
        // LoadImage's MASK output (slot 1) is its alpha; if its pixels are used too, the mask
        // rides in the same file. Otherwise that LoadImage is a mask file of its own.
        if is_image && slot == 1 && g.links_from(src, 0) {
            if !alpha_sources.contains(&src) {
                alpha_sources.push(src);
            }
        } else if !mask_files.contains(&src) {
            mask_files.push(src);
        }
    }
    let mut images: Vec<&str> = live
        .iter()
        .copied()
        .filter(|id| g.node(id).is_some_and(is_load_image) && !mask_files.contains(id))
        .collect();

    let first_slot = match explicit.get(&Param::Image) {
        Some(bound) => bound.first().map(|t| t.node.as_str()),
        None => images.first().copied(),
    };
    let bound_images: Vec<&str> = explicit
        .get(&Param::Image)
        .map(|ts| ts.iter().map(|t| t.node.as_str()).collect())
        .unwrap_or_default();
    let mut alpha_of_first = false;
    for src in alpha_sources {
        if Some(src) == first_slot {
            alpha_of_first = true;
        } else if bound_images.contains(&src) {
            let class = g.node(src).map(|n| n.class_type.clone());
            d.errors.push(NodeError::at(
                src,
                class.as_deref(),
                format!(
                    "its alpha is the mask, but [bindings] image makes it image slot {} of {}; \
                     the mask can ride only in the first image, so list \"{src}.image\" first \
                     or load the mask with LoadImageMask",
                    bound_images
                        .iter()
                        .position(|b| *b == src)
                        .map_or(0, |p| p + 1),
                    bound_images.len()
                ),
            ));
        } else {
            images.retain(|id| *id != src);
            mask_files.push(src);
        }
    }

    d.bind(
        Param::Image,
        images.iter().filter_map(|id| g.target(id, "image")),
    );
    mask_files.sort_by(|a, b| natural_cmp(a, b));
    d.bind(
        Param::Mask,
        mask_files.iter().filter_map(|id| g.target(id, "image")),
    );
    d.mask_in_image_alpha = mask_files.is_empty() && alpha_of_first;
}
