use app::api::chat::ChatCompletionRequest;
use axum::{extract::State, http::HeaderMap, response::Response};

use crate::{
    deliver::Delivery,
    error::ApiError,
    extract::ApiJson,
    jobs::Jobs,
    validate::{self, Context},
};

/// `POST /v1/chat/completions`.
pub async fn completions(
    ctx: Context,
    State(jobs): State<Jobs>,
    State(delivery): State<Delivery>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let request = validate::chat(req, &ctx).await?;
    delivery.chat(&jobs, &headers, request).await
}
