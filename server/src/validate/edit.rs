//! `/v1/images/edits`, `/v1/images/img2img` and `/v1/images/variations`: image to image.

use std::sync::Arc;

use app::api::images::{ImageGenerationRequest, ImageInput, ImageStreamKind};
use bytes::Bytes;
use futures::future::try_join_all;

use super::{
    Context,
    fields::{self, one_of, supported, text},
    images::{InputImage, Measured},
    job::{ImageRequest, InputFile, Inputs, Job, Mask},
};
use crate::{
    error::{ApiError, ErrorCode},
    models::Purpose,
    templates::{ModelKind, Param, STRENGTH, Template},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    Edit,
    /// An edit with no prompt: the model's own prompt and default strength.
    Variation,
}

/// An edit as it arrived: its text fields, and its files in order, each with the name of the
/// field it came in.
#[derive(Debug, Default)]
pub struct Upload {
    pub fields: ImageGenerationRequest,
    pub images: Vec<UploadedImage>,
    pub mask: Option<UploadedImage>,
}

#[derive(Debug)]
pub struct UploadedImage {
    /// The form field or JSON path that carried it, for errors.
    pub param: String,
    pub source: Source,
}

#[derive(Debug)]
pub enum Source {
    /// A file part's bytes.
    File(Bytes),
    /// A JSON value: base64, a `data:` URL or an image URL.
    Reference(ImageInput),
}

impl UploadedImage {
    pub fn file(param: impl Into<String>, data: Bytes) -> UploadedImage {
        UploadedImage {
            param: param.into(),
            source: Source::File(data),
        }
    }

    pub fn reference(param: impl Into<String>, input: ImageInput) -> UploadedImage {
        UploadedImage {
            param: param.into(),
            source: Source::Reference(input),
        }
    }
}

/// An image's bytes, and the name of the field that carried it.
pub(super) type Resolved = (String, Bytes);

async fn resolve(image: UploadedImage, ctx: &Context) -> Result<Resolved, ApiError> {
    let data = match image.source {
        Source::File(data) => data,
        Source::Reference(input) => ctx.sources.resolve(&image.param, input).await?,
    };
    Ok((image.param, data))
}

pub async fn edit(upload: Upload, kind: EditKind, ctx: &Context) -> Result<ImageRequest, ApiError> {
    let Upload {
        fields: req,
        images,
        mask,
    } = upload;
    let mut resolved = Vec::with_capacity(images.len());
    for image in images {
        resolved.push(resolve(image, ctx).await?);
    }
    let mask = match mask {
        Some(m) => Some(resolve(m, ctx).await?.1),
        None => None,
    };
    let template = ctx.models.choose(
        req.model.as_deref(),
        Purpose::Edit {
            masked: mask.is_some(),
        },
    )?;
    let stream = fields::stream(&req, ImageStreamKind::Edit);
    let job = image_to_image(req, template, resolved, mask, kind, ctx).await?;
    Ok(ImageRequest { job, stream })
}

/// The job of an edit on `template`; chat turns with an image come here too.
pub(super) async fn image_to_image(
    mut req: ImageGenerationRequest,
    template: Arc<Template>,
    images: Vec<Resolved>,
    mask: Option<Bytes>,
    kind: EditKind,
    ctx: &Context,
) -> Result<Job, ApiError> {
    if kind == EditKind::Variation && req.prompt.trim().is_empty() {
        req.prompt = template.saved_prompt();
    }
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
    if images.is_empty() {
        return Err(ApiError::bad(
            ErrorCode::MissingRequiredParameter,
            Some("image"),
            "Missing required parameter: 'image'.",
        ));
    }
    if images.len() > slots {
        return Err(ApiError::invalid(
            "image",
            format!(
                "Model '{}' takes at most {slots} input image{}; the request has {}.",
                template.id,
                if slots == 1 { "" } else { "s" },
                images.len()
            ),
        ));
    }
    if mask.is_some() && !template.supports(Param::Mask) {
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
        let (min, max) = STRENGTH;
        if !(min..=max).contains(&strength) {
            return Err(ApiError::invalid(
                "strength",
                format!(
                    "Invalid value for 'strength': {strength}. It must be between {min} and {max}."
                ),
            ));
        }
        supported(&template, Param::Strength, "strength")?;
    }
    one_of(
        "input_fidelity",
        req.input_fidelity.as_deref(),
        &["high", "low"],
    )?;
    let max_chars = ctx.checks.0.max_prompt_chars;
    let prompt = match text("prompt", Some(req.prompt.clone()), max_chars)? {
        Some(p) => p,
        None if kind == EditKind::Variation => String::new(),
        None => return Err(ApiError::invalid("prompt", "The prompt must not be empty.")),
    };
    let requested = fields::requested_size(req.size.as_deref(), &template)?;
    let draft = fields::draft(req, template.clone(), prompt, ctx)?;

    let decoder = &ctx.checks.0.decoder;
    let measured: Vec<Measured> = images
        .into_iter()
        .map(|(param, data)| decoder.measure(&param, data))
        .collect::<Result<_, _>>()?;
    let mask = mask.map(|m| decoder.measure("mask", m)).transpose()?;
    decoder.budget(measured.iter().chain(&mask))?;
    let images = try_join_all(measured.into_iter().map(|m| decoder.decode(m))).await?;
    let mask = match mask {
        Some(m) => Some(decoder.decode(m).await?),
        None => None,
    };
    check_mask(&template, &images[0], mask.as_ref())?;
    let size = fields::size(requested, &template, Some(images[0].size));

    // A workflow with no size input takes the picture at whatever size it comes.
    let (images, mask) = if template.supports(Param::Width) {
        (images, mask)
    } else {
        let images = try_join_all(images.into_iter().map(|i| decoder.resize(i, size))).await?;
        let mask = match mask {
            Some(m) => Some(decoder.resize(m, size).await?),
            None => None,
        };
        (images, mask)
    };
    let inputs = Inputs {
        mask: place_mask(&template, mask),
        images: images.into_iter().map(file).collect(),
    };
    Ok(draft.into_job(size, inputs))
}

/// Checks the mask against the first image, and that an inpaint model without a mask gets
/// an image whose transparency marks the area to repaint.
fn check_mask(
    template: &Template,
    first: &InputImage,
    mask: Option<&InputImage>,
) -> Result<(), ApiError> {
    match mask {
        Some(mask) if mask.size != first.size => Err(ApiError::invalid(
            "mask",
            format!(
                "The mask is {} but the image is {}; they must be the same size.",
                mask.size, first.size
            ),
        )),
        Some(mask) if !mask.has_alpha => Err(ApiError::invalid(
            "mask",
            "The mask has no alpha channel. Send a PNG whose fully transparent pixels mark the \
             area to edit.",
        )),
        None if template.kind == ModelKind::Inpaint && !first.has_alpha => Err(ApiError::invalid(
            "mask",
            format!(
                "Model '{}' repaints the area a mask marks: send a mask, or an image whose \
                     transparent pixels mark the area to edit.",
                template.id
            ),
        )),
        _ => Ok(()),
    }
}

/// Where the mask goes: merged into the first image's alpha when the workflow reads the mask
/// from its LoadImage, a file of its own for a mask loader, or, with no mask on an inpaint
/// model, the first image's own transparency (as OpenAI's edits do).
fn place_mask(template: &Template, mask: Option<InputImage>) -> Option<Mask> {
    match (mask, template.mask_in_image_alpha()) {
        (Some(m), true) => Some(Mask::Alpha(file(m))),
        (Some(m), false) => Some(Mask::File(file(m))),
        (None, false) if template.kind == ModelKind::Inpaint => Some(Mask::FirstImage),
        (None, _) => None,
    }
}

fn file(image: InputImage) -> InputFile {
    InputFile {
        extension: image.format.extension(),
        data: image.data,
    }
}
