//! Turns a template plus request values into a fresh API-format prompt.

use serde_json::{Map, Value};

use super::{ModelKind, Param, RenderParams, Target, Template};

/// An input's accepted range, as ComfyUI 0.3.64 validates it. Hard-coded because the server has
/// no `/object_info` when it loads templates; out-of-range values would fail the whole prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Range {
    Int(i128, i128),
    Float(f64, f64),
}

const I64_MAX: i128 = i64::MAX as i128;

fn range(param: Param, t: &Target) -> Range {
    let class = t.class_type.as_str();
    if t.input == "value" && class == "PrimitiveInt" {
        // Primitive ints are i64 on the Python side; seeds must still be non-negative.
        let min = if param == Param::Seed { 0 } else { -I64_MAX };
        return Range::Int(min, I64_MAX);
    }
    match param {
        Param::Seed => Range::Int(0, i128::from(u64::MAX)),
        Param::Steps => match class {
            "SDTurboScheduler" => Range::Int(1, 10),
            "GITSScheduler" => Range::Int(2, 1000),
            "OptimalStepsScheduler" => Range::Int(3, 1000),
            _ => Range::Int(1, 10000),
        },
        Param::Width | Param::Height => {
            let min = match class {
                "StableCascade_EmptyLatentImage" => 256,
                "EmptyHunyuanImageLatent" | "EmptyLTXVLatentVideo" | "LatentCrop" => 64,
                "Wan22ImageToVideoLatent" => 32,
                c if c.starts_with("Empty") && c.contains("Latent") => 16,
                _ => 1,
            };
            Range::Int(min, 16384)
        }
        Param::BatchSize => Range::Int(1, 4096),
        Param::Cfg => Range::Float(0.0, 100.0),
        Param::Strength => Range::Float(0.0, 1.0),
        _ => Range::Float(f64::MIN, f64::MAX),
    }
}

/// The whole numbers every target of `param` accepts, or `None` when it has no target.
pub(super) fn int_bounds(t: &Template, param: Param) -> Option<(i128, i128)> {
    t.targets(param)
        .iter()
        .map(|target| match range(param, target) {
            Range::Int(min, max) => (min, max),
            Range::Float(min, max) => (min.ceil() as i128, max.floor() as i128),
        })
        .reduce(|(a, b), (c, d)| (a.max(c), b.min(d)))
}

/// The value a workflow was saved with at the first target of `param` that holds one (not a
/// link or a placeholder).
pub(super) fn saved_value(t: &Template, param: Param) -> Option<&Value> {
    t.targets(param)
        .iter()
        .filter(|target| !is_placeholder(t, target))
        .filter_map(|target| input_of(t.graph(), target))
        .find(|v| !v.is_array())
}

/// The value a rendered prompt gives the first target of `param` (not a link).
pub(super) fn rendered_value<'a>(
    t: &Template,
    graph: &'a Value,
    param: Param,
) -> Option<&'a Value> {
    let graph = graph.as_object()?;
    t.targets(param)
        .iter()
        .filter_map(|target| input_of(graph, target))
        .find(|v| !v.is_array())
}

/// Seeds wrap into the range (so distinct seeds stay distinct as far as possible); other
/// numbers clamp.
fn int_value(param: Param, t: &Target, v: i128) -> Value {
    let (min, max) = match range(param, t) {
        Range::Int(min, max) => (min, max),
        Range::Float(min, max) => (min as i128, max as i128),
    };
    let v = if param == Param::Seed && (v < min || v > max) {
        min + (v - min).rem_euclid(max - min + 1)
    } else {
        v.clamp(min, max)
    };
    match (u64::try_from(v), i64::try_from(v)) {
        (Ok(u), _) => Value::from(u),
        (_, Ok(i)) => Value::from(i),
        _ => Value::Null,
    }
}

fn float_value(param: Param, t: &Target, v: f64) -> Value {
    let (min, max) = match range(param, t) {
        Range::Float(min, max) => (min, max),
        Range::Int(min, max) => (min as f64, max as f64),
    };
    Value::from(v.clamp(min, max))
}

#[derive(Default)]
struct Chosen {
    steps: Option<u32>,
    cfg: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    negative_prompt: Option<String>,
    strength: Option<f64>,
    prompt_suffix: String,
}

/// Model defaults, then the quality entry, then the style entry, then the request.
fn choose(t: &Template, p: &RenderParams) -> Chosen {
    let d = &t.defaults;
    let mut c = Chosen {
        steps: d.steps,
        cfg: d.cfg,
        sampler: d.sampler.clone(),
        scheduler: d.scheduler.clone(),
        negative_prompt: d.negative_prompt.clone(),
        strength: Some(d.strength),
        prompt_suffix: String::new(),
    };
    let picks = [
        p.quality.as_ref().and_then(|q| t.quality.get(q)),
        p.style.as_ref().and_then(|s| t.style.get(s)),
    ];
    for o in picks.into_iter().flatten() {
        c.steps = o.steps.or(c.steps);
        c.cfg = o.cfg.or(c.cfg);
        c.sampler = o.sampler.clone().or(c.sampler);
        c.scheduler = o.scheduler.clone().or(c.scheduler);
        c.negative_prompt = o.negative_prompt.clone().or(c.negative_prompt);
        c.strength = o.strength.or(c.strength);
        if let Some(s) = &o.prompt_suffix {
            c.prompt_suffix.push_str(s);
        }
    }
    c.steps = p.steps.or(c.steps);
    c.cfg = p.cfg.or(c.cfg).filter(|v| v.is_finite());
    c.sampler = p.sampler.clone().or(c.sampler);
    c.scheduler = p.scheduler.clone().or(c.scheduler);
    c.negative_prompt = p.negative_prompt.clone().or(c.negative_prompt);
    c.strength = p.strength.or(c.strength).filter(|v| v.is_finite());
    c
}

enum Val {
    Int(i128),
    Float(f64),
    Str(String),
}

pub(super) fn render(t: &Template, p: &RenderParams) -> Value {
    let c = choose(t, p);
    let img2img = t.kind != ModelKind::Txt2Img;
    // A "{{negative_prompt}}" left unfilled would reach the encoder as literal text.
    let negative = c.negative_prompt.clone().or_else(|| {
        t.targets(Param::NegativePrompt)
            .iter()
            .any(|tg| is_placeholder(t, tg))
            .then(String::new)
    });
    let values: [(Param, Option<Val>); 12] = [
        (
            Param::Prompt,
            Some(Val::Str(format!("{}{}", p.prompt, c.prompt_suffix))),
        ),
        (Param::NegativePrompt, negative.map(Val::Str)),
        (Param::Seed, Some(Val::Int(i128::from(p.seed)))),
        (Param::Width, Some(Val::Int(i128::from(p.size.width)))),
        (Param::Height, Some(Val::Int(i128::from(p.size.height)))),
        (Param::BatchSize, Some(Val::Int(1))),
        (Param::Steps, c.steps.map(|v| Val::Int(i128::from(v)))),
        (Param::Cfg, c.cfg.map(Val::Float)),
        (Param::Sampler, c.sampler.map(Val::Str)),
        (Param::Scheduler, c.scheduler.map(Val::Str)),
        (
            Param::Strength,
            c.strength.filter(|_| img2img).map(Val::Float),
        ),
        (Param::Mask, p.mask.clone().map(Val::Str)),
    ];

    let mut graph = t.graph().clone();
    for (param, val) in values {
        let Some(val) = val else { continue };
        for target in t.targets(param) {
            let v = match &val {
                Val::Int(i) => int_value(param, target, *i),
                Val::Float(f) => float_value(param, target, *f),
                Val::Str(s) => Value::String(s.clone()),
            };
            set_input(&mut graph, target, v);
        }
    }
    if let Some(last) = p.images.last() {
        for (i, target) in t.targets(Param::Image).iter().enumerate() {
            let name = p.images.get(i).unwrap_or(last);
            set_input(&mut graph, target, Value::String(name.clone()));
        }
    }
    Value::Object(graph)
}

/// The prompt text the workflow was saved with; empty where the prompt is a placeholder.
pub(super) fn saved_prompt(t: &Template) -> String {
    t.targets(Param::Prompt)
        .iter()
        .filter(|target| !is_placeholder(t, target))
        .find_map(|target| input_of(t.graph(), target)?.as_str())
        .unwrap_or_default()
        .to_string()
}

fn is_placeholder(t: &Template, target: &Target) -> bool {
    input_of(t.graph(), target)
        .and_then(super::detect::placeholder_name)
        .is_some()
}

fn input_of<'a>(graph: &'a Map<String, Value>, t: &Target) -> Option<&'a Value> {
    graph.get(&t.node)?.get("inputs")?.get(&t.input)
}

fn set_input(graph: &mut Map<String, Value>, t: &Target, v: Value) {
    if let Some(inputs) = graph
        .get_mut(&t.node)
        .and_then(|n| n.get_mut("inputs"))
        .and_then(Value::as_object_mut)
    {
        inputs.insert(t.input.clone(), v);
    }
}
