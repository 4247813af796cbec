//! Reading an edit request: OpenAI's multipart form as every SDK builds it, or a JSON body
//! with the images as base64, `data:` URLs or image references. What comes out is the request
//! as sent; `validate::edit` checks it.

use app::api::images::ImageGenerationRequest;
use axum::{
    extract::{FromRequest, Multipart, Request, multipart::MultipartError},
    http::StatusCode,
};
use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::{body_bytes, is_json, media_type, parse_json};
use crate::serve::body_too_slow;
use crate::{
    error::{ApiError, ErrorCode},
    validate::{EditKind, Upload, UploadedImage},
};

/// Text parts longer than this are refused; the longest real field is a 32000-character prompt.
const MAX_TEXT_FIELD: usize = 256 * 1024;

/// Reads a multipart or JSON edit; variations come as multipart only. `max_file` bounds each
/// image file.
pub async fn read_upload(
    req: Request,
    kind: EditKind,
    max_file: usize,
) -> Result<Upload, ApiError> {
    let variation = kind == EditKind::Variation;
    let json = is_json(req.headers());
    match media_type(req.headers()).as_str() {
        "multipart/form-data" => {
            let multipart = Multipart::from_request(req, &()).await.map_err(|e| {
                ApiError::bad(
                    ErrorCode::InvalidMultipart,
                    None,
                    format!("The multipart form could not be read: {}.", e.body_text()),
                )
            })?;
            read_form(multipart, max_file, variation).await
        }
        _ if json && !variation => {
            let body = body_bytes(req, &()).await?;
            let mut fields: ImageGenerationRequest = parse_json(&body)?;
            drop(body);
            let mut images = Vec::new();
            if let Some(image) = fields.image.take() {
                images.push(UploadedImage::reference("image", image));
            }
            for (i, image) in fields
                .images
                .take()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                images.push(UploadedImage::reference(format!("images[{i}]"), image));
            }
            let mask = fields
                .mask
                .take()
                .map(|m| UploadedImage::reference("mask", m));
            Ok(Upload {
                fields,
                images,
                mask,
            })
        }
        _ if variation => Err(ApiError::bad(
            ErrorCode::InvalidContentType,
            None,
            "Send the image as multipart/form-data, as the OpenAI SDKs do.",
        )),
        _ => Err(ApiError::bad(
            ErrorCode::InvalidContentType,
            None,
            "Send the edit as multipart/form-data (as the OpenAI SDKs do) or as JSON.",
        )),
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::PayloadTooLarge(format!("{what} is too large."))
}

fn repeated(param: &str) -> ApiError {
    ApiError::bad(
        ErrorCode::DuplicateParameter,
        Some(param),
        format!("'{param}' was sent more than once; send it once."),
    )
}

fn form_error(e: MultipartError) -> ApiError {
    if let Some(slow) = body_too_slow(&e) {
        ApiError::from(slow)
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large("The request body")
    } else {
        ApiError::bad(
            ErrorCode::InvalidMultipart,
            None,
            format!("The multipart form could not be read: {}.", e.body_text()),
        )
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
) -> Result<Upload, ApiError> {
    let mut fields = Map::new();
    let mut seen = std::collections::HashSet::new();
    let mut images = Vec::new();
    let mut mask = None;
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match classify(&name) {
            Part::Image => {
                let data = read_part(&mut field, &name, limit).await?;
                images.push(UploadedImage::file(name, data));
            }
            Part::Mask => {
                if mask.is_some() {
                    return Err(repeated("mask"));
                }
                mask = Some(UploadedImage::file(
                    "mask",
                    read_part(&mut field, "mask", limit).await?,
                ));
            }
            Part::Text(key) => {
                // The last of two values silently winning would surprise whoever sent both.
                if !seen.insert(key.clone()) {
                    return Err(repeated(&key));
                }
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
    let fields = parse_json(&serde_json::to_vec(&Value::Object(fields)).unwrap_or_default())?;
    Ok(Upload {
        fields,
        images,
        mask,
    })
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
                ApiError::file_too_large(param, limit)
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
