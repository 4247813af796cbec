use app::api::images::ImageGenerationRequest;
use axum::{extract::State, http::HeaderMap, response::Response};

use crate::{
    deliver::Delivery,
    error::ApiError,
    extract::ApiJson,
    jobs::Jobs,
    ledger::{Attach, Fingerprint, Kept, Later, Once},
    validate::{self, Context},
};

/// `POST /v1/images/generations`.
pub async fn generations(
    ctx: Context,
    State(jobs): State<Jobs>,
    State(delivery): State<Delivery>,
    headers: HeaderMap,
    ApiJson(mut req): ApiJson<ImageGenerationRequest>,
) -> Result<Response, ApiError> {
    let later = delivery.later(&headers, req.webhook_url.take())?;
    let once = match Attach::from_headers(&headers)? {
        Some(attach) => {
            let fields = serde_json::to_vec(&req)
                .map_err(|e| ApiError::Internal(format!("serializing a request: {e}")))?;
            Some(Once {
                attach,
                fingerprint: Fingerprint::of([
                    &b"generations"[..],
                    &fields,
                    &Later::part(later.as_ref()),
                ]),
            })
        }
        None => None,
    };
    let later = later.map(|later| (later, Kept::generation(&req, &headers)));
    let request = validate::generation(req, &ctx)?;
    delivery.images(&jobs, &headers, request, once, later).await
}
