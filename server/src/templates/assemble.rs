//! Turns a parsed workflow and its sidecar into a checked `Template`: explicit bindings first,
//! detection for the rest, then the checks that make a bad file fail at load, not at request.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{
    DEFAULT_SIZES, ModelKind, Param, Size, Target, Template, TemplateError, created_time, detect,
    sidecar,
};

/// Builds a template from already-read text; separated from I/O so tests can feed literals.
#[cfg(test)]
pub(super) fn build(
    json: &Path,
    json_text: &str,
    stem: &str,
    side: Option<(&Path, &sidecar::Sidecar)>,
) -> Result<Template, Vec<TemplateError>> {
    let value: Value = serde_json::from_str(json_text)
        .map_err(|e| vec![TemplateError::file(json, format!("not valid JSON: {e}"))])?;
    build_value(json, &value, stem, side)
}

/// Builds a template from an API-format workflow, read from `file` (a JSON file, or an image
/// whose embedded workflow it is).
pub(super) fn build_value(
    json: &Path,
    value: &Value,
    stem: &str,
    side: Option<(&Path, &sidecar::Sidecar)>,
) -> Result<Template, Vec<TemplateError>> {
    let default_side = sidecar::Sidecar::default();
    let (toml_path, sc) = match side {
        Some((p, s)) => (p, s),
        None => (json, &default_side),
    };
    let node_err = |file: &Path, e: detect::NodeError| TemplateError {
        file: file.to_path_buf(),
        node: e.node,
        message: e.message,
        pending: false,
    };

    let graph = detect::Graph::parse(value).map_err(|es| {
        es.into_iter()
            .map(|e| node_err(json, e))
            .collect::<Vec<_>>()
    })?;

    let mut errors = Vec::new();
    let id = sc.id.clone().unwrap_or_else(|| stem.to_owned());
    if let Err(m) = sidecar::check_id(&id) {
        let file = if sc.id.is_some() { toml_path } else { json };
        errors.push(TemplateError::file(file, m));
    }

    let mut explicit: BTreeMap<Param, Vec<Target>> = BTreeMap::new();
    match detect::placeholders(&graph) {
        Ok(found) => merge(&mut explicit, found),
        Err(es) => errors.extend(es.into_iter().map(|e| node_err(json, e))),
    }
    match sidecar::resolve_bindings(&sc.bindings, &graph) {
        Ok(found) => merge(&mut explicit, found),
        Err(es) => errors.extend(es.into_iter().map(|e| node_err(toml_path, e))),
    }

    let found = detect::detect(&graph, &explicit);
    errors.extend(found.errors.into_iter().map(|e| node_err(json, e)));
    if found.outputs.is_empty() {
        errors.push(TemplateError::file(
            json,
            "no image output node (SaveImage, PreviewImage, SaveAnimatedWEBP, …)",
        ));
    }

    let mut bindings = found.bindings;
    for (param, targets) in explicit.iter() {
        bindings.insert(*param, targets.clone());
    }
    let detected_kind = if bindings.contains_key(&Param::Image) {
        if bindings.contains_key(&Param::Mask) || found.mask_in_image_alpha {
            ModelKind::Inpaint
        } else {
            ModelKind::Img2Img
        }
    } else {
        ModelKind::Txt2Img
    };
    let kind = sc.kind.unwrap_or(detected_kind);
    let mut mask_in_image_alpha = found.mask_in_image_alpha && !explicit.contains_key(&Param::Mask);
    match kind {
        ModelKind::Txt2Img => {
            for p in [Param::Image, Param::Mask, Param::Strength] {
                if explicit.contains_key(&p) {
                    errors.push(TemplateError::file(
                        toml_path,
                        format!("{p} is bound but kind is txt2img"),
                    ));
                }
                bindings.remove(&p);
            }
            mask_in_image_alpha = false;
        }
        ModelKind::Img2Img | ModelKind::Inpaint => {
            if !bindings.contains_key(&Param::Image) {
                errors.push(TemplateError::file(
                    json,
                    format!("kind is {kind} but no LoadImage node or image binding was found"),
                ));
            }
            if kind == ModelKind::Inpaint
                && !bindings.contains_key(&Param::Mask)
                && !mask_in_image_alpha
            {
                errors.push(TemplateError::file(
                    json,
                    "kind is inpaint but no mask source (LoadImageMask, or a LoadImage MASK output \
                     feeding a mask input) or mask binding was found",
                ));
            }
            if kind == ModelKind::Img2Img && !explicit.contains_key(&Param::Mask) {
                bindings.remove(&Param::Mask);
                mask_in_image_alpha = false;
            }
        }
    }

    if !bindings.contains_key(&Param::Prompt) {
        let hint = json.with_extension("toml");
        let candidates = graph.text_inputs();
        let (example, listed) = match candidates.first() {
            Some(first) => (
                first.split(' ').next().unwrap_or(first).to_string(),
                format!(
                    "; text inputs that could take it: {}",
                    candidates
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            None => ("\"<node id>.<input>\"".to_string(), String::new()),
        };
        errors.push(TemplateError::file(
            json,
            format!(
                "no prompt destination: no text encoder (CLIPTextEncode or similar) feeds the \
                 sampler's positive input{listed}; add `prompt = {example}` under [bindings] \
                 in {}, or set a text input to \"{{{{prompt}}}}\"",
                hint.display()
            ),
        ));
    }
    errors.extend(
        sidecar::check_placeholder_defaults(&graph, &explicit, sc)
            .into_iter()
            .map(|m| TemplateError::file(toml_path, m)),
    );

    let rule = sc.size_rule.filter(|r| match r.problem() {
        Some(p) => {
            errors.push(TemplateError::file(toml_path, format!("[size_rule]: {p}")));
            false
        }
        None => true,
    });
    let sizes = match (&sc.sizes, rule) {
        (Some(sizes), _) => sizes.clone(),
        // The menus offer the usual sizes the rule allows, or the rule's nearest to a square.
        (None, Some(rule)) => {
            let common: Vec<Size> = DEFAULT_SIZES
                .into_iter()
                .filter(|s| rule.allows(*s))
                .collect();
            if common.is_empty() {
                rule.fit(Size::new(1024, 1024)).into_iter().collect()
            } else {
                common
            }
        }
        (None, None) => DEFAULT_SIZES.to_vec(),
    };
    if sizes.is_empty() && rule.is_none() {
        errors.push(TemplateError::file(toml_path, "sizes must not be empty"));
    }
    let allowed = |s: Size| sizes.contains(&s) || rule.is_some_and(|r| r.allows(s));
    let default_size = match sc.default_size {
        Some(s) => s,
        None if allowed(Size::new(1024, 1024)) => Size::new(1024, 1024),
        None => sizes.first().copied().unwrap_or(Size::new(1024, 1024)),
    };
    if !sizes.is_empty() && !allowed(default_size) {
        errors.push(TemplateError::file(
            toml_path,
            format!(
                "default_size {default_size} is not in sizes{}",
                if rule.is_some() {
                    " nor within [size_rule]"
                } else {
                    ""
                }
            ),
        ));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Template {
        created: created_time(&id),
        converted: false,
        id,
        file: json.to_path_buf(),
        description: sc.description.clone(),
        kind,
        sizes,
        size_rule: rule,
        default_size,
        defaults: sc.defaults(kind),
        quality: sc.quality.clone(),
        style: sc.style.clone(),
        graph: graph.into_map(),
        bindings,
        outputs: found.outputs,
        mask_in_image_alpha,
    })
}

fn merge(into: &mut BTreeMap<Param, Vec<Target>>, from: BTreeMap<Param, Vec<Target>>) {
    for (param, targets) in from {
        let slot = into.entry(param).or_default();
        for t in targets {
            if !slot.contains(&t) {
                slot.push(t);
            }
        }
    }
}
