use app::api::images::{ImageData, ImageGenerationRequest, ImagesResponse, ResponseFormat};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use bytes::Bytes;

use super::{
    b64_body,
    image_stream::{self, Kind, Options},
};
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
) -> Result<Response, ApiError> {
    let bridge = &state.bridge;
    let template = bridge
        .model(req.model.as_deref())
        .ok_or_else(|| unknown_model(req.model.as_deref()))?;
    let streamed = stream_options(&req, Kind::Generation);
    let mut job = validate::generation(req, template, bridge.config.max_prompt_chars)?;
    job.keep = bridge.keeps(&headers);
    if let Some(options) = streamed {
        return Ok(image_stream::respond(
            bridge.clone(),
            job,
            jobs::Inputs::default(),
            options,
        ));
    }
    let images = jobs::generate(bridge, &job, &jobs::Inputs::default()).await?;
    Ok(respond(bridge, &headers, &job, images)
        .await?
        .into_response())
}

/// How to stream the reply, or `None` for a plain JSON reply.
pub(super) fn stream_options(req: &ImageGenerationRequest, kind: Kind) -> Option<Options> {
    (req.stream == Some(true)).then(|| Options {
        kind,
        partials: req.partial_images.unwrap_or(0),
        progress: req.stream_progress == Some(true),
    })
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
/// as base64 (streamed into the body) or stored and linked.
pub(super) async fn respond(
    bridge: &Bridge,
    headers: &HeaderMap,
    job: &Generation,
    images: Vec<Generated>,
) -> Result<Response, ApiError> {
    let base_url = match job.response_format {
        ResponseFormat::Url => Some(public_base(&bridge.config.public_url, headers)),
        ResponseFormat::B64Json => None,
    };
    let revised_prompt = Some(job.params.prompt.clone()).filter(|p| !p.is_empty());
    let mut data = Vec::with_capacity(images.len());
    let mut inline = Vec::new();
    for image in images {
        let mut item = ImageData {
            revised_prompt: revised_prompt.clone(),
            seed: Some(image.seed),
            ..ImageData::default()
        };
        match &base_url {
            Some(base) => {
                item.url = Some(deliver(bridge, job, image.data, Delivery::Url(base)).await?)
            }
            None => inline.push(
                encode::transcode(image.data, job.output_format, job.output_compression).await?,
            ),
        }
        data.push(item);
    }
    let reply = ImagesResponse {
        created: now_secs(),
        data,
        background: Some("opaque".into()),
        output_format: Some(job.output_format),
        quality: Some(job.quality.clone()),
        size: Some(job.size.to_string()),
    };
    if inline.is_empty() {
        Ok(Json(reply).into_response())
    } else {
        b64_body::response(reply, inline)
    }
}

/// How a finished image reaches the client.
pub(super) enum Delivery<'a> {
    Base64,
    /// Base64 behind a `data:` prefix, ready for markdown or an `<img>`.
    DataUrl,
    /// Stored, and linked under this base URL.
    Url(&'a str),
}

/// One finished image in the asked format, as the text that carries it to the client.
pub(super) async fn deliver(
    bridge: &Bridge,
    job: &Generation,
    image: Bytes,
    how: Delivery<'_>,
) -> Result<String, ApiError> {
    let bytes = encode::transcode(image, job.output_format, job.output_compression).await?;
    let base64 = base64::engine::general_purpose::STANDARD;
    Ok(match how {
        Delivery::Base64 => base64.encode(&bytes),
        Delivery::DataUrl => {
            let mime = job.output_format.mime();
            let mut out = String::with_capacity(bytes.len() * 4 / 3 + mime.len() + 16);
            out.push_str("data:");
            out.push_str(mime);
            out.push_str(";base64,");
            base64.encode_string(&bytes, &mut out);
            out
        }
        Delivery::Url(base) => {
            let name = bridge
                .images
                .put(&bytes, job.output_format)
                .await
                .map_err(|e| ApiError::Internal(format!("could not store an image: {e}")))?;
            format!("{base}/images/{name}")
        }
    })
}

pub(super) fn now_secs() -> u64 {
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
