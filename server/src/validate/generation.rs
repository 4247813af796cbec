//! `/v1/images/generations`: text to image.

use std::sync::Arc;

use app::api::images::{ImageGenerationRequest, ImageStreamKind};

use super::{
    Context,
    fields::{self, text},
    job::{ImageRequest, Inputs, Job},
};
use crate::{
    error::ApiError,
    models::Purpose,
    templates::{ModelKind, Template},
};

pub fn generation(req: ImageGenerationRequest, ctx: &Context) -> Result<ImageRequest, ApiError> {
    let template = ctx.models.choose(req.model.as_deref(), Purpose::Generate)?;
    let stream = fields::stream(&req, ImageStreamKind::Generation);
    let job = text_to_image(req, template, ctx)?;
    Ok(ImageRequest { job, stream })
}

/// The job of a text-to-image request on `template`; chat turns without an image come here
/// too.
pub(super) fn text_to_image(
    req: ImageGenerationRequest,
    template: Arc<Template>,
    ctx: &Context,
) -> Result<Job, ApiError> {
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
    let prompt = text(
        "prompt",
        Some(req.prompt.clone()),
        ctx.checks.0.max_prompt_chars,
    )?
    .ok_or_else(|| ApiError::invalid("prompt", "The prompt must not be empty."))?;
    let requested = fields::requested_size(req.size.as_deref(), &template)?;
    let size = fields::size(requested, &template, None);
    Ok(fields::draft(req, template, prompt, ctx)?.into_job(size, Inputs::default()))
}
