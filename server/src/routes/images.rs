use app::api::images::{ImageData, ImageGenerationRequest, ImagesResponse, ResponseFormat};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
};
use base64::Engine;

use crate::{encode, error::ApiError, extract::ApiJson, jobs, state::AppState, validate};

pub async fn generations(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ImageGenerationRequest>,
) -> Result<Json<ImagesResponse>, ApiError> {
    let bridge = &state.bridge;
    let template = bridge.model(req.model.as_deref()).ok_or_else(|| {
        match req.model.as_deref().filter(|m| !m.is_empty()) {
            Some(name) => ApiError::ModelNotFound(name.to_string()),
            None => ApiError::NotFound(
                "No model is loaded; check the workflows directory (see /health).".into(),
            ),
        }
    })?;
    let job = validate::generation(req, template, bridge.config.max_prompt_chars)?;
    let images = jobs::generate(
        &bridge.pool,
        &bridge.limits,
        &job.template,
        &job.params,
        &job.seeds,
        bridge.config.generation_timeout(),
    )
    .await?;

    let base_url = match job.response_format {
        ResponseFormat::Url => Some(public_base(&bridge.config.public_url, &headers)),
        ResponseFormat::B64Json => None,
    };
    let mut data = Vec::with_capacity(images.len());
    for image in images {
        let bytes =
            encode::transcode(image.data, job.output_format, job.output_compression).await?;
        let mut item = ImageData {
            revised_prompt: Some(job.params.prompt.clone()),
            seed: Some(image.seed),
            ..ImageData::default()
        };
        match &base_url {
            Some(base) => {
                let name = bridge
                    .images
                    .put(&bytes, job.output_format)
                    .await
                    .map_err(|e| ApiError::Internal(format!("could not store an image: {e}")))?;
                item.url = Some(format!("{base}/images/{name}"));
            }
            None => item.b64_json = Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
        }
        data.push(item);
    }
    Ok(Json(ImagesResponse {
        created: now_secs(),
        data,
        background: Some("opaque".into()),
        output_format: Some(job.output_format),
        quality: Some(job.quality),
        size: Some(job.size.to_string()),
    }))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The base of absolute image URLs: the configured public URL, else the request's own host.
fn public_base(configured: &Option<String>, headers: &HeaderMap) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}
