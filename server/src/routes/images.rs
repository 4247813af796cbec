use app::api::images::{ImageData, ImageGenerationRequest, ImagesResponse, ResponseFormat};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
};
use base64::Engine;

use crate::{
    encode,
    error::ApiError,
    extract::ApiJson,
    jobs::{self, Generated},
    state::{AppState, Bridge},
    validate::{self, Generation},
};

pub async fn generations(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ImageGenerationRequest>,
) -> Result<Json<ImagesResponse>, ApiError> {
    let bridge = &state.bridge;
    let template = bridge
        .model(req.model.as_deref())
        .ok_or_else(|| unknown_model(req.model.as_deref()))?;
    let job = validate::generation(req, template, bridge.config.max_prompt_chars)?;
    let images = jobs::generate(
        &bridge.pool,
        &bridge.limits,
        &job.template,
        &job.params,
        &job.seeds,
        &jobs::Inputs::default(),
        bridge.config.generation_timeout(),
    )
    .await?;
    respond(bridge, &headers, &job, images).await
}

/// 404 for a model name that is not loaded, or for no model at all.
pub(super) fn unknown_model(requested: Option<&str>) -> ApiError {
    match requested.filter(|m| !m.is_empty()) {
        Some(name) => ApiError::ModelNotFound(name.to_string()),
        None => ApiError::NotFound(
            "No model is loaded; check the workflows directory (see /health).".into(),
        ),
    }
}

/// The `ImagesResponse` for finished images: each transcoded to the asked format, then inline
/// as base64 or stored and linked.
pub(super) async fn respond(
    bridge: &Bridge,
    headers: &HeaderMap,
    job: &Generation,
    images: Vec<Generated>,
) -> Result<Json<ImagesResponse>, ApiError> {
    let base_url = match job.response_format {
        ResponseFormat::Url => Some(public_base(&bridge.config.public_url, headers)),
        ResponseFormat::B64Json => None,
    };
    let revised_prompt = Some(job.params.prompt.clone()).filter(|p| !p.is_empty());
    let mut data = Vec::with_capacity(images.len());
    for image in images {
        let bytes =
            encode::transcode(image.data, job.output_format, job.output_compression).await?;
        let mut item = ImageData {
            revised_prompt: revised_prompt.clone(),
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
        quality: Some(job.quality.clone()),
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
pub(super) fn public_base(configured: &Option<String>, headers: &HeaderMap) -> String {
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
