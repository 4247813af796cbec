//! Validation as parsing: one pass per request kind turns what the client sent into a
//! [`Job`] that holds everything its generation needs (model, size, prompt, seeds, decoded
//! input images with the mask placed, output format, whether the gallery keeps it). Nothing
//! downstream checks again or changes it. Every refusal names the parameter, and nothing
//! refused ever reaches ComfyUI.
//!
//! - `generation`: `/v1/images/generations`
//! - `edit`: `/v1/images/edits`, `/v1/images/img2img` and `/v1/images/variations`
//! - `chat`: `/v1/chat/completions`

mod chat;
mod edit;
mod fetch;
mod fields;
mod generation;
mod images;
mod job;
mod sources;

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, request::Parts},
};

pub use chat::{ChatRequest, chat};
pub use edit::{EditKind, Source, Upload, UploadedImage, edit};
pub use generation::generation;
pub use images::Decoder;
pub use job::{ImageRequest, ImageStream, Inputs, Job, Mask, Output};

use crate::{
    config::{Config, GalleryMode},
    models::Models,
    storage::ImageStore,
};

pub use fetch::Fetcher;
use sources::Sources;

/// The limits and helpers validation works with; one per server.
#[derive(Clone)]
pub struct Checks(Arc<ChecksInner>);

/// The header a client sends to have its images kept with `GALLERY=ui`.
pub const KEEP_HEADER: &str = "x-bridge-gallery";

struct ChecksInner {
    gallery: GalleryMode,
    max_prompt_chars: usize,
    max_image_bytes: usize,
    chat_use_system_prompt: bool,
    decoder: Decoder,
    fetcher: Fetcher,
}

impl Checks {
    pub fn new(config: &Config) -> Checks {
        Checks(Arc::new(ChecksInner {
            gallery: config.gallery,
            max_prompt_chars: config.max_prompt_chars,
            max_image_bytes: config.max_image_bytes,
            chat_use_system_prompt: config.chat_use_system_prompt,
            decoder: Decoder::new(config.max_input_pixels, config.max_request_pixels),
            fetcher: Fetcher::new(&config.fetch_image_hosts),
        }))
    }

    /// Largest input image file, in bytes.
    pub fn max_image_bytes(&self) -> usize {
        self.0.max_image_bytes
    }

    /// Whether a request's images go to the gallery: all of them, or with `GALLERY=ui` those
    /// of requests that ask (the web app does, with `X-Bridge-Gallery: keep`).
    fn keeps(&self, headers: &HeaderMap) -> bool {
        match self.0.gallery {
            GalleryMode::All => true,
            GalleryMode::Off => false,
            GalleryMode::Ui => headers
                .get(KEEP_HEADER)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"keep")),
        }
    }
}

/// What a request is checked against: the server's limits and models, where its image
/// references may point, and whether the gallery keeps what it makes (from its headers).
pub struct Context {
    checks: Checks,
    models: Models,
    sources: Sources,
    keep: bool,
}

impl<S> FromRequestParts<S> for Context
where
    S: Send + Sync,
    Checks: FromRef<S>,
    Models: FromRef<S>,
    ImageStore: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Context::new(
            Checks::from_ref(state),
            Models::from_ref(state),
            ImageStore::from_ref(state),
            &parts.headers,
        ))
    }
}

impl Context {
    /// The context of a request with these headers; also of one kept with an async job and
    /// checked again by the bridge that takes the job over.
    pub fn new(checks: Checks, models: Models, store: ImageStore, headers: &HeaderMap) -> Context {
        let sources = Sources::new(store, headers, &checks);
        Context {
            keep: checks.keeps(headers),
            models,
            sources,
            checks,
        }
    }
}
