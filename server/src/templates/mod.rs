//! Workflow templates: one ComfyUI workflow per model, with an optional TOML sidecar. A
//! workflow is an API-format export, a UI-format file as ComfyUI's Save writes it (converted
//! with a server's node schemas), or a PNG or WebP image ComfyUI made, which carries its own.
//!
//! Loading finds where each request value goes (prompt, seed, size, …) by following the graph's
//! links from the sampler and the output nodes, so standard exports need no hand mapping.
//! Explicit `[bindings]` and `"{{name}}"` placeholders override what detection finds.

mod assemble;
mod check;
mod detect;
mod inputs;
mod render;
mod sidecar;
mod ui_format;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::comfy::NodeClasses;
pub use check::Problem;
pub use inputs::{MAX_CFG, STRENGTH};
pub use sidecar::Overrides;
pub use ui_format::{ConvertError, UiNodeRef, is_ui_format, to_api, workflow_from_png};

/// Workflow files bigger than this are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The file types a workflow is read from; a sidecar is `<same stem>.toml`.
pub const WORKFLOW_EXTENSIONS: [&str; 3] = ["json", "png", "webp"];

/// A request value that a template can route into its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    Prompt,
    NegativePrompt,
    Seed,
    Width,
    Height,
    Steps,
    Cfg,
    Sampler,
    Scheduler,
    Image,
    Mask,
    Strength,
    BatchSize,
}

impl Param {
    pub const ALL: [Param; 13] = [
        Param::Prompt,
        Param::NegativePrompt,
        Param::Seed,
        Param::Width,
        Param::Height,
        Param::Steps,
        Param::Cfg,
        Param::Sampler,
        Param::Scheduler,
        Param::Image,
        Param::Mask,
        Param::Strength,
        Param::BatchSize,
    ];

    /// The name used in `[bindings]` and in `"{{name}}"` placeholders.
    pub fn name(self) -> &'static str {
        match self {
            Param::Prompt => "prompt",
            Param::NegativePrompt => "negative_prompt",
            Param::Seed => "seed",
            Param::Width => "width",
            Param::Height => "height",
            Param::Steps => "steps",
            Param::Cfg => "cfg",
            Param::Sampler => "sampler",
            Param::Scheduler => "scheduler",
            Param::Image => "image",
            Param::Mask => "mask",
            Param::Strength => "strength",
            Param::BatchSize => "batch_size",
        }
    }

    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub use app::api::{
    models::ModelKind,
    size::{Size, SizeParseError, SizeRule},
};

/// The sixteen sizes the original bridge offered; the default `sizes` of a template.
pub const DEFAULT_SIZES: [Size; 16] = [
    Size::new(512, 512),
    Size::new(512, 768),
    Size::new(768, 512),
    Size::new(576, 1024),
    Size::new(1024, 576),
    Size::new(768, 768),
    Size::new(768, 1024),
    Size::new(1024, 768),
    Size::new(768, 1344),
    Size::new(1344, 768),
    Size::new(1024, 1024),
    Size::new(1024, 1536),
    Size::new(1536, 1024),
    Size::new(1152, 1536),
    Size::new(1536, 1152),
    Size::new(1536, 1536),
];

/// Model-level defaults from the sidecar's `[defaults]`; `None` keeps the workflow's own value.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub negative_prompt: Option<String>,
    /// Denoise for img2img (default 0.6) and inpaint (default 1.0); never applied to txt2img.
    pub strength: f64,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            steps: None,
            cfg: None,
            sampler: None,
            scheduler: None,
            negative_prompt: None,
            strength: 0.6,
        }
    }
}

/// One input of one node that receives a request value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub node: String,
    pub input: String,
    pub class_type: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} ({})", self.node, self.input, self.class_type)
    }
}

/// The node an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub id: String,
    pub class_type: Option<String>,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.class_type {
            Some(c) => write!(f, "node {} ({c})", self.id),
            None => write!(f, "node {}", self.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", .file.display(), node_prefix(.node.as_ref()))]
pub struct TemplateError {
    pub file: PathBuf,
    pub node: Option<NodeRef>,
    pub message: String,
    /// The file cannot be read until a ComfyUI server has sent its node schemas (a UI-format
    /// workflow); nothing is wrong with it yet.
    pub pending: bool,
}

fn node_prefix(node: Option<&NodeRef>) -> String {
    node.map(|n| format!(": {n}")).unwrap_or_default()
}

impl TemplateError {
    fn file(file: &Path, message: impl Into<String>) -> TemplateError {
        TemplateError {
            file: file.to_path_buf(),
            node: None,
            message: message.into(),
            pending: false,
        }
    }
}

/// Values for one render.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderParams {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub seed: u64,
    pub size: Size,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub quality: Option<String>,
    pub style: Option<String>,
    /// Uploaded input images, one per image slot in slot order. Slots beyond the list get the
    /// last image, so every LoadImage names a file that exists.
    pub images: Vec<String>,
    pub mask: Option<String>,
    pub strength: Option<f64>,
}

impl RenderParams {
    /// Values for an image of `size`, with every other value the template's own.
    pub fn new(size: Size) -> RenderParams {
        RenderParams {
            prompt: String::new(),
            negative_prompt: None,
            seed: 0,
            size,
            steps: None,
            cfg: None,
            sampler: None,
            scheduler: None,
            quality: None,
            style: None,
            images: Vec::new(),
            mask: None,
            strength: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub kind: ModelKind,
    /// The sizes menus offer; with a rule, the common ones it allows.
    pub sizes: Vec<Size>,
    /// Any size within these limits is allowed too.
    pub size_rule: Option<SizeRule>,
    pub default_size: Size,
    pub defaults: Defaults,
    /// `quality` request values (low, medium, high, hd, standard, …) → overrides.
    pub quality: BTreeMap<String, Overrides>,
    /// `style` request values (vivid, natural, …) → overrides.
    pub style: BTreeMap<String, Overrides>,
    /// A stable pseudo creation time for `/v1/models`, derived from the id.
    pub created: u64,
    /// Converted from a UI-format workflow with the servers' node schemas, so a server with
    /// other schemas may convert it otherwise.
    pub converted: bool,
    graph: serde_json::Map<String, Value>,
    bindings: BTreeMap<Param, Vec<Target>>,
    outputs: Vec<String>,
    mask_in_image_alpha: bool,
}

impl Template {
    /// Whether a request value reaches the graph. Unsupported values are ignored by `render`.
    pub fn supports(&self, param: Param) -> bool {
        (param == Param::Mask && self.mask_in_image_alpha) || !self.targets(param).is_empty()
    }

    /// How many input images the workflow takes (its LoadImage slots); 0 for txt2img.
    pub fn image_slots(&self) -> usize {
        self.targets(Param::Image).len()
    }

    /// Image output node ids, in id order.
    pub fn output_nodes(&self) -> &[String] {
        &self.outputs
    }

    pub fn allows_size(&self, s: Size) -> bool {
        self.sizes.contains(&s) || self.size_rule.is_some_and(|r| r.allows(s))
    }

    /// Where a request value goes; empty when unsupported.
    pub fn targets(&self, param: Param) -> &[Target] {
        self.bindings.get(&param).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when the mask is read from the alpha channel of the uploaded image itself (one
    /// LoadImage feeds both pixels and mask), so the caller must merge the mask into the image's
    /// alpha before uploading; `RenderParams::mask` is then not written anywhere. That LoadImage
    /// is always the first image slot: only `RenderParams::images[0]` carries the mask.
    pub fn mask_in_image_alpha(&self) -> bool {
        self.mask_in_image_alpha
    }

    /// The workflow as loaded, for inspection.
    pub fn graph(&self) -> &serde_json::Map<String, Value> {
        &self.graph
    }

    /// The prompt text the workflow was saved with, for requests that bring none (variations);
    /// empty when the workflow's prompt is a placeholder.
    pub fn saved_prompt(&self) -> String {
        render::saved_prompt(self)
    }

    /// A fresh API-format prompt with the request values applied.
    pub fn render(&self, p: &RenderParams) -> Value {
        render::render(self, p)
    }

    /// What keeps the workflow from running on a server with these nodes and files; empty
    /// when it can run there.
    pub fn check(&self, info: &crate::comfy::ObjectInfo) -> Vec<Problem> {
        check::check(self, info)
    }

    /// The model files the workflow loads.
    pub fn model_files(&self) -> Vec<String> {
        check::model_files(self)
    }
}

/// Every loaded template, by id.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: BTreeMap<String, Arc<Template>>,
}

impl TemplateSet {
    /// Loads every workflow in `dir` plus `extra` files (e.g. from the env var WORKFLOW_TXT2IMG).
    /// All-or-nothing: any error → Err with every error found.
    ///
    /// A missing `dir` is an error unless `extra` names at least one file.
    pub fn load(dir: &Path, extra: &[PathBuf]) -> Result<TemplateSet, Vec<TemplateError>> {
        let (set, errors) = TemplateSet::load_each(dir, extra, None);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// As [`TemplateSet::load`], each file on its own: the workflows that load, and the errors
    /// of those that do not. UI-format workflows are converted with `schemas`, the node
    /// classes of the servers that have answered; without them they are `pending` errors.
    pub fn load_each(
        dir: &Path,
        extra: &[PathBuf],
        schemas: Option<&dyn NodeClasses>,
    ) -> (TemplateSet, Vec<TemplateError>) {
        let mut errors = Vec::new();
        let mut pairs = match list_dir(dir) {
            Ok((pairs, mut orphans)) => {
                errors.append(&mut orphans);
                pairs
            }
            Err(e) if extra.is_empty() || dir.exists() => {
                errors.push(e);
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        for path in extra {
            match extra_pair(path) {
                Ok(pair) => {
                    let dup = pairs.iter().any(|(j, _)| same_file(j, &pair.0));
                    if !dup {
                        pairs.push(pair);
                    }
                }
                Err(e) => errors.push(e),
            }
        }

        let mut templates: BTreeMap<String, Arc<Template>> = BTreeMap::new();
        for (json, toml) in pairs {
            match load_template(&json, toml.as_deref(), schemas) {
                Ok(t) => {
                    if let Some(other) = templates.get(&t.id) {
                        errors.push(TemplateError::file(
                            &json,
                            format!(
                                "model id {:?} is already used by {}",
                                t.id,
                                other.file.display()
                            ),
                        ));
                    } else {
                        templates.insert(t.id.clone(), Arc::new(t));
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        (TemplateSet { templates }, errors)
    }

    /// This set, plus `template` unless the set has a model of that id already.
    pub fn with(mut self, template: Arc<Template>) -> TemplateSet {
        self.templates
            .entry(template.id.clone())
            .or_insert(template);
        self
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Template>> {
        self.templates.get(id)
    }

    /// Templates sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Template>> {
        self.templates.values()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

type FilePair = (PathBuf, Option<PathBuf>);

/// Pairs each workflow file (`<stem>.json`, `.png` or `.webp`) with its optional
/// `<stem>.toml`, sorted by file name; a `.toml` without its workflow, or two workflows of one
/// stem, are returned as errors beside the pairs.
fn list_dir(dir: &Path) -> Result<(Vec<FilePair>, Vec<TemplateError>), TemplateError> {
    let read = std::fs::read_dir(dir).map_err(|e| {
        TemplateError::file(dir, format!("cannot read the workflow directory: {e}"))
    })?;
    let mut jsons: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut tomls = BTreeMap::new();
    let mut errors = Vec::new();
    for entry in read.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Editor backups and dotfiles are not models.
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if WORKFLOW_EXTENSIONS.contains(&ext) => {
                if let Some(other) = jsons.insert(stem.to_owned(), path.clone()) {
                    // read_dir's order is arbitrary: name both files, and load neither.
                    let (first, second) = if other < path {
                        (other, path.clone())
                    } else {
                        (path.clone(), other)
                    };
                    errors.push(TemplateError::file(
                        &second,
                        format!(
                            "{} defines model {stem:?} too; keep one of the two files",
                            first.display()
                        ),
                    ));
                }
            }
            Some("toml") => {
                tomls.insert(stem.to_owned(), path.clone());
            }
            _ => {}
        }
    }
    let clashing: Vec<String> = errors
        .iter()
        .filter_map(|e: &TemplateError| Some(e.file.file_stem()?.to_string_lossy().to_string()))
        .collect();
    errors.extend(
        tomls
            .iter()
            .filter(|(stem, _)| !jsons.contains_key(*stem))
            .map(|(stem, path)| {
                TemplateError::file(
                    path,
                    format!("sidecar without a workflow: {stem}.json is missing"),
                )
            }),
    );
    let pairs = jsons
        .into_iter()
        .filter(|(stem, _)| !clashing.contains(stem))
        .map(|(stem, json)| (json, tomls.remove(&stem)))
        .collect();
    Ok((pairs, errors))
}

fn extra_pair(path: &Path) -> Result<FilePair, TemplateError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !WORKFLOW_EXTENSIONS.contains(&ext) {
        return Err(TemplateError::file(
            path,
            "a workflow file must end in .json, .png or .webp",
        ));
    }
    if !path.is_file() {
        return Err(TemplateError::file(path, "workflow file not found"));
    }
    let toml = path.with_extension("toml");
    Ok((path.to_path_buf(), toml.is_file().then_some(toml)))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TemplateError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| TemplateError::file(path, format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(TemplateError::file(
            path,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    std::fs::read(path).map_err(|e| TemplateError::file(path, format!("cannot read: {e}")))
}

fn read_text(path: &Path) -> Result<String, TemplateError> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|_| TemplateError::file(path, "cannot read: the file is not UTF-8 text"))
}

/// The API-format workflow a file holds: as written, converted from the UI format (then
/// `true`), or embedded in a ComfyUI image.
fn read_workflow(
    path: &Path,
    schemas: Option<&dyn NodeClasses>,
) -> Result<(Value, bool), TemplateError> {
    let value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&read_text(path)?)
            .map_err(|e| TemplateError::file(path, format!("not valid JSON: {e}")))?
    } else {
        workflow_from_png(&read_bytes(path)?).ok_or_else(|| {
            TemplateError::file(
                path,
                "the image carries no ComfyUI workflow (ComfyUI's SaveImage embeds one unless \
                 its metadata is turned off)",
            )
        })?
    };
    if !is_ui_format(&value) {
        return Ok((value, false));
    }
    let Some(schemas) = schemas else {
        return Err(TemplateError {
            pending: true,
            ..TemplateError::file(
                path,
                "a UI-format workflow (ComfyUI's Save): it is converted once a ComfyUI server \
                 answers with its node types",
            )
        });
    };
    let converted = to_api(&value, schemas).map_err(|e| TemplateError {
        file: path.to_path_buf(),
        node: e.node.map(|n| NodeRef {
            id: n.id,
            class_type: Some(n.class_type),
        }),
        message: e.message,
        pending: false,
    })?;
    Ok((converted, true))
}

fn load_template(
    json: &Path,
    toml: Option<&Path>,
    schemas: Option<&dyn NodeClasses>,
) -> Result<Template, Vec<TemplateError>> {
    let (workflow, converted) = read_workflow(json, schemas).map_err(|e| vec![e])?;
    let side = match toml {
        Some(path) => {
            let text = read_text(path).map_err(|e| vec![e])?;
            Some((
                path,
                sidecar::parse(&text).map_err(|m| vec![TemplateError::file(path, m)])?,
            ))
        }
        None => None,
    };
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let mut template =
        assemble::build_value(json, &workflow, &stem, side.as_ref().map(|(p, s)| (*p, s)))?;
    template.converted = converted;
    Ok(template)
}

/// FNV-1a: unlike `DefaultHasher`, its output is fixed forever, so `created` never changes.
pub fn created_time(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    1_700_000_000 + h % 10_000_000
}

#[cfg(test)]
mod tests;
