use app::api::images::ImageGenerationRequest;
use axum::{extract::State, http::HeaderMap, response::Response};

use crate::{
    deliver::Delivery,
    error::ApiError,
    extract::ApiJson,
    jobs::Jobs,
    validate::{self, Context},
};

/// `POST /v1/images/generations`.
pub async fn generations(
    ctx: Context,
    State(jobs): State<Jobs>,
    State(delivery): State<Delivery>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ImageGenerationRequest>,
) -> Result<Response, ApiError> {
    let request = validate::generation(req, &ctx)?;
    delivery.images(&jobs, &headers, request).await
}
