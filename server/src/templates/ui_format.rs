//! UI-format workflows, the files ComfyUI's Save writes, turned into the API format templates
//! are made of: the prompt ComfyUI's own frontend would queue for the same graph.
//!
//! A UI workflow keeps each node's widget values as a bare list (`widgets_values`) in the order
//! the frontend built the node's widgets, so naming them takes the class's inputs from the
//! server's `/object_info`, plus the widgets the frontend adds of its own (the
//! `control_after_generate` combo after a seed, the upload button of `LoadImage`). Links are
//! followed through Reroutes and bypassed nodes, a PrimitiveNode hands its value to the widgets
//! it feeds, and nodes that only exist in the frontend, or are muted, are left out.
//!
//! What the frontend builds in ways not modelled here (subgraphs, group nodes, node types the
//! server lacks, widgets only the frontend fills, values it picks at random) is refused with a
//! message that names the node and says what to do instead.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value, json};

use crate::comfy::{NodeClasses, NodeSchema};

/// `LGraphEventMode.NEVER`: the node is muted and never queued.
const MODE_NEVER: i64 = 2;
/// `LGraphEventMode.BYPASS`: links pass through the node as if it were not there.
const MODE_BYPASS: i64 = 4;

/// Node types that exist only in the frontend: they shape the graph but are never queued.
const FRONTEND_ONLY: [&str; 4] = ["Note", "MarkdownNote", "Reroute", "PrimitiveNode"];

/// Input types the frontend shows as a widget that a link may also feed.
const PRIMITIVE_WIDGETS: [&str; 5] = ["INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"];

/// Input types the frontend draws with widgets of its own making, whose values are not the
/// plain input values this converter can name (ComfyWidgets in its scripts/widgets.ts, and the
/// widgets its core extensions register).
const FRONTEND_WIDGETS: [&str; 24] = [
    "MARKDOWN",
    "IMAGEUPLOAD",
    "COLOR",
    "IMAGECOMPARE",
    "BOUNDING_BOX",
    "BOUNDING_BOXES",
    "CHART",
    "GALLERIA",
    "PAINTER",
    "COMPOSITOR",
    "TEXTAREA",
    "CURVE",
    "RANGE",
    "VIDEO_EDIT",
    "RESOLUTION_PREVIEW",
    "COLORS",
    "WEBCAM",
    "AUDIO_RECORD",
    "AUDIO_UI",
    "AUDIOUPLOAD",
    "LOAD_3D",
    "LOAD_3D_ANIMATION",
    "PREVIEW_AUDIO",
    "PREVIEW_3D",
];

/// Nodes whose `filename_prefix` the frontend runs through its text replacements before queueing
/// (its saveImageExtraOutput extension).
const SAVE_NODES: [&str; 17] = [
    "SaveImage",
    "SaveImageAdvanced",
    "SaveSVGNode",
    "SaveVideo",
    "SaveAnimatedWEBP",
    "SaveWEBM",
    "SaveAudio",
    "SaveAudioMP3",
    "SaveAudioOpus",
    "SaveAudioAdvanced",
    "SaveGLB",
    "SaveAnimatedPNG",
    "CLIPSave",
    "VAESave",
    "ModelSave",
    "LoraSave",
    "SaveLatent",
];

/// Classes the frontend's own extensions give widgets after the declared ones, with how many
/// values those may add: PreviewAny's two preview boxes (never saved, so `null`) and its mode
/// toggle (saved, never queued).
const EXTENSION_WIDGETS: [(&str, usize); 1] = [("PreviewAny", 3)];

const EXPORT_API: &str = "export the workflow from ComfyUI with Export (API) instead";

/// Whether `v` is a UI-format workflow (what ComfyUI's Save writes) rather than an API one.
pub fn is_ui_format(v: &Value) -> bool {
    v.get("nodes").is_some_and(Value::is_array) && v.get("links").is_some_and(Value::is_array)
}

/// The node a conversion error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiNodeRef {
    pub id: String,
    /// The node's `type`: its class, or for a subgraph the id of its definition.
    pub class_type: String,
    pub title: Option<String>,
}

impl fmt::Display for UiNodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.title {
            Some(t) => write!(f, "node {} ({} {t:?})", self.id, self.class_type),
            None => write!(f, "node {} ({})", self.id, self.class_type),
        }
    }
}

/// Why a UI-format workflow cannot be converted, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", node_prefix(.node.as_ref()))]
pub struct ConvertError {
    pub node: Option<UiNodeRef>,
    pub message: String,
}

fn node_prefix(node: Option<&UiNodeRef>) -> String {
    node.map(|n| format!("{n}: ")).unwrap_or_default()
}

impl ConvertError {
    fn graph(message: impl Into<String>) -> ConvertError {
        ConvertError {
            node: None,
            message: message.into(),
        }
    }
}

/// The API-format prompt ComfyUI's frontend would queue for the UI-format workflow `ui`, with
/// widget values named by the node classes `info` describes (the server's `/object_info`).
pub fn to_api(ui: &Value, info: &dyn NodeClasses) -> Result<Value, ConvertError> {
    if !is_ui_format(ui) {
        return Err(ConvertError::graph(
            "not a UI-format workflow: it needs \"nodes\" and \"links\" lists",
        ));
    }
    let graph = Graph::parse(ui, info)?;
    graph.refuse_nested(ui)?;
    let mut out = Map::new();
    for node in &graph.nodes {
        if node.is_frontend_only() || node.mode == MODE_NEVER || node.mode == MODE_BYPASS {
            continue;
        }
        out.insert(node.id.clone(), graph.api_node(node)?);
    }
    // A link that resolved to a muted node names a node the prompt does not have; the frontend
    // drops such inputs, widget value and all.
    let kept: HashSet<String> = out.keys().cloned().collect();
    for node in out.values_mut() {
        if let Some(inputs) = node["inputs"].as_object_mut() {
            inputs.retain(|_, v| match v.as_array().map(Vec::as_slice) {
                Some([Value::String(id), Value::Number(_)]) => kept.contains(id),
                _ => true,
            });
        }
    }
    Ok(Value::Object(out))
}

/// One input slot of a node, as the frontend has it once the node is loaded.
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    ty: String,
    link: Option<i64>,
    /// The widget a link into this input overrides, if it is a widget's input.
    widget: Option<String>,
}

struct UiNode<'a> {
    id: String,
    class: &'a str,
    title: Option<&'a str>,
    mode: i64,
    inputs: Vec<Slot>,
    outputs: Vec<String>,
    values: Option<&'a Value>,
    properties: &'a Value,
}

impl UiNode<'_> {
    fn is_frontend_only(&self) -> bool {
        FRONTEND_ONLY.contains(&self.class)
    }

    fn error(&self, message: impl Into<String>) -> ConvertError {
        ConvertError {
            node: Some(UiNodeRef {
                id: self.id.clone(),
                class_type: self.class.to_owned(),
                title: self.title.map(str::to_owned),
            }),
            message: message.into(),
        }
    }
}

struct Link {
    origin: String,
    slot: i64,
}

/// Where a link into an input ends up once Reroutes and bypassed nodes are looked through.
enum Source {
    Output(String, i64),
    /// Nowhere the prompt can name (a dangling Reroute, a PrimitiveNode, a bypassed node with
    /// no matching input): the input keeps its widget value, if it has one.
    Nothing,
}

struct Graph<'a> {
    nodes: Vec<UiNode<'a>>,
    by_id: HashMap<String, usize>,
    links: HashMap<i64, Link>,
    info: &'a dyn NodeClasses,
}

/// A node or link id as the prompt's string key: ids are numbers in files the frontend writes,
/// strings in some.
fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| n.as_u64().map(|u| u.to_string())),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn type_name(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl<'a> Graph<'a> {
    fn parse(ui: &'a Value, info: &'a dyn NodeClasses) -> Result<Graph<'a>, ConvertError> {
        let mut nodes = Vec::new();
        let mut by_id = HashMap::new();
        for (i, raw) in ui["nodes"].as_array().into_iter().flatten().enumerate() {
            let id = id_key(&raw["id"])
                .ok_or_else(|| ConvertError::graph(format!("node #{i} in \"nodes\" has no id")))?;
            let class = raw["type"]
                .as_str()
                .ok_or_else(|| ConvertError::graph(format!("node {id} has no \"type\"")))?;
            let mut node = UiNode {
                id: id.clone(),
                class,
                title: raw["title"].as_str(),
                mode: raw["mode"].as_i64().unwrap_or(0),
                inputs: Vec::new(),
                outputs: Vec::new(),
                values: raw.get("widgets_values"),
                properties: &raw["properties"],
            };
            for input in raw["inputs"].as_array().into_iter().flatten() {
                let link = match &input["link"] {
                    Value::Null => None,
                    v => Some(v.as_i64().ok_or_else(|| {
                        node.error(format!(
                            "input {} has a malformed link id {v}",
                            input["name"]
                        ))
                    })?),
                };
                node.inputs.push(Slot {
                    name: type_name(&input["name"]),
                    ty: type_name(&input["type"]),
                    link,
                    widget: input["widget"]["name"].as_str().map(str::to_owned),
                });
            }
            node.outputs = raw["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| type_name(&o["type"]))
                .collect();
            if by_id.insert(id.clone(), nodes.len()).is_some() {
                return Err(node.error("another node has the same id"));
            }
            nodes.push(node);
        }
        let mut links = HashMap::new();
        for raw in ui["links"].as_array().into_iter().flatten() {
            // Files before the frontend's schema 1.0 write links as
            // `[id, origin_id, origin_slot, target_id, target_slot, type]`; later ones as objects.
            let (id, origin, slot) = match raw {
                Value::Array(a) if a.len() >= 3 => (&a[0], &a[1], &a[2]),
                Value::Object(_) => (&raw["id"], &raw["origin_id"], &raw["origin_slot"]),
                _ => return Err(ConvertError::graph(format!("malformed link {raw}"))),
            };
            let (Some(id), Some(origin), Some(slot)) = (id.as_i64(), id_key(origin), slot.as_i64())
            else {
                return Err(ConvertError::graph(format!("malformed link {raw}")));
            };
            links.insert(id, Link { origin, slot });
        }
        Ok(Graph {
            nodes,
            by_id,
            links,
            info,
        })
    }

    /// Subgraphs and group nodes hide their nodes in definitions the frontend expands when it
    /// queues; that expansion (ids, promoted widgets) is not modelled here.
    fn refuse_nested(&self, ui: &Value) -> Result<(), ConvertError> {
        let subgraphs: HashSet<&str> = ui["definitions"]["subgraphs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str())
            .collect();
        for node in &self.nodes {
            if subgraphs.contains(node.class) || is_uuid(node.class) {
                return Err(node.error(format!(
                    "is a subgraph, which this converter does not expand; unpack it in ComfyUI \
                     (right-click → Unpack Subgraph) and save again, or {EXPORT_API}"
                )));
            }
            if node.class.starts_with("workflow>") || node.class.starts_with("workflow/") {
                return Err(node.error(format!(
                    "is a group node, which this converter does not expand; convert it back to \
                     nodes in ComfyUI (right-click → Convert to nodes) and save again, or \
                     {EXPORT_API}"
                )));
            }
        }
        Ok(())
    }

    fn node(&self, id: &str) -> Option<&UiNode<'a>> {
        self.by_id.get(id).map(|&i| &self.nodes[i])
    }

    /// A node's entry in the prompt: its widget values by input name, then its links.
    fn api_node(&self, node: &UiNode) -> Result<Value, ConvertError> {
        let schema = self.info.class(node.class).ok_or_else(|| {
            node.error(format!(
                "the server lacks node type {}, so its widget values cannot be named; install \
                 it there, or {EXPORT_API} from a ComfyUI that has it",
                node.class
            ))
        })?;
        let layout = Layout::of(node.class, schema).map_err(|m| node.error(m))?;
        let mut inputs: Map<String, Value> = layout.align(node)?.into_iter().collect();
        let live = self.live_inputs(node);
        if let Some(stray) = node
            .inputs
            .iter()
            .find(|s| s.link.is_some() && !live.iter().any(|l| l.name == s.name))
        {
            return Err(node.error(format!(
                "input {:?} is linked, but {} on this server has no such input; open the \
                 workflow in ComfyUI with this server and save it again, or {EXPORT_API}",
                stray.name, node.class
            )));
        }

        // The frontend copies each PrimitiveNode's value into the widgets it feeds before it
        // reads any widget.
        for slot in &live {
            let (Some(link), Some(widget)) = (slot.link, &slot.widget) else {
                continue;
            };
            if inputs.contains_key(widget)
                && let Some(value) = self.primitive_value(link)?
            {
                inputs.insert(widget.clone(), value);
            }
        }
        for (name, value) in inputs.iter_mut() {
            if schema.spec(name)[1]["dynamicPrompts"] == json!(true)
                && let Value::String(text) = value
            {
                *text = dynamic_prompt(text).map_err(|()| {
                    node.error(format!(
                        "input {name:?} has a {{a|b}} choice, which ComfyUI's frontend picks at \
                         random each time it queues; write the text without it, or \
                         {EXPORT_API}"
                    ))
                })?;
            }
        }
        if SAVE_NODES.contains(&node.class)
            && let Some(Value::String(prefix)) = inputs.get("filename_prefix")
        {
            self.check_replacements(prefix).map_err(|m| node.error(m))?;
        }
        for value in inputs.values_mut() {
            // The backend reads a list as a link; a list-valued widget goes boxed.
            if value.is_array() {
                *value = json!({ "__value__": value.take() });
            }
        }

        for (i, slot) in live.iter().enumerate() {
            if slot.link.is_none() {
                continue;
            }
            if let Source::Output(id, out) =
                self.resolve_input(node, &live, i, None, &mut HashSet::new())?
            {
                inputs.insert(slot.name.clone(), json!([id, out]));
            }
        }

        let title = node
            .title
            .or(schema.display_name.as_deref())
            .unwrap_or(node.class);
        Ok(json!({
            "inputs": inputs,
            "class_type": node.class,
            "_meta": {"title": title},
        }))
    }

    /// A node's input slots as the frontend lays them out once loaded: for a class the server
    /// describes, every socket in declaration order, then the inputs of its primitive widgets,
    /// whatever order the file has them in; the file's own slots otherwise.
    fn live_inputs(&self, node: &UiNode) -> Vec<Slot> {
        let schema = (!node.is_frontend_only())
            .then(|| self.info.class(node.class))
            .flatten();
        let Some((schema, order)) = schema.and_then(|s| s.order.as_ref().map(|o| (s, o))) else {
            return node.inputs.clone();
        };
        let mut sockets = Vec::new();
        let mut widgets = Vec::new();
        for name in order {
            let (ty, kind) = classify(&schema.spec(name));
            let saved = node.inputs.iter().find(|s| &s.name == name);
            let slot = |widget: Option<String>| Slot {
                name: name.clone(),
                ty: ty.clone(),
                link: saved.and_then(|s| s.link),
                widget: saved.and_then(|s| s.widget.clone()).or(widget),
            };
            match kind {
                Kind::Socket => sockets.push(slot(None)),
                Kind::Widget => widgets.push(slot(Some(name.clone()))),
                Kind::FrontendWidget | Kind::Dynamic => {}
            }
        }
        sockets.extend(widgets);
        sockets
    }

    /// The value a PrimitiveNode at the other end of `link` gives the widget it feeds.
    fn primitive_value(&self, link: i64) -> Result<Option<Value>, ConvertError> {
        let Some(origin) = self.links.get(&link).and_then(|l| self.node(&l.origin)) else {
            return Ok(None);
        };
        if origin.class != "PrimitiveNode" {
            return Ok(None);
        }
        let value = origin
            .values
            .and_then(|v| v.get(0))
            .ok_or_else(|| origin.error("has no value; connect it again in ComfyUI and save"))?;
        if origin.properties["Run widget replace on values"] == json!(true)
            && value.as_str().is_some_and(|s| s.contains('%'))
        {
            return Err(origin.error(format!(
                "has \"Run widget replace on values\" on, a replacement ComfyUI's frontend makes \
                 when it queues; turn it off, or {EXPORT_API}"
            )));
        }
        Ok(Some(value.clone()))
    }

    /// Follows the link into input `slot` of `node` (`live` being its slots) to the output it
    /// comes from, as the frontend's `ExecutableNodeDTO.resolveInput` does.
    fn resolve_input(
        &self,
        node: &UiNode,
        live: &[Slot],
        slot: usize,
        ty: Option<&str>,
        seen: &mut HashSet<(String, bool, i64)>,
    ) -> Result<Source, ConvertError> {
        let key = (
            node.id.clone(),
            false,
            i64::try_from(slot).unwrap_or(i64::MAX),
        );
        if !seen.insert(key) {
            return Err(node.error("its links go round in a circle"));
        }
        let input = live
            .get(slot)
            .ok_or_else(|| node.error("is bypassed but has no input to pass its output through"))?;
        let Some(link_id) = input.link else {
            return Ok(Source::Nothing);
        };
        let link = self.links.get(&link_id).ok_or_else(|| {
            node.error(format!(
                "input {:?} refers to link {link_id}, which the workflow does not have",
                input.name
            ))
        })?;
        let origin = self.node(&link.origin).ok_or_else(|| {
            node.error(format!(
                "input {:?} is linked from node {}, which the workflow does not have",
                input.name, link.origin
            ))
        })?;
        self.resolve_output(origin, link.slot, ty.unwrap_or(&input.ty), seen)
    }

    /// Where output `slot` of `node` really comes from, for an input of type `ty`.
    fn resolve_output(
        &self,
        node: &UiNode,
        slot: i64,
        ty: &str,
        seen: &mut HashSet<(String, bool, i64)>,
    ) -> Result<Source, ConvertError> {
        if !seen.insert((node.id.clone(), true, slot)) {
            return Err(node.error("its links go round in a circle"));
        }
        if node.mode == MODE_BYPASS {
            let live = self.live_inputs(node);
            return match bypass_slot(node, &live, slot, ty)? {
                Some(i) => self.resolve_input(node, &live, i, None, seen),
                None => Ok(Source::Nothing),
            };
        }
        if node.is_frontend_only() {
            // Only a Reroute has an input to follow; its slots pair up by index.
            return match usize::try_from(slot) {
                Ok(i) if i < node.inputs.len() => {
                    self.resolve_input(node, &node.inputs, i, Some(ty), seen)
                }
                _ => Ok(Source::Nothing),
            };
        }
        Ok(Source::Output(node.id.clone(), slot))
    }

    /// Refuses the `%…%` patterns the frontend fills in a save node's `filename_prefix` when it
    /// queues; the ones the server fills (`%width%`, `%year%`, …) pass.
    fn check_replacements(&self, prefix: &str) -> Result<(), String> {
        for pattern in percent_patterns(prefix) {
            let parts: Vec<&str> = pattern.split('.').collect();
            let frontend_fills = match parts.as_slice() {
                [node, _] => self.nodes.iter().any(|n| {
                    n.properties["Node name for S&R"].as_str() == Some(node)
                        || self.title_of(n) == *node
                }),
                [first, ..] => first.starts_with("date:"),
                [] => false,
            };
            if frontend_fills {
                return Err(format!(
                    "filename_prefix uses %{pattern}%, which ComfyUI's frontend fills in when it \
                     queues; write it without, using the server's own %year%, %month%, %day%, \
                     %hour%, %minute%, %second%, %width% and %height% if need be"
                ));
            }
        }
        Ok(())
    }

    fn title_of<'n>(&'n self, node: &'n UiNode) -> &'n str {
        node.title
            .or_else(|| {
                self.info
                    .class(node.class)
                    .and_then(|s| s.display_name.as_deref())
            })
            .unwrap_or(node.class)
    }
}

/// The input of a bypassed `node` that its output `slot` passes on to an input of type `ty`:
/// the one at the same index if its type fits, else the first of exactly that type, else the
/// first that fits (`ExecutableNodeDTO.#getBypassSlotIndex` in the frontend).
fn bypass_slot(
    node: &UiNode,
    live: &[Slot],
    slot: i64,
    ty: &str,
) -> Result<Option<usize>, ConvertError> {
    let index = usize::try_from(slot).ok();
    let Some(out_ty) = index.and_then(|i| node.outputs.get(i)) else {
        return Err(node.error(format!(
            "a link leaves its output {slot}, which it does not have"
        )));
    };
    let index = index.unwrap_or_default();
    if ty.is_empty() || ty == "*" {
        return Ok(Some(if live.len() > index { index } else { 0 }));
    }
    if let Some(same) = live.get(index)
        && fits(&same.ty, out_ty)
        && fits(&same.ty, ty)
    {
        return Ok(Some(index));
    }
    if let Some(exact) = live.iter().position(|s| s.ty == ty) {
        return Ok(Some(exact));
    }
    Ok(live
        .iter()
        .position(|s| fits(&s.ty, out_ty) && fits(&s.ty, ty)))
}

/// Whether slots of types `a` and `b` may be linked: wildcards, equal names in any case, or
/// comma-separated lists that share a type (litegraph's `isValidConnection`).
fn fits(a: &str, b: &str) -> bool {
    if a.is_empty() || a == "*" || b.is_empty() || b == "*" || a == b {
        return true;
    }
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    if !a.contains(',') && !b.contains(',') {
        return a == b;
    }
    a.split(',').any(|x| b.split(',').any(|y| fits(x, y)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only a socket; a link is its only value.
    Socket,
    /// A widget with a socket beside it.
    Widget,
    /// A widget the frontend fills itself.
    FrontendWidget,
    /// An input whose slots and widgets change with its value (the V3 `COMFY_…_V3` types).
    Dynamic,
}

/// An input's type as the frontend names it (`COMBO` for a list of options), and how it shows.
fn classify(spec: &Value) -> (String, Kind) {
    let ty = match &spec[0] {
        Value::Array(_) => "COMBO".to_owned(),
        v => type_name(v),
    };
    let kind = if truthy(&spec[1]["forceInput"]) {
        Kind::Socket
    } else if PRIMITIVE_WIDGETS.contains(&ty.as_str()) {
        Kind::Widget
    } else if FRONTEND_WIDGETS.contains(&ty.as_str()) {
        Kind::FrontendWidget
    } else if ty.starts_with("COMFY_") && ty.ends_with("_V3") {
        Kind::Dynamic
    } else {
        Kind::Socket
    };
    (ty, kind)
}

/// JavaScript's truthiness, which decides the frontend's options.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// What one of a node's widget values is.
#[derive(Debug, Clone, PartialEq)]
enum Widget {
    /// The value of the input of that name.
    Input(String),
    /// The value of a widget the frontend adds and never queues, by its name.
    Frontend(&'static str),
}

/// How a class's widget values line up in `widgets_values`.
struct Layout {
    widgets: Vec<Widget>,
    /// For each value as frontends before 1.16 saved them, whether it belongs to a `forceInput`
    /// input (a widget they kept hidden, which later ones drop); `None` when no input has
    /// `forceInput`.
    legacy: Option<Vec<bool>>,
    /// How many values may follow, for widgets the frontend's own extensions add to the class.
    trailing: usize,
}

impl Layout {
    /// The widgets ComfyUI's frontend builds for `class`: one per widget input, required ones
    /// first, in `input_order`; after a seed-like INT (or any input with
    /// `control_after_generate`) its control combo; after the required inputs, the upload
    /// button of a class that takes an upload.
    fn of(class: &str, schema: &NodeSchema) -> Result<Layout, String> {
        let Some(order) = &schema.order else {
            return Err(format!(
                "the server's /object_info gives no input_order for {class} (ComfyUI older than \
                 0.3.30?), so its widget values cannot be named; {EXPORT_API}"
            ));
        };
        let spec = |name: &str| schema.spec(name);
        let required = order.iter().filter(|n| schema.required.contains(n)).count();
        for name in order {
            let spec = spec(name);
            let options = &spec[1];
            if let Some(flag) = ["audio_upload", "file_upload"]
                .into_iter()
                .find(|f| truthy(&options[*f]))
            {
                return Err(format!(
                    "input {name:?} is a file picker ({flag}) whose widgets ComfyUI's frontend \
                     lays out itself; {EXPORT_API}"
                ));
            }
        }
        // The frontend's upload extension adds an `upload` button for the first required
        // combo that takes uploads, as one more required input.
        let upload = order[..required].iter().any(|n| {
            let s = spec(n);
            matches!(classify(&s).0.as_str(), "COMBO")
                && ["image_upload", "video_upload", "animated_image_upload"]
                    .iter()
                    .any(|f| s[1][*f] == json!(true))
        });
        let mut widgets = Vec::new();
        let mut legacy = Vec::new();
        let mut force_input = false;
        for (i, name) in order.iter().enumerate() {
            if upload && i == required {
                widgets.push(Widget::Frontend("upload"));
                legacy.push(false);
            }
            let spec = spec(name);
            let options = &spec[1];
            let control = &options["control_after_generate"];
            let (ty, kind) = classify(&spec);
            match kind {
                Kind::Socket => {
                    if truthy(&options["forceInput"]) {
                        force_input = true;
                        legacy.push(true);
                        if truthy(control) {
                            legacy.push(false);
                        }
                    }
                }
                Kind::Widget => {
                    if !options["remote"].is_null() {
                        return Err(format!(
                            "input {name:?} loads its options from the server and the frontend \
                             adds buttons for that, whose values vary by version; {EXPORT_API}"
                        ));
                    }
                    widgets.push(Widget::Input(name.clone()));
                    let controls = match ty.as_str() {
                        "INT" if control.is_null() => {
                            usize::from(name == "seed" || name == "noise_seed")
                        }
                        "INT" | "FLOAT" => usize::from(truthy(control)),
                        "COMBO" if truthy(control) => 2,
                        _ => 0,
                    };
                    let names = ["control_after_generate", "control_filter_list"];
                    widgets.extend(names[..controls].iter().map(|n| Widget::Frontend(n)));
                    legacy.push(false);
                    if truthy(control) {
                        legacy.push(false);
                    }
                }
                Kind::FrontendWidget => {
                    return Err(format!(
                        "input {name:?} is a {ty} widget, which only ComfyUI's frontend knows how \
                         to fill; {EXPORT_API}"
                    ));
                }
                Kind::Dynamic => {
                    return Err(format!(
                        "input {name:?} is a {ty} input, whose slots change with its value; \
                         {EXPORT_API}"
                    ));
                }
            }
        }
        if upload && required == order.len() {
            widgets.push(Widget::Frontend("upload"));
            legacy.push(false);
        }
        let trailing = EXTENSION_WIDGETS
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(0, |(_, n)| *n);
        Ok(Layout {
            widgets,
            legacy: force_input.then_some(legacy),
            trailing,
        })
    }

    /// The node's widget values by input name.
    fn align(&self, node: &UiNode) -> Result<Vec<(String, Value)>, ConvertError> {
        let values: &[Value] = match node.values {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(node.error(format!("widgets_values is not a list; {EXPORT_API}")));
            }
        };
        let name = |values: Vec<&Value>| {
            let fits = values.len() >= self.widgets.len()
                && values.len() <= self.widgets.len() + self.trailing;
            fits.then(|| {
                self.widgets
                    .iter()
                    .zip(values)
                    .filter_map(|(w, v)| match w {
                        Widget::Input(n) => Some((n.clone(), v.clone())),
                        Widget::Frontend(_) => None,
                    })
                    .collect()
            })
        };
        if let Some(named) = name(values.iter().collect()) {
            return Ok(named);
        }
        // The frontend's `migrateWidgetsValues` drops the values older frontends saved for
        // `forceInput` inputs, when the count says they are there.
        if let Some(legacy) = &self.legacy
            && legacy.len() == values.len()
        {
            let kept = values
                .iter()
                .zip(legacy)
                .filter(|(_, forced)| !**forced)
                .map(|(v, _)| v)
                .collect();
            if let Some(named) = name(kept) {
                return Ok(named);
            }
        }
        let names: Vec<&str> = self
            .widgets
            .iter()
            .map(|w| match w {
                Widget::Input(n) => n.as_str(),
                Widget::Frontend(n) => n,
            })
            .collect();
        Err(node.error(format!(
            "has {} widget values, but {} on this server has {} widgets ({}); the workflow was \
             saved with another version of the node or of ComfyUI: open it in ComfyUI with this \
             server and save it again, or {EXPORT_API}",
            values.len(),
            node.class,
            self.widgets.len(),
            names.join(", ")
        )))
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The texts between `%` signs, as the frontend's `/%([^%]+)%/g` finds them.
fn percent_patterns(s: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(0) => rest = after,
            Some(end) => {
                found.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

/// What the frontend's dynamic prompt processing makes of `text` (comments stripped, `{a}`
/// groups opened, `\{` unescaped); `Err` when a `{a|b}` group makes it pick at random.
fn dynamic_prompt(text: &str) -> Result<String, ()> {
    let chars: Vec<char> = strip_comments(text).chars().collect();
    let mut i = 0;
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => escape(&chars, &mut i, &mut out),
            '{' => out.push_str(&choice(&chars, &mut i)?),
            _ => out.push(c),
        }
    }
    Ok(unescape(&out))
}

/// Keeps a backslash and the character after it; past the end the frontend reads `undefined`.
fn escape(chars: &[char], i: &mut usize, out: &mut String) {
    out.push('\\');
    match chars.get(*i) {
        Some(c) => out.push(*c),
        None => out.push_str("undefined"),
    }
    *i += 1;
}

/// One `{…|…}` group, whose opening brace is already read.
fn choice(chars: &[char], i: &mut usize) -> Result<String, ()> {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    while *i < chars.len() {
        let c = chars[*i];
        *i += 1;
        match c {
            '\\' => {
                escape(chars, i, &mut current);
                continue;
            }
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            '|' if depth == 0 => {
                options.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    options.push(current);
    if options.iter().any(|o| *o != options[0]) {
        return Err(());
    }
    dynamic_prompt(&options[0])
}

/// Removes `/* … */` and `// …` comments as the frontend's `/\/\*[\s\S]*?\*\/|\/\/.*/g` does.
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(body) = rest.strip_prefix("/*")
            && let Some(end) = body.find("*/")
        {
            rest = &body[end + 2..];
        } else if let Some(body) = rest.strip_prefix("//") {
            let end = body
                .find(['\n', '\r', '\u{2028}', '\u{2029}'])
                .unwrap_or(body.len());
            rest = &body[end..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// `\{`, `\}` and `\|` become the bare character, as the frontend's last step.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, '{' | '}' | '|')
        {
            out.push(next);
            chars.next();
        } else {
            out.push(c);
        }
    }
    out
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The workflow a PNG or WebP image made by ComfyUI carries: its API-format `prompt` when it
/// has one, else its UI-format `workflow` (which `to_api` converts). PNGs carry them in text
/// chunks, WebPs from ComfyUI's SaveAnimatedWEBP as `prompt:`/`workflow:` EXIF strings.
pub fn workflow_from_png(bytes: &[u8]) -> Option<Value> {
    let texts = if bytes.starts_with(PNG_SIGNATURE) {
        png_texts(bytes)
    } else if bytes.get(..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        webp_texts(bytes)
    } else {
        return None;
    };
    let parsed = |key: &str| {
        texts
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .find_map(|(_, text)| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object)
    };
    parsed("prompt").or_else(|| parsed("workflow").filter(is_ui_format))
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(b)).ok()
}

/// A PNG's text chunks as (keyword, text). Compressed ones are skipped: ComfyUI writes none.
fn png_texts(bytes: &[u8]) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    let mut at = PNG_SIGNATURE.len();
    while let Some(len) = be_u32(bytes, at) {
        let Some(kind) = bytes.get(at + 4..at + 8) else {
            break;
        };
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break;
        };
        match kind {
            // ComfyUI's `comf` chunk is a tEXt under another name.
            b"tEXt" | b"comf" => {
                if let Some((key, text)) = split_nul(data) {
                    texts.push((latin1(key), utf8_or_latin1(text)));
                }
            }
            b"iTXt" => {
                if let Some(entry) = itxt(data) {
                    texts.push(entry);
                }
            }
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    texts
}

fn split_nul(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = data.iter().position(|&b| b == 0)?;
    Some((&data[..nul], &data[nul + 1..]))
}

/// An uncompressed iTXt chunk: keyword, flags, language and translated keyword, then UTF-8.
fn itxt(data: &[u8]) -> Option<(String, String)> {
    let (key, rest) = split_nul(data)?;
    let (&compressed, rest) = rest.split_first()?;
    if compressed != 0 {
        return None;
    }
    let (_, rest) = split_nul(rest.get(1..)?)?;
    let (_, text) = split_nul(rest)?;
    Some((latin1(key), String::from_utf8(text.to_vec()).ok()?))
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// tEXt is Latin-1 by the PNG standard (what Pillow writes), though some tools put UTF-8 there.
fn utf8_or_latin1(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap_or_else(|_| latin1(b))
}

/// The `key:value` strings of a WebP's EXIF chunk, split at the first colon.
fn webp_texts(bytes: &[u8]) -> Vec<(String, String)> {
    let mut at = 12;
    while let Some(kind) = bytes.get(at..at + 4) {
        let Some(len) = bytes
            .get(at + 4..at + 8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .and_then(|b| usize::try_from(u32::from_le_bytes(b)).ok())
        else {
            break;
        };
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break;
        };
        if kind == b"EXIF" {
            let tiff = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
            return exif_strings(tiff)
                .into_iter()
                .filter_map(|s| {
                    let (k, v) = s.split_once(':')?;
                    Some((k.to_owned(), v.to_owned()))
                })
                .collect();
        }
        // RIFF chunks are padded to an even length.
        at += 8 + len + (len & 1);
    }
    Vec::new()
}

/// The ASCII values of a TIFF structure's first IFD, where ComfyUI puts its strings.
fn exif_strings(tiff: &[u8]) -> Vec<String> {
    let little = match tiff.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Vec::new(),
    };
    let u16_at = |at: usize| {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(usize::from(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }))
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
        .ok()
    };
    let Some(ifd) = u32_at(4) else {
        return Vec::new();
    };
    let count = u16_at(ifd).unwrap_or(0);
    let mut strings = Vec::new();
    for entry in (0..count).map(|i| ifd + 2 + i * 12) {
        const ASCII: usize = 2;
        let (Some(ASCII), Some(len)) = (u16_at(entry + 2), u32_at(entry + 4)) else {
            continue;
        };
        // Values of four bytes or fewer sit in the entry itself.
        let start = if len <= 4 {
            Some(entry + 8)
        } else {
            u32_at(entry + 8)
        };
        let Some(raw) = start.and_then(|s| tiff.get(s..s.saturating_add(len))) else {
            continue;
        };
        let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
        if let Ok(s) = std::str::from_utf8(raw) {
            strings.push(s.to_owned());
        }
    }
    strings
}

#[cfg(test)]
mod tests;
