//! Image to image: `/v1/images/edits` (OpenAI's, multipart or JSON), `/v1/images/img2img` (the
//! original bridge's form) and `/v1/images/variations`.

use axum::{
    extract::{Request, State},
    response::Response,
};

use crate::{
    deliver::Delivery,
    error::ApiError,
    extract::read_upload,
    jobs::Jobs,
    ledger::{Attach, Fingerprint, FingerprintHasher, Kept, Later, Once},
    validate::{self, Checks, Context, EditKind, Source, Upload},
};

pub async fn edits(
    ctx: Context,
    jobs: State<Jobs>,
    delivery: State<Delivery>,
    checks: State<Checks>,
    req: Request,
) -> Result<Response, ApiError> {
    run(ctx, jobs, delivery, checks, req, EditKind::Edit).await
}

pub async fn variations(
    ctx: Context,
    jobs: State<Jobs>,
    delivery: State<Delivery>,
    checks: State<Checks>,
    req: Request,
) -> Result<Response, ApiError> {
    run(ctx, jobs, delivery, checks, req, EditKind::Variation).await
}

async fn run(
    ctx: Context,
    State(jobs): State<Jobs>,
    State(delivery): State<Delivery>,
    State(checks): State<Checks>,
    req: Request,
    kind: EditKind,
) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let attach = Attach::from_headers(&headers)?;
    let mut upload = read_upload(req, kind, checks.max_image_bytes()).await?;
    let later = delivery.later(&headers, upload.fields.webhook_url.take())?;
    let once = match attach {
        Some(attach) => Some(Once {
            attach,
            fingerprint: fingerprint(kind, &upload, later.as_ref())?,
        }),
        None => None,
    };
    let later = later.map(|later| (later, Kept::edit(&upload, kind, &headers)));
    let request = validate::edit(upload, kind, &ctx).await?;
    delivery.images(&jobs, &headers, request, once, later).await
}

/// What an upload asked, as the client sent it: its fields, then each image by its field name
/// and bytes (or JSON reference), in order. A multipart form's boundary does not count, so an
/// SDK's re-sent form matches its first.
fn fingerprint(
    kind: EditKind,
    upload: &Upload,
    later: Option<&Later>,
) -> Result<Fingerprint, ApiError> {
    fn json(value: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
        serde_json::to_vec(value)
            .map_err(|e| ApiError::Internal(format!("serializing a request: {e}")))
    }
    let mut hash = FingerprintHasher::default();
    hash.part(format!("{kind:?}").as_bytes())
        .part(&json(&upload.fields)?)
        .part(&Later::part(later));
    for image in upload.images.iter().chain(&upload.mask) {
        hash.part(image.param.as_bytes());
        match &image.source {
            Source::File(bytes) => hash.part(bytes),
            Source::Reference(reference) => hash.part(&json(reference)?),
        };
    }
    Ok(hash.finish())
}
