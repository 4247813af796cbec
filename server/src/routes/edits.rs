//! Image to image: `/v1/images/edits` (OpenAI's, multipart or JSON), `/v1/images/img2img` (the
//! original bridge's form) and `/v1/images/variations`.

use axum::{
    extract::{Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

use futures::future::try_join_all;

use super::{
    image_stream::{self, Kind},
    images::{respond, stream_options, unknown_model},
    upload::{self, EditUpload},
};
use crate::{
    error::ApiError,
    inputs::{self, InputImage},
    jobs::{self, InputFile, Inputs, Mask},
    state::{AppState, Bridge},
    templates::{ModelKind, Param, Template},
    validate::{self, Generation},
};

pub async fn edits(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let upload = upload::read(&state.bridge, req, false).await?;
    run(&state, &headers, upload, false).await
}

/// A variation is an edit with no prompt: the model's own prompt and default strength.
pub async fn variations(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let upload = upload::read(&state.bridge, req, true).await?;
    run(&state, &headers, upload, true).await
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    upload: EditUpload,
    variation: bool,
) -> Result<Response, ApiError> {
    let bridge = &state.bridge;
    let template = bridge
        .edit_model(upload.req.model.as_deref(), upload.mask.is_some())
        .ok_or_else(|| unknown_model(upload.req.model.as_deref()))?;
    let streamed = stream_options(&upload.req, Kind::Edit);
    let (mut job, inputs) = prepare(bridge, template, upload, variation).await?;
    job.keep = bridge.keeps(headers);
    if let Some(options) = streamed {
        return Ok(image_stream::respond(bridge.clone(), job, inputs, options));
    }
    let generated = jobs::generate(bridge, &job, &inputs).await?;
    drop(inputs);
    Ok(respond(bridge, headers, &job, generated)
        .await?
        .into_response())
}

/// Checks an edit on `template` and its images, and readies the files its jobs read.
pub(super) async fn prepare(
    bridge: &Bridge,
    template: Arc<Template>,
    upload: EditUpload,
    variation: bool,
) -> Result<(Generation, Inputs), ApiError> {
    let EditUpload {
        mut req,
        images,
        mask,
    } = upload;
    if variation && req.prompt.trim().is_empty() {
        req.prompt = template.saved_prompt();
    }
    let mut edit = validate::edit(
        req,
        template.clone(),
        bridge.config.max_prompt_chars,
        images.len(),
        mask.is_some(),
        variation,
    )?;

    let images = try_join_all(
        images
            .into_iter()
            .map(|(param, data)| async move { inputs::inspect(&param, data).await }),
    )
    .await?;
    let mask = match mask {
        Some(data) => Some(inputs::inspect("mask", data).await?),
        None => None,
    };
    edit.check_inputs(&images[0], mask.as_ref())?;
    let job = edit.job;

    // A workflow with no size input takes the picture at whatever size it comes.
    let (images, mask) = if template.supports(Param::Width) {
        (images, mask)
    } else {
        let images = try_join_all(images.into_iter().map(|i| inputs::resize(i, job.size))).await?;
        let mask = match mask {
            Some(m) => Some(inputs::resize(m, job.size).await?),
            None => None,
        };
        (images, mask)
    };
    let inputs = job_inputs(&template, images, mask);
    Ok((job, inputs))
}

fn file(image: InputImage) -> InputFile {
    InputFile {
        extension: image.format.extension(),
        data: image.data,
    }
}

/// Places the mask where the workflow reads it. An inpaint edit without a mask uses the first
/// image's own transparency, as OpenAI's edits do.
fn job_inputs(template: &Template, images: Vec<InputImage>, mask: Option<InputImage>) -> Inputs {
    let mask = match (mask, template.mask_in_image_alpha()) {
        (Some(m), true) => Some(Mask::Alpha(file(m))),
        (Some(m), false) => Some(Mask::File(file(m))),
        (None, false) if template.kind == ModelKind::Inpaint => Some(Mask::FirstImage),
        (None, _) => None,
    };
    Inputs {
        images: images.into_iter().map(file).collect(),
        mask,
    }
}
