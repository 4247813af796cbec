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
    validate::{self, Checks, Context, EditKind},
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
    let upload = read_upload(req, kind, checks.max_image_bytes()).await?;
    let request = validate::edit(upload, kind, &ctx).await?;
    delivery.images(&jobs, &headers, request).await
}
