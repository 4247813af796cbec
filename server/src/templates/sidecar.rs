//! The optional `<id>.toml` next to a workflow: model settings and explicit bindings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::detect::{Graph, NodeError};
use super::{Defaults, ModelKind, Param, Size, SizeRule, Target};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sidecar {
    pub id: Option<String>,
    pub description: Option<String>,
    pub kind: Option<ModelKind>,
    pub sizes: Option<Vec<Size>>,
    /// Any size within limits, instead of (or beside) the list.
    pub size_rule: Option<SizeRule>,
    pub default_size: Option<Size>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    pub quality: BTreeMap<String, Overrides>,
    #[serde(default)]
    pub style: BTreeMap<String, Overrides>,
    #[serde(default)]
    pub bindings: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    steps: Option<u32>,
    cfg: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    negative_prompt: Option<String>,
    strength: Option<f64>,
}

/// What a `[quality]` or `[style]` entry changes, e.g. `hd = { steps = 30 }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub negative_prompt: Option<String>,
    pub strength: Option<f64>,
    /// Appended to the prompt, e.g. `vivid = { prompt_suffix = ", vivid colors" }`.
    pub prompt_suffix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn specs(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

impl Sidecar {
    /// Inpainting fills the masked area from scratch unless the sidecar asks otherwise.
    pub fn defaults(&self, kind: ModelKind) -> Defaults {
        let d = &self.defaults;
        let strength = match kind {
            ModelKind::Inpaint => 1.0,
            _ => Defaults::default().strength,
        };
        Defaults {
            steps: d.steps,
            cfg: d.cfg,
            sampler: d.sampler.clone(),
            scheduler: d.scheduler.clone(),
            negative_prompt: d.negative_prompt.clone(),
            strength: d.strength.unwrap_or(strength),
        }
    }
}

/// Parses and sanity-checks a sidecar; the error is a one-line message with the line number.
pub(super) fn parse(text: &str) -> Result<Sidecar, String> {
    let sc: Sidecar = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map(|before| before.matches('\n').count() + 1);
        let msg = e.message().trim().to_owned();
        match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        }
    })?;
    let d = &sc.defaults;
    let mut checks = vec![("[defaults]".to_owned(), d.steps, d.cfg, d.strength)];
    for (table, map) in [("quality", &sc.quality), ("style", &sc.style)] {
        for (key, o) in map {
            checks.push((format!("[{table}] {key}"), o.steps, o.cfg, o.strength));
        }
    }
    let mut problems = Vec::new();
    for (at, steps, cfg, strength) in checks {
        if steps.is_some_and(|s| !(1..=10000).contains(&s)) {
            problems.push(format!("{at}: steps must be within 1..=10000"));
        }
        if cfg.is_some_and(|c| !(0.0..=100.0).contains(&c)) {
            problems.push(format!("{at}: cfg must be within 0..=100"));
        }
        if strength.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            problems.push(format!("{at}: strength must be within 0..=1"));
        }
    }
    if problems.is_empty() {
        Ok(sc)
    } else {
        Err(problems.join("; "))
    }
}

/// Model ids travel in JSON and URLs (`/v1/models/{id}`), so keep them plain.
pub(super) fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "model id {id:?} must be 1-64 characters of A-Z a-z 0-9 - _ . (set `id` in the sidecar)"
        ))
    }
}

/// Resolves `[bindings]`: `"6.text"`, or `"title:Positive Prompt.text"` (the last `.` splits
/// the input name, so titles may contain dots).
pub(super) fn resolve_bindings(
    bindings: &BTreeMap<String, OneOrMany>,
    graph: &Graph,
) -> Result<BTreeMap<Param, Vec<Target>>, Vec<NodeError>> {
    let mut out: BTreeMap<Param, Vec<Target>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, specs) in bindings {
        let Some(param) = Param::from_name(name) else {
            let known: Vec<_> = Param::ALL.iter().map(|p| p.name()).collect();
            errors.push(NodeError::new(
                None,
                format!(
                    "[bindings] {name}: unknown value name (known: {})",
                    known.join(", ")
                ),
            ));
            continue;
        };
        if specs.specs().is_empty() {
            errors.push(NodeError::new(
                None,
                format!("[bindings] {name}: empty list"),
            ));
        }
        for spec in specs.specs() {
            match resolve_one(spec, graph) {
                Ok(t) => {
                    let slot = out.entry(param).or_default();
                    if !slot.contains(&t) {
                        slot.push(t);
                    }
                }
                Err(mut e) => {
                    e.message = format!("[bindings] {name} = {spec:?}: {}", e.message);
                    errors.push(e);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn resolve_one(spec: &str, graph: &Graph) -> Result<Target, NodeError> {
    let (node_spec, input) = spec
        .rsplit_once('.')
        .filter(|(n, i)| !n.is_empty() && !i.is_empty())
        .ok_or_else(|| {
            NodeError::new(
                None,
                "expected \"<node id>.<input>\" or \"title:<title>.<input>\"",
            )
        })?;
    let id = if let Some(title) = node_spec.strip_prefix("title:") {
        let hits: Vec<&str> = graph
            .ids()
            .filter(|id| graph.node(id).and_then(|n| n.title.as_deref()) == Some(title))
            .collect();
        match hits.as_slice() {
            [one] => (*one).to_owned(),
            [] => {
                return Err(NodeError::new(
                    None,
                    format!("no node has the title {title:?}"),
                ));
            }
            many => {
                return Err(NodeError::new(
                    None,
                    format!("title {title:?} is used by nodes {}", many.join(", ")),
                ));
            }
        }
    } else {
        node_spec.to_owned()
    };
    let Some(node) = graph.node(&id) else {
        return Err(NodeError::at(&id, None, "no such node in the workflow"));
    };
    match node.inputs.get(input) {
        None => Err(NodeError::at(
            &id,
            Some(node.class_type.as_str()),
            format!("has no input {input:?}"),
        )),
        Some(v) if super::detect::is_link(v) => Err(NodeError::at(
            &id,
            Some(node.class_type.as_str()),
            format!("input {input:?} is a link; bind the widget of the node it comes from"),
        )),
        Some(_) => Ok(Target {
            node: id.clone(),
            input: input.to_owned(),
            class_type: node.class_type.clone(),
        }),
    }
}

/// A numeric or combo placeholder has nothing to fall back on unless the sidecar gives a default.
pub(super) fn check_placeholder_defaults(
    graph: &Graph,
    explicit: &BTreeMap<Param, Vec<Target>>,
    sc: &Sidecar,
) -> Vec<String> {
    let d = &sc.defaults;
    let missing = [
        (Param::Steps, d.steps.is_none()),
        (Param::Cfg, d.cfg.is_none()),
        (Param::Sampler, d.sampler.is_none()),
        (Param::Scheduler, d.scheduler.is_none()),
    ];
    let mut out = Vec::new();
    for (param, no_default) in missing {
        let has_placeholder = explicit.get(&param).is_some_and(|ts| {
            ts.iter().any(|t| {
                graph
                    .literal(&t.node, &t.input)
                    .is_some_and(|v| super::detect::placeholder_name(v) == Some(param.name()))
            })
        });
        if has_placeholder && no_default {
            out.push(format!(
                "the workflow uses \"{{{{{p}}}}}\" but [defaults] has no {p}",
                p = param.name()
            ));
        }
    }
    out
}
