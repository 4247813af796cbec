//! An async job's request as it was accepted, kept with the job so that a bridge taking the
//! job over can check and run it again.

use app::api::images::{ImageGenerationRequest, ImageInput};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::validate::{EditKind, KEEP_HEADER, Source, Upload, UploadedImage};

/// A request to keep, and its files in order.
pub struct ToKeep {
    pub kept: Kept,
    pub files: Vec<Bytes>,
}

/// An async job's request as it was accepted, kept with the job. Files travel beside it, in
/// order; no credentials are kept.
#[derive(Debug, Serialize, Deserialize)]
pub struct Kept {
    /// `None` for a generation.
    pub edit: Option<KeptEdit>,
    pub fields: ImageGenerationRequest,
    images: Vec<KeptImage>,
    mask: Option<KeptImage>,
    /// The headers the request's checks read: its host (the base of image URLs) and whether
    /// the gallery keeps its images.
    host: Option<String>,
    gallery: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum KeptEdit {
    Edit,
    Variation,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeptImage {
    param: String,
    /// A JSON reference (base64, `data:` or a URL); `None` for a file, the next of the files.
    reference: Option<ImageInput>,
}

impl Kept {
    pub fn generation(fields: &ImageGenerationRequest, headers: &HeaderMap) -> ToKeep {
        ToKeep {
            kept: Kept {
                edit: None,
                fields: fields.clone(),
                images: Vec::new(),
                mask: None,
                host: header_text(headers, &header::HOST),
                gallery: header_text(headers, &HeaderName::from_static(KEEP_HEADER)),
            },
            files: Vec::new(),
        }
    }

    pub fn edit(upload: &Upload, kind: EditKind, headers: &HeaderMap) -> ToKeep {
        let mut files = Vec::new();
        let mut keep = |image: &UploadedImage| KeptImage {
            param: image.param.clone(),
            reference: match &image.source {
                Source::File(data) => {
                    files.push(data.clone());
                    None
                }
                Source::Reference(input) => Some(input.clone()),
            },
        };
        let images = upload.images.iter().map(&mut keep).collect();
        let mask = upload.mask.as_ref().map(&mut keep);
        let generation = Kept::generation(&upload.fields, headers).kept;
        ToKeep {
            kept: Kept {
                edit: Some(match kind {
                    EditKind::Edit => KeptEdit::Edit,
                    EditKind::Variation => KeptEdit::Variation,
                }),
                images,
                mask,
                ..generation
            },
            files,
        }
    }

    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (header::HOST, &self.host),
            (HeaderName::from_static(KEEP_HEADER), &self.gallery),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        headers
    }

    /// The upload again, its files in the order they were kept.
    pub fn upload(self, files: Vec<Bytes>) -> Upload {
        let mut files = files.into_iter();
        let mut restore = |kept: KeptImage| match kept.reference {
            Some(input) => UploadedImage::reference(kept.param, input),
            None => UploadedImage::file(kept.param, files.next().unwrap_or_default()),
        };
        let images = self.images.into_iter().map(&mut restore).collect();
        let mask = self.mask.map(&mut restore);
        Upload {
            fields: self.fields,
            images,
            mask,
        }
    }
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
