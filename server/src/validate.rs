//! Turning a request into values that are known to be acceptable, before anything reaches
//! ComfyUI. Every refusal names the parameter.

use std::sync::Arc;

use app::api::images::{ImageGenerationRequest, OutputFormat, ResponseFormat};

use crate::{
    error::ApiError,
    templates::{Param, RenderParams, Size, Template},
};

pub const MAX_N: u32 = 10;
pub const MAX_STEPS: u32 = 200;
pub const MAX_CFG: f64 = 100.0;
/// Random seeds stay below 2^53 so that every client, JavaScript included, can repeat them.
const RANDOM_SEED_LIMIT: u64 = 1 << 53;

/// A generation request that passed every check.
#[derive(Debug, Clone)]
pub struct Generation {
    pub template: Arc<Template>,
    pub params: RenderParams,
    pub seeds: Vec<u64>,
    pub size: Size,
    pub response_format: ResponseFormat,
    pub output_format: OutputFormat,
    pub output_compression: Option<u8>,
    pub quality: String,
}

pub fn generation(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    max_prompt_chars: usize,
) -> Result<Generation, ApiError> {
    let prompt = text("prompt", Some(req.prompt), max_prompt_chars)?
        .ok_or_else(|| ApiError::invalid("prompt", "The prompt must not be empty."))?;
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::invalid(
            "n",
            format!("Invalid value for 'n': {n}. It must be between 1 and {MAX_N}."),
        ));
    }
    let size = size(req.size.as_deref(), &template)?;
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
    if req.stream == Some(true) {
        return Err(ApiError::invalid(
            "stream",
            "Streaming image generation is not available yet; send the request without 'stream'.",
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
    let negative_prompt = text("negative_prompt", req.negative_prompt, max_prompt_chars)?;
    if negative_prompt.is_some() {
        supported(&template, Param::NegativePrompt, "negative_prompt")?;
    }
    if let Some(steps) = req.steps {
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(ApiError::invalid(
                "steps",
                format!(
                    "Invalid value for 'steps': {steps}. It must be between 1 and {MAX_STEPS}."
                ),
            ));
        }
        supported(&template, Param::Steps, "steps")?;
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
    let seeds = match req.seed {
        // Consecutive seeds: one request's images differ, and each can be made again alone.
        Some(seed) => (0..u64::from(n)).map(|i| seed.wrapping_add(i)).collect(),
        None => (0..n)
            .map(|_| rand::random::<u64>() % RANDOM_SEED_LIMIT)
            .collect(),
    };
    Ok(Generation {
        params: RenderParams {
            prompt,
            negative_prompt,
            width: size.width,
            height: size.height,
            steps: req.steps,
            cfg: req.cfg,
            quality: Some(quality.to_string()),
            style: style.map(str::to_string),
            ..RenderParams::default()
        },
        template,
        seeds,
        size,
        response_format: req.response_format.unwrap_or_default(),
        output_format: req.output_format.unwrap_or_default(),
        output_compression: req.output_compression,
        quality: quality.to_string(),
    })
}

fn text(param: &str, value: Option<String>, max_chars: usize) -> Result<Option<String>, ApiError> {
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

fn one_of<'a>(
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

fn supported(template: &Template, what: Param, param: &str) -> Result<(), ApiError> {
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

fn size(value: Option<&str>, template: &Template) -> Result<Size, ApiError> {
    let value = match value {
        None | Some("auto") => return Ok(template.default_size),
        Some(v) => v,
    };
    let allowed = || {
        template
            .sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match value.parse::<Size>() {
        Ok(size) if template.allows_size(size) => Ok(size),
        _ => Err(ApiError::invalid(
            "size",
            format!(
                "Invalid value for 'size': '{value}'. Model '{}' supports: auto, {}.",
                template.id,
                allowed()
            ),
        )),
    }
}
