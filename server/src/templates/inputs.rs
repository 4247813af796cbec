//! What a model takes besides its prompt and size, as `/v1/models` lists it and as requests
//! are checked: both read the limits here, so a listed range is exactly the accepted one.

use app::api::{
    models::{ChoiceInput, FloatInput, ImagesInput, IntInput, MaskInput, ModelInputs, TextInput},
    parameters::Parameters,
};
use serde_json::Value;

use super::{ModelKind, Param, Template, render};
use crate::comfy::{InputSpec, NodeClasses};

/// Above this, a request is far more likely a mistake than a wish for better images.
pub const MAX_STEPS: u32 = 200;
pub const MAX_CFG: f64 = 100.0;
pub const STRENGTH: (f64, f64) = (0.0, 1.0);

impl Template {
    /// The optional request fields this model takes, with defaults, ranges, and the choices
    /// `schemas` (the servers' node types) offer for samplers and schedulers.
    pub fn inputs(&self, schemas: &dyn NodeClasses) -> ModelInputs {
        let takes = |param| self.supports(param);
        let d = &self.defaults;
        ModelInputs {
            negative_prompt: takes(Param::NegativePrompt).then(|| TextInput {
                default: d.negative_prompt.clone().or_else(|| {
                    render::saved_value(self, Param::NegativePrompt)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                }),
            }),
            seed: self.int_range(Param::Seed).map(|(min, max)| IntInput {
                default: None,
                min,
                max,
            }),
            steps: self.steps_range().map(|(min, max)| IntInput {
                default: d.steps.map(u64::from).or_else(|| {
                    render::saved_value(self, Param::Steps).and_then(serde_json::Value::as_u64)
                }),
                min: u64::from(min),
                max: u64::from(max),
            }),
            cfg: takes(Param::Cfg).then(|| FloatInput {
                default: d.cfg.or_else(|| {
                    render::saved_value(self, Param::Cfg).and_then(serde_json::Value::as_f64)
                }),
                min: 0.0,
                max: MAX_CFG,
            }),
            sampler: self.choice(Param::Sampler, d.sampler.as_deref(), schemas),
            scheduler: self.choice(Param::Scheduler, d.scheduler.as_deref(), schemas),
            strength: (self.kind != ModelKind::Txt2Img && takes(Param::Strength)).then_some(
                FloatInput {
                    default: Some(d.strength),
                    min: STRENGTH.0,
                    max: STRENGTH.1,
                },
            ),
            images: u32::try_from(self.image_slots())
                .ok()
                .filter(|n| *n > 0)
                .map(|max| ImagesInput { max }),
            mask: takes(Param::Mask).then(|| MaskInput {
                required_without_alpha: self.kind == ModelKind::Inpaint,
            }),
        }
    }

    /// What a rendered prompt of this model makes an image with, as its metadata says: the
    /// values the graph really holds, defaults and quality or style overrides applied.
    pub fn applied(&self, graph: &Value, params: &super::RenderParams) -> Parameters {
        let at = |param| render::rendered_value(self, graph, param);
        let text = |param| at(param).and_then(Value::as_str).map(str::to_owned);
        Parameters {
            prompt: text(Param::Prompt).unwrap_or_else(|| params.prompt.clone()),
            negative_prompt: text(Param::NegativePrompt).filter(|n| !n.is_empty()),
            steps: at(Param::Steps)
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok()),
            cfg: at(Param::Cfg).and_then(Value::as_f64),
            sampler: text(Param::Sampler),
            scheduler: text(Param::Scheduler),
            seed: at(Param::Seed).and_then(Value::as_u64),
            size: Some(params.size),
            model: Some(self.id.clone()),
        }
    }

    /// The steps a request may ask for: what every sampler in the workflow accepts, within
    /// [`MAX_STEPS`]; `None` when the workflow has no steps input.
    pub fn steps_range(&self) -> Option<(u32, u32)> {
        let (min, max) = render::int_bounds(self, Param::Steps)?;
        let min = u32::try_from(min.max(1)).unwrap_or(1);
        let max = u32::try_from(max.min(i128::from(MAX_STEPS))).unwrap_or(MAX_STEPS);
        (min <= max).then_some((min, max))
    }

    /// The choices the servers offer for a sampler or scheduler input, where every target
    /// agrees; empty when no server has described the node.
    pub fn options(&self, param: Param, schemas: &dyn NodeClasses) -> Vec<String> {
        let mut lists = self.targets(param).iter().filter_map(|t| {
            match schemas.class(&t.class_type)?.inputs.get(&t.input)? {
                InputSpec::Combo(values) => Some(
                    values
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            }
        });
        let first = lists.next().unwrap_or_default();
        lists.fold(first, |mut all, list| {
            all.retain(|o| list.contains(o));
            all
        })
    }

    fn int_range(&self, param: Param) -> Option<(u64, u64)> {
        let (min, max) = render::int_bounds(self, param)?;
        let min = u64::try_from(min.max(0)).unwrap_or(0);
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        (min <= max).then_some((min, max))
    }

    fn choice(
        &self,
        param: Param,
        default: Option<&str>,
        schemas: &dyn NodeClasses,
    ) -> Option<ChoiceInput> {
        self.supports(param).then(|| ChoiceInput {
            default: default.map(str::to_owned).or_else(|| {
                render::saved_value(self, param)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            }),
            options: self.options(param, schemas),
        })
    }
}
