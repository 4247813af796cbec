//! Reading an edit request: OpenAI's multipart form as every SDK builds it, or a JSON body with
//! the images as base64, `data:` URLs or image references.

use app::api::images::{ImageGenerationRequest, ImageInput, ImageRef};
use axum::{
    extract::{FromRequest, Multipart, Request, multipart::MultipartError},
    http::{HeaderMap, StatusCode},
};
use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::{
    error::ApiError,
    extract::{body_bytes, is_json, media_type, parse_json},
    serve::body_too_slow,
    state::Bridge,
};

/// Text parts longer than this are refused; the longest real field is a 32000-character prompt.
const MAX_TEXT_FIELD: usize = 256 * 1024;

/// An edit as it arrived: its fields, and its files in order, each with the name of the
/// field it came in.
pub struct EditUpload {
    pub req: ImageGenerationRequest,
    pub images: Vec<(String, Bytes)>,
    pub mask: Option<Bytes>,
}

/// Reads a multipart or JSON edit. `prompt_optional` is for variations, which send none.
pub async fn read(
    bridge: &Bridge,
    req: Request,
    prompt_optional: bool,
) -> Result<EditUpload, ApiError> {
    let limit = bridge.config.max_image_bytes;
    let json = is_json(req.headers());
    match media_type(req.headers()).as_str() {
        "multipart/form-data" => {
            let multipart =
                Multipart::from_request(req, &())
                    .await
                    .map_err(|e| ApiError::InvalidRequest {
                        message: format!(
                            "The multipart form could not be read: {}.",
                            e.body_text()
                        ),
                        param: None,
                        code: Some("invalid_multipart"),
                    })?;
            read_form(multipart, limit, prompt_optional).await
        }
        _ if json && !prompt_optional => {
            let headers = req.headers().clone();
            let body = body_bytes(req, &()).await?;
            let mut req: ImageGenerationRequest = parse_json(&body)?;
            drop(body);
            let images = json_images(bridge, &headers, &mut req, limit).await?;
            let mask = match req.mask.take() {
                Some(m) => Some(resolve(bridge, &headers, "mask", m, limit).await?),
                None => None,
            };
            Ok(EditUpload { req, images, mask })
        }
        _ if prompt_optional => Err(ApiError::InvalidRequest {
            message: "Send the image as multipart/form-data, as the OpenAI SDKs do.".into(),
            param: None,
            code: Some("invalid_content_type"),
        }),
        _ => Err(ApiError::InvalidRequest {
            message: "Send the edit as multipart/form-data (as the OpenAI SDKs do) or as JSON."
                .into(),
            param: None,
            code: Some("invalid_content_type"),
        }),
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::PayloadTooLarge(format!("{what} is too large."))
}

fn file_too_large(param: &str, limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "The file '{param}' is larger than the limit of {} MB per image.",
        limit / (1024 * 1024)
    ))
}

fn form_error(e: MultipartError) -> ApiError {
    if let Some(slow) = body_too_slow(&e) {
        ApiError::from(slow)
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large("The request body")
    } else {
        ApiError::InvalidRequest {
            message: format!("The multipart form could not be read: {}.", e.body_text()),
            param: None,
            code: Some("invalid_multipart"),
        }
    }
}

/// Which form field a part is: `image`, `image[]`, `image[N]` (all images, in arrival order)
/// or `mask`; anything else is a text field.
enum Part {
    Image,
    Mask,
    Text(String),
}

fn classify(name: &str) -> Part {
    let indexed = name
        .strip_prefix("image[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()));
    match name {
        "image" => Part::Image,
        "mask" => Part::Mask,
        _ if indexed => Part::Image,
        other => Part::Text(other.to_string()),
    }
}

async fn read_form(
    mut form: Multipart,
    limit: usize,
    prompt_optional: bool,
) -> Result<EditUpload, ApiError> {
    let mut fields = Map::new();
    let mut images = Vec::new();
    let mut mask = None;
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match classify(&name) {
            Part::Image => images.push((name.clone(), read_part(&mut field, &name, limit).await?)),
            Part::Mask => mask = Some(read_part(&mut field, "mask", limit).await?),
            Part::Text(key) => {
                let bytes = read_part(&mut field, &key, MAX_TEXT_FIELD).await?;
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::invalid(&key, format!("'{key}' is not valid UTF-8 text."))
                })?;
                // The SDKs drop empty values; an empty part means "not given".
                if !text.is_empty() {
                    fields.insert(key.clone(), typed(&key, text));
                }
            }
        }
    }
    if prompt_optional {
        fields
            .entry("prompt")
            .or_insert(Value::String(String::new()));
    }
    let req = parse_json(&serde_json::to_vec(&Value::Object(fields)).unwrap_or_default())?;
    Ok(EditUpload { req, images, mask })
}

async fn read_part(
    field: &mut axum::extract::multipart::Field<'_>,
    param: &str,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(if limit == MAX_TEXT_FIELD {
                too_large(&format!("The field '{param}'"))
            } else {
                file_too_large(param, limit)
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Form values are text; numbers and booleans become JSON values so that one set of rules
/// (and one set of error messages) checks multipart and JSON edits alike. A value that does
/// not parse stays text and is refused by name.
fn typed(key: &str, text: String) -> Value {
    let parsed = match key {
        "n" | "partial_images" | "output_compression" | "steps" | "seed" => {
            text.trim().parse::<u64>().ok().map(Value::from)
        }
        "cfg" | "strength" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        "stream" | "stream_progress" => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    parsed.unwrap_or(Value::String(text))
}

/// The images of a JSON edit: `image` first, then `images`, in order.
async fn json_images(
    bridge: &Bridge,
    headers: &HeaderMap,
    req: &mut ImageGenerationRequest,
    limit: usize,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let mut out = Vec::new();
    if let Some(image) = req.image.take() {
        out.push((
            "image".to_string(),
            resolve(bridge, headers, "image", image, limit).await?,
        ));
    }
    for (i, image) in req
        .images
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let param = format!("images[{i}]");
        let data = resolve(bridge, headers, &param, image, limit).await?;
        out.push((param, data));
    }
    Ok(out)
}

/// The bytes behind one JSON image: base64, a `data:` URL, the URL of an image this bridge
/// served, or one on a host allowed by `FETCH_IMAGE_HOSTS`. Other URLs are never fetched.
pub(super) async fn resolve(
    bridge: &Bridge,
    headers: &HeaderMap,
    param: &str,
    input: ImageInput,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let text = match input {
        ImageInput::Data(s) => s,
        ImageInput::Ref(ImageRef {
            image_url: Some(url),
            ..
        }) => url,
        ImageInput::Ref(ImageRef {
            file_id: Some(_), ..
        }) => {
            return Err(ApiError::invalid(
                param,
                "'file_id' is not supported: this server has no Files API. Send the image as a \
                 data: URL or base64.",
            ));
        }
        ImageInput::Ref(_) => {
            return Err(ApiError::invalid(
                param,
                format!("'{param}' needs an 'image_url' (a data: URL)."),
            ));
        }
    };
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        return own_image(bridge, headers, param, text).await;
    }
    let payload = match text.strip_prefix("data:") {
        Some(rest) => {
            let (meta, data) = rest.split_once(',').ok_or_else(|| {
                ApiError::invalid(param, format!("'{param}' is not a valid data: URL."))
            })?;
            if !meta.ends_with(";base64") {
                return Err(ApiError::invalid(
                    param,
                    format!("'{param}' must be a base64 data: URL (data:image/png;base64,…)."),
                ));
            }
            data
        }
        None => text,
    };
    // Base64 grows data by 4/3; checking the text first keeps a huge string from being decoded.
    if payload.len() / 4 * 3 > limit {
        return Err(file_too_large(param, limit));
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let cleaned: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let data = engine.decode(cleaned).map_err(|_| {
        ApiError::invalid(
            param,
            format!("'{param}' is neither base64 image data nor a data: URL."),
        )
    })?;
    if data.len() > limit {
        return Err(file_too_large(param, limit));
    }
    Ok(Bytes::from(data))
}

/// An image this bridge served by URL (`/images/<name>` on its own host) is read from its
/// store, one on a host the operator allowed is downloaded, and any other URL is refused.
async fn own_image(
    bridge: &Bridge,
    headers: &HeaderMap,
    param: &str,
    url: &str,
) -> Result<Bytes, ApiError> {
    let base = super::images::public_base(&bridge.config.public_url, headers);
    let own = url
        .strip_prefix(base.as_str())
        .and_then(|rest| rest.strip_prefix("/images/"))
        .and_then(|name| bridge.images.path_of(name));
    let Some((path, _)) = own else {
        if bridge.fetcher.allows(url) {
            return bridge
                .fetcher
                .image(param, url, bridge.config.max_image_bytes)
                .await;
        }
        return Err(ApiError::invalid(
            param,
            format!(
                "'{param}' is a URL of another server, and this server fetches none (see \
                 FETCH_IMAGE_HOSTS). Send the image as a data: URL or base64, or use a URL of an \
                 image this server made."
            ),
        ));
    };
    let data = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::invalid(
            param,
            format!("'{param}' names an image of this server that has expired."),
        )
    })?;
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_fields_in_every_spelling() {
        for name in ["image", "image[]", "image[0]", "image[12]"] {
            assert!(matches!(classify(name), Part::Image), "{name}");
        }
        assert!(matches!(classify("mask"), Part::Mask));
        for name in ["images", "image[x]", "prompt", "mask[]"] {
            assert!(matches!(classify(name), Part::Text(_)), "{name}");
        }
    }

    #[test]
    fn form_text_becomes_typed_json() {
        assert_eq!(typed("n", "2".into()), Value::from(2));
        assert_eq!(typed("strength", "0.25".into()), Value::from(0.25));
        assert_eq!(typed("stream", "true".into()), Value::Bool(true));
        assert_eq!(typed("stream", "False".into()), Value::Bool(false));
        assert_eq!(typed("stream_progress", "true".into()), Value::Bool(true));
        assert_eq!(typed("n", "two".into()), Value::from("two"));
        assert_eq!(typed("strength", "NaN".into()), Value::from("NaN"));
        assert_eq!(typed("prompt", "42".into()), Value::from("42"));
    }
}
