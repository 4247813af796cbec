//! Turning a request into values that are known to be acceptable, before anything reaches
//! ComfyUI. Every refusal names the parameter.

use std::sync::Arc;

use app::api::images::{ImageGenerationRequest, OutputFormat, ResponseFormat};

use crate::{
    error::ApiError,
    inputs::{self, InputImage},
    templates::{ModelKind, Param, RenderParams, Size, Template},
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
    /// Whether the images go to the gallery; set by the route, which sees the headers.
    pub keep: bool,
}

pub fn generation(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    max_prompt_chars: usize,
) -> Result<Generation, ApiError> {
    let edit_field = [
        ("image", req.image.is_some()),
        ("images", req.images.is_some()),
        ("mask", req.mask.is_some()),
        ("strength", req.strength.is_some()),
    ]
    .into_iter()
    .find_map(|(name, given)| given.then_some(name));
    if let Some(field) = edit_field {
        return Err(ApiError::invalid(
            field,
            format!(
                "'{field}' is a parameter of image edits; send the request to /v1/images/edits."
            ),
        ));
    }
    if template.kind != ModelKind::Txt2Img {
        return Err(ApiError::invalid(
            "model",
            format!(
                "Model '{}' edits images: send it an image through /v1/images/edits, or pick a \
                 text-to-image model (see /v1/models).",
                template.id
            ),
        ));
    }
    let prompt = text("prompt", Some(req.prompt.clone()), max_prompt_chars)?
        .ok_or_else(|| ApiError::invalid("prompt", "The prompt must not be empty."))?;
    let size = size(req.size.as_deref(), &template)?.unwrap_or(template.default_size);
    common(req, template, prompt, size, max_prompt_chars)
}

/// An edit whose fields passed; its input images are checked by [`Edit::check_inputs`] once
/// they are decoded.
#[derive(Debug, Clone)]
pub struct Edit {
    pub job: Generation,
    /// No size was asked for, or `auto`: follow the input image's shape.
    auto_size: bool,
    /// The model repaints only where a mask says; without one, the image's own alpha is used.
    needs_alpha: bool,
}

/// Checks an edit's fields. `images` and `masked` say what the request carries; `variation`
/// allows an empty prompt (variations send none).
pub fn edit(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    max_prompt_chars: usize,
    images: usize,
    masked: bool,
    variation: bool,
) -> Result<Edit, ApiError> {
    if template.kind == ModelKind::Txt2Img {
        return Err(ApiError::invalid(
            "model",
            format!(
                "Model '{}' makes images from text only and takes no input image; use \
                 /v1/images/generations, or pick a model whose kind is img2img or inpaint \
                 (see /v1/models).",
                template.id
            ),
        ));
    }
    let slots = template.image_slots();
    if images == 0 {
        return Err(ApiError::InvalidRequest {
            message: "Missing required parameter: 'image'.".into(),
            param: Some("image".into()),
            code: Some("missing_required_parameter"),
        });
    }
    if images > slots {
        return Err(ApiError::invalid(
            "image",
            format!(
                "Model '{}' takes at most {slots} input image{}; the request has {images}.",
                template.id,
                if slots == 1 { "" } else { "s" }
            ),
        ));
    }
    if masked && !template.supports(Param::Mask) {
        return Err(ApiError::invalid(
            "mask",
            format!(
                "Model '{}' does not take a mask; use a model whose kind is inpaint (see \
                 /v1/models), or send the edit without a mask.",
                template.id
            ),
        ));
    }
    if let Some(strength) = req.strength {
        if !(0.0..=1.0).contains(&strength) {
            return Err(ApiError::invalid(
                "strength",
                format!("Invalid value for 'strength': {strength}. It must be between 0 and 1."),
            ));
        }
        supported(&template, Param::Strength, "strength")?;
    }
    one_of(
        "input_fidelity",
        req.input_fidelity.as_deref(),
        &["high", "low"],
    )?;
    let prompt = text("prompt", Some(req.prompt.clone()), max_prompt_chars)?;
    let prompt = match prompt {
        Some(p) => p,
        None if variation => String::new(),
        None => {
            return Err(ApiError::invalid("prompt", "The prompt must not be empty."));
        }
    };
    let requested = size(req.size.as_deref(), &template)?;
    let strength = req.strength;
    let mut job = common(
        req,
        template.clone(),
        prompt,
        requested.unwrap_or(template.default_size),
        max_prompt_chars,
    )?;
    job.params.strength = strength;
    Ok(Edit {
        job,
        auto_size: requested.is_none(),
        needs_alpha: template.kind == ModelKind::Inpaint && !masked,
    })
}

impl Edit {
    /// Checks the decoded inputs against each other and the model, and settles `size=auto`.
    pub fn check_inputs(
        &mut self,
        first: &InputImage,
        mask: Option<&InputImage>,
    ) -> Result<(), ApiError> {
        if let Some(mask) = mask {
            if mask.size() != first.size() {
                return Err(ApiError::invalid(
                    "mask",
                    format!(
                        "The mask is {} but the image is {}; they must be the same size.",
                        mask.size(),
                        first.size()
                    ),
                ));
            }
            if !mask.has_alpha {
                return Err(ApiError::invalid(
                    "mask",
                    "The mask has no alpha channel. Send a PNG whose fully transparent pixels \
                     mark the area to edit.",
                ));
            }
        }
        if self.needs_alpha && !first.has_alpha {
            return Err(ApiError::invalid(
                "mask",
                format!(
                    "Model '{}' repaints the area a mask marks: send a mask, or an image whose \
                     transparent pixels mark the area to edit.",
                    self.job.template.id
                ),
            ));
        }
        if self.auto_size {
            let t = &self.job.template;
            let size = inputs::auto_size(&t.sizes, t.default_size, first.size());
            self.job.size = size;
            self.job.params.width = size.width;
            self.job.params.height = size.height;
        }
        Ok(())
    }
}

/// The checks and values every image endpoint shares.
fn common(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    prompt: String,
    size: Size,
    max_prompt_chars: usize,
) -> Result<Generation, ApiError> {
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
        keep: false,
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

/// The size asked for; `None` for none or `auto`.
fn size(value: Option<&str>, template: &Template) -> Result<Option<Size>, ApiError> {
    let value = match value {
        None | Some("auto") => return Ok(None),
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
        Ok(size) if template.allows_size(size) => Ok(Some(size)),
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
