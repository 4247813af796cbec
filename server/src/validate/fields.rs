//! The checks every image request shares, and the one place a [`Job`] is put together.

use std::sync::Arc;

use app::api::{
    images::{ImageGenerationRequest, ImageStreamKind},
    size::Size,
};

use super::{
    Context,
    job::{ImageStream, Inputs, Job, Output},
};
use crate::{
    error::ApiError,
    templates::{MAX_CFG, Param, RenderParams, Template},
};

pub const MAX_N: u32 = 10;
/// Random seeds stay below 2^53 so that every client, JavaScript included, can repeat them.
const RANDOM_SEED_LIMIT: u64 = 1 << 53;

/// How to stream the reply, or `None` for a plain JSON reply.
pub fn stream(req: &ImageGenerationRequest, kind: ImageStreamKind) -> Option<ImageStream> {
    (req.stream == Some(true)).then(|| ImageStream {
        kind,
        partials: req.partial_images.unwrap_or(0),
        progress: req.stream_progress == Some(true),
    })
}

/// The size a request asks for, checked against the model; `None` for none or `auto`.
pub fn requested_size(value: Option<&str>, template: &Template) -> Result<Option<Size>, ApiError> {
    let value = match value {
        None | Some("auto") => return Ok(None),
        Some(v) => v,
    };
    match value.parse::<Size>() {
        Ok(size) if template.allows_size(size) => Ok(Some(size)),
        _ => {
            let listed = template
                .sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let takes = match template.size_rule {
                Some(rule) => format!("auto, or {rule} (such as {listed})"),
                None => format!("auto, {listed}"),
            };
            Err(ApiError::invalid(
                "size",
                format!(
                    "Invalid value for 'size': '{value}'. Model '{}' supports: {takes}.",
                    template.id
                ),
            ))
        }
    }
}

/// The image size a request gets: the one it asked for; without one, for an edit the input's
/// own shape as the model's size rule allows it, or the listed size closest to it, else the
/// model's default.
pub fn size(requested: Option<Size>, template: &Template, input: Option<Size>) -> Size {
    match (requested, input) {
        (Some(size), _) => size,
        (None, Some(input)) => match template.size_rule.and_then(|r| r.fit(input)) {
            Some(fitted) => fitted,
            None => closest(&template.sizes, template.default_size, input),
        },
        (None, None) => template.default_size,
    }
}

/// The size closest to the input's aspect ratio, then to its pixel count: `size=auto` on an
/// edit keeps the picture's shape.
fn closest(sizes: &[Size], fallback: Size, input: Size) -> Size {
    let aspect = |s: Size| (f64::from(s.width) / f64::from(s.height)).ln();
    let area = |s: Size| f64::from(s.width) * f64::from(s.height);
    let target = aspect(input);
    sizes
        .iter()
        .copied()
        .min_by(|a, b| {
            let key = |s: Size| {
                (
                    (aspect(s) - target).abs(),
                    (area(s).ln() - area(input).ln()).abs(),
                )
            };
            let (ka, kb) = (key(*a), key(*b));
            ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
        .unwrap_or(fallback)
}

/// A job whose fields passed, waiting for its size and input files.
pub struct Draft {
    template: Arc<Template>,
    prompt: String,
    negative_prompt: Option<String>,
    steps: Option<u32>,
    cfg: Option<f64>,
    sampler: Option<String>,
    scheduler: Option<String>,
    quality: String,
    style: Option<String>,
    strength: Option<f64>,
    seeds: Vec<u64>,
    output: Output,
    keep: bool,
}

impl Draft {
    pub fn into_job(self, size: Size, inputs: Inputs) -> Job {
        Job {
            params: RenderParams {
                prompt: self.prompt,
                negative_prompt: self.negative_prompt,
                steps: self.steps,
                cfg: self.cfg,
                sampler: self.sampler,
                scheduler: self.scheduler,
                quality: Some(self.quality),
                style: self.style,
                strength: self.strength,
                ..RenderParams::new(size)
            },
            template: self.template,
            seeds: self.seeds,
            inputs,
            output: self.output,
            keep: self.keep,
        }
    }
}

/// The checks every image request shares. An edit's `strength` was checked against the
/// model before.
pub fn draft(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    prompt: String,
    ctx: &Context,
) -> Result<Draft, ApiError> {
    let max_chars = ctx.checks.0.max_prompt_chars;
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(
            "n",
            format!("Invalid value for 'n': {n}. It must be between 1 and {MAX_N}."),
        ));
    }
    let quality = one_of(
        "quality",
        req.quality.as_deref(),
        &["auto", "low", "medium", "high", "standard", "hd"],
    )?
    .unwrap_or("auto");
    let style = one_of("style", req.style.as_deref(), &["vivid", "natural"])?;
    let background = one_of(
        "background",
        req.background.as_deref(),
        &["auto", "opaque", "transparent"],
    )?;
    if background == Some("transparent") {
        return Err(ApiError::invalid(
            "background",
            format!(
                "Model '{}' cannot make transparent backgrounds; use 'auto' or 'opaque'.",
                template.id
            ),
        ));
    }
    if let Some(c) = req.output_compression
        && c > 100
    {
        return Err(ApiError::invalid(
            "output_compression",
            format!("Invalid value for 'output_compression': {c}. It must be between 0 and 100."),
        ));
    }
    if let Some(p) = req.partial_images
        && p > 3
    {
        return Err(ApiError::invalid(
            "partial_images",
            format!("Invalid value for 'partial_images': {p}. It must be between 0 and 3."),
        ));
    }
    let negative_prompt = text("negative_prompt", req.negative_prompt, max_chars)?;
    if negative_prompt.is_some() {
        supported(&template, Param::NegativePrompt, "negative_prompt")?;
    }
    if let Some(steps) = req.steps {
        supported(&template, Param::Steps, "steps")?;
        if let Some((min, max)) = template.steps_range()
            && !(min..=max).contains(&steps)
        {
            return Err(ApiError::invalid(
                "steps",
                format!(
                    "Invalid value for 'steps': {steps}. Model '{}' takes between {min} and \
                     {max}.",
                    template.id
                ),
            ));
        }
    }
    if let Some(cfg) = req.cfg {
        if !(0.0..=MAX_CFG).contains(&cfg) {
            return Err(ApiError::invalid(
                "cfg",
                format!("Invalid value for 'cfg': {cfg}. It must be between 0 and {MAX_CFG}."),
            ));
        }
        supported(&template, Param::Cfg, "cfg")?;
    }
    let sampler = choice(&template, Param::Sampler, req.sampler, ctx)?;
    let scheduler = choice(&template, Param::Scheduler, req.scheduler, ctx)?;
    let seeds = match req.seed {
        // Consecutive seeds: one request's images differ, and each can be made again alone.
        Some(seed) => (0..u64::from(n)).map(|i| seed.wrapping_add(i)).collect(),
        None => (0..n)
            .map(|_| rand::random::<u64>() % RANDOM_SEED_LIMIT)
            .collect(),
    };
    Ok(Draft {
        template,
        prompt,
        negative_prompt,
        steps: req.steps,
        cfg: req.cfg,
        sampler,
        scheduler,
        quality: quality.to_string(),
        style: style.map(str::to_string),
        strength: req.strength,
        seeds,
        output: Output {
            response_format: req.response_format.unwrap_or_default(),
            format: req.output_format.unwrap_or_default(),
            compression: req.output_compression,
            quality: quality.to_string(),
        },
        keep: ctx.keep,
    })
}

/// A text field: `None` when absent or blank, refused when longer than `max_chars`.
pub fn text(
    param: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::invalid(
            param,
            format!("'{param}' is too long: {chars} characters, at most {max_chars}."),
        ));
    }
    Ok(Some(value))
}

pub fn one_of<'a>(
    param: &str,
    value: Option<&'a str>,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v)),
        Some(v) => Err(ApiError::invalid(
            param,
            format!(
                "Invalid value for '{param}': '{v}'. Supported values are: {}.",
                allowed.join(", ")
            ),
        )),
    }
}

/// A sampler or scheduler the model takes and, once a server has listed its choices, one
/// of them: a name ComfyUI does not know would fail the whole prompt there.
fn choice(
    template: &Template,
    what: Param,
    value: Option<String>,
    ctx: &Context,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let param = what.name();
    supported(template, what, param)?;
    let options = template.options(what, &ctx.models.schemas());
    if options.is_empty() || options.contains(&value) {
        Ok(Some(value))
    } else {
        Err(ApiError::invalid(
            param,
            format!(
                "Invalid value for '{param}': '{value}'. Model '{}' takes: {}.",
                template.id,
                options.join(", ")
            ),
        ))
    }
}

/// Refuses a value the model's workflow has no input for, rather than ignoring it.
pub fn supported(template: &Template, what: Param, param: &str) -> Result<(), ApiError> {
    if template.supports(what) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            param,
            format!(
                "Model '{}' does not take '{param}': its workflow has no input for it.",
                template.id
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_size_keeps_the_aspect() {
        let sizes = [
            Size::new(512, 512),
            Size::new(1024, 1024),
            Size::new(1024, 576),
            Size::new(576, 1024),
        ];
        let pick = |w, h| closest(&sizes, Size::new(1, 1), Size::new(w, h));
        assert_eq!(pick(1920, 1080), Size::new(1024, 576));
        assert_eq!(pick(600, 600), Size::new(512, 512));
        assert_eq!(pick(900, 1000), Size::new(1024, 1024));
        assert_eq!(pick(300, 900), Size::new(576, 1024));
        assert_eq!(
            closest(&[], Size::new(8, 8), Size::new(3, 3)),
            Size::new(8, 8)
        );
    }
}
