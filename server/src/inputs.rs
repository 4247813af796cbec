//! Input images of edit requests. Recognised by their first bytes and decoded once to prove
//! they are whole images, never trusted by file name or content type: clients label JPEGs
//! `*.png` and send untyped parts as `application/octet-stream`.

use std::io::Cursor;

use app::api::images::OutputFormat;
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, imageops::FilterType};

use crate::{error::ApiError, templates::Size};

/// A checked input image, kept as the bytes the client sent.
#[derive(Debug, Clone)]
pub struct InputImage {
    pub data: Bytes,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
}

impl InputImage {
    pub fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

/// PNG, JPEG or WebP, by signature.
pub fn sniff(data: &[u8]) -> Option<OutputFormat> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(OutputFormat::Png)
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(OutputFormat::Jpeg)
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some(OutputFormat::Webp)
    } else {
        None
    }
}

fn image_format(f: OutputFormat) -> ImageFormat {
    match f {
        OutputFormat::Png => ImageFormat::Png,
        OutputFormat::Jpeg => ImageFormat::Jpeg,
        OutputFormat::Webp => ImageFormat::WebP,
    }
}

fn decode(data: &[u8], format: OutputFormat) -> Result<DynamicImage, image::ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(data), image_format(format));
    let mut limits = Limits::default();
    limits.max_image_width = Some(Size::MAX_SIDE);
    limits.max_image_height = Some(Size::MAX_SIDE);
    reader.limits(limits);
    reader.decode()
}

/// Checks that `data` is a PNG, JPEG or WebP image that decodes completely. `param` names the
/// form field in the error.
pub async fn inspect(param: &str, data: Bytes) -> Result<InputImage, ApiError> {
    let Some(format) = sniff(&data) else {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "Invalid file '{param}': not a PNG, JPEG or WebP image. Send the image file itself."
            ),
            param: Some(param.to_string()),
            code: Some("invalid_image_format"),
        });
    };
    let param = param.to_string();
    tokio::task::spawn_blocking(move || {
        let decoded = decode(&data, format).map_err(|e| ApiError::InvalidRequest {
            message: format!("Invalid file '{param}': the image could not be read ({e})."),
            param: Some(param.clone()),
            code: Some("invalid_image"),
        })?;
        Ok(InputImage {
            format,
            width: decoded.width(),
            height: decoded.height(),
            has_alpha: decoded.color().has_alpha(),
            data,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("image check failed: {e}")))?
}

/// Stretches an image to `size` as a PNG, for workflows that take the picture at whatever
/// size it comes. Stretching rather than cropping keeps a mask aligned with its image.
pub async fn resize(image: InputImage, size: Size) -> Result<InputImage, ApiError> {
    if image.size() == size {
        return Ok(image);
    }
    tokio::task::spawn_blocking(move || {
        let decoded = decode(&image.data, image.format)
            .map_err(|e| ApiError::Internal(format!("could not decode a checked image: {e}")))?;
        let resized = if image.has_alpha {
            DynamicImage::ImageRgba8(image::imageops::resize(
                &decoded.to_rgba8(),
                size.width,
                size.height,
                FilterType::Lanczos3,
            ))
        } else {
            DynamicImage::ImageRgb8(image::imageops::resize(
                &decoded.to_rgb8(),
                size.width,
                size.height,
                FilterType::Lanczos3,
            ))
        };
        let mut out = Vec::new();
        resized
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|e| ApiError::Internal(format!("could not encode a resized image: {e}")))?;
        Ok(InputImage {
            data: Bytes::from(out),
            format: OutputFormat::Png,
            width: size.width,
            height: size.height,
            has_alpha: image.has_alpha,
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("image resize failed: {e}")))?
}

/// The model size closest to the input's aspect ratio, then to its pixel count: `size=auto`
/// on an edit keeps the picture's shape.
pub fn auto_size(sizes: &[Size], fallback: Size, input: Size) -> Size {
    let aspect = |s: Size| (f64::from(s.width) / f64::from(s.height)).ln();
    let area = |s: Size| f64::from(s.width) * f64::from(s.height);
    let target = aspect(input);
    sizes
        .iter()
        .copied()
        .min_by(|a, b| {
            let key = |s: Size| {
                (
                    (aspect(s) - target).abs(),
                    (area(s).ln() - area(input).ln()).abs(),
                )
            };
            let (ka, kb) = (key(*a), key(*b));
            ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, alpha: bool) -> Bytes {
        let img = if alpha {
            DynamicImage::ImageRgba8(image::RgbaImage::new(w, h))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::new(w, h))
        };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        Bytes::from(out)
    }

    #[test]
    fn sniffs_by_signature() {
        assert_eq!(sniff(&png(1, 1, false)), Some(OutputFormat::Png));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(OutputFormat::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(OutputFormat::Webp));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[tokio::test]
    async fn inspect_measures_and_refuses_broken_files() {
        let img = inspect("image", png(30, 20, true)).await.unwrap();
        assert_eq!((img.width, img.height, img.has_alpha), (30, 20, true));
        let mut truncated = png(30, 20, false).to_vec();
        truncated.truncate(truncated.len() / 2);
        let err = inspect("image[]", Bytes::from(truncated))
            .await
            .unwrap_err();
        assert_eq!(err.envelope().error.param.as_deref(), Some("image[]"));
        let err = inspect("mask", Bytes::from_static(b"hello"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a PNG, JPEG or WebP"));
    }

    #[tokio::test]
    async fn resize_stretches_to_the_size() {
        let img = inspect("image", png(30, 20, true)).await.unwrap();
        let out = resize(img, Size::new(64, 64)).await.unwrap();
        let back = inspect("image", out.data).await.unwrap();
        assert_eq!((back.width, back.height, back.has_alpha), (64, 64, true));
    }

    #[test]
    fn auto_size_keeps_the_aspect() {
        let sizes = [
            Size::new(512, 512),
            Size::new(1024, 1024),
            Size::new(1024, 576),
            Size::new(576, 1024),
        ];
        let pick = |w, h| auto_size(&sizes, Size::new(1, 1), Size::new(w, h));
        assert_eq!(pick(1920, 1080), Size::new(1024, 576));
        assert_eq!(pick(600, 600), Size::new(512, 512));
        assert_eq!(pick(900, 1000), Size::new(1024, 1024));
        assert_eq!(pick(300, 900), Size::new(576, 1024));
        assert_eq!(
            auto_size(&[], Size::new(8, 8), Size::new(3, 3)),
            Size::new(8, 8)
        );
    }
}
