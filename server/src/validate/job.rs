//! The values validation produces. Their fields are private: only this module's parsers build
//! them, and nothing changes them afterwards.

use std::sync::Arc;

use app::api::{
    images::{ImageStreamKind, OutputFormat, ResponseFormat},
    size::Size,
};
use bytes::Bytes;

use crate::templates::{RenderParams, Template};

/// A request that passed every check: everything its generation needs.
#[derive(Debug)]
pub struct Job {
    pub(super) template: Arc<Template>,
    /// The values for the workflow. The seed and the uploaded file names are set per image
    /// by the job runner, which alone knows which server runs it.
    pub(super) params: RenderParams,
    /// One per image, in order.
    pub(super) seeds: Vec<u64>,
    pub(super) inputs: Inputs,
    pub(super) output: Output,
    /// Whether the gallery keeps the images.
    pub(super) keep: bool,
}

impl Job {
    pub fn template(&self) -> &Arc<Template> {
        &self.template
    }

    pub fn model(&self) -> &str {
        &self.template.id
    }

    pub fn params(&self) -> &RenderParams {
        &self.params
    }

    pub fn prompt(&self) -> &str {
        &self.params.prompt
    }

    pub fn size(&self) -> Size {
        self.params.size
    }

    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    pub fn output(&self) -> &Output {
        &self.output
    }

    pub fn keep(&self) -> bool {
        self.keep
    }
}

/// How finished images reach the client.
#[derive(Debug, Clone)]
pub struct Output {
    pub response_format: ResponseFormat,
    pub format: OutputFormat,
    /// JPEG quality, 0–100.
    pub compression: Option<u8>,
    /// The `quality` asked for, echoed in the reply.
    pub quality: String,
}

/// An image request: its job, and how to stream the reply (`None`: one JSON reply).
#[derive(Debug)]
pub struct ImageRequest {
    pub job: Job,
    pub stream: Option<ImageStream>,
}

/// What a client asked of an image stream.
#[derive(Debug, Clone, Copy)]
pub struct ImageStream {
    pub kind: ImageStreamKind,
    /// `partial_images`: previews per image, 0–3.
    pub partials: u8,
    /// `stream_progress`: also send the bridge's own progress events.
    pub progress: bool,
}

/// The files a job's workflow reads, decoded and checked, the mask already where the workflow
/// reads it.
#[derive(Debug, Default)]
pub struct Inputs {
    /// One per image slot, in slot order.
    pub images: Vec<InputFile>,
    pub mask: Option<Mask>,
}

impl Inputs {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.mask.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct InputFile {
    pub data: Bytes,
    /// The file name extension matching the bytes (`png`, `jpeg`, `webp`).
    pub extension: &'static str,
}

#[derive(Debug)]
pub enum Mask {
    /// Merged into the first image's alpha channel by ComfyUI (`/upload/mask`): the workflow
    /// reads the mask from the same LoadImage as the pixels.
    Alpha(InputFile),
    /// A file of its own for the workflow's mask loader.
    File(InputFile),
    /// The mask loader reads the first image's own transparency.
    FirstImage,
}
