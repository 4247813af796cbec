//! Input images. Recognised by their first bytes, never by file name or content type (clients
//! label JPEGs `*.png` and send untyped parts as `application/octet-stream`); measured from
//! their header and refused above the pixel budget before a single pixel is decoded; then
//! decoded once, a few at a time, to prove they are whole. A 38-byte WebP can declare
//! 16000x8000: decoding it would take half a gigabyte, and ComfyUI several times more.

use std::{io::Cursor, sync::Arc};

use app::api::{images::OutputFormat, size::Size};
use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader, Limits, imageops::FilterType};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorCode};

/// Decodes input images within the pixel budgets, at most one per core at a time, so that the
/// memory decoding takes is bounded by design: cores × `MAX_INPUT_PIXELS` × 8 bytes at most.
#[derive(Clone)]
pub struct Decoder {
    permits: Arc<Semaphore>,
    max_pixels: u64,
    max_request_pixels: u64,
}

/// A file whose header was read: what it is and the size it declares.
#[derive(Debug)]
pub struct Measured {
    pub param: String,
    pub data: Bytes,
    pub format: OutputFormat,
    pub size: Size,
}

/// A checked input image, kept as the bytes the client sent.
#[derive(Debug, Clone)]
pub struct InputImage {
    pub data: Bytes,
    pub format: OutputFormat,
    pub size: Size,
    pub has_alpha: bool,
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

fn unreadable(param: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad(
        ErrorCode::InvalidImage,
        Some(param),
        format!("Invalid file '{param}': the image could not be read ({e})."),
    )
}

impl Decoder {
    pub fn new(max_pixels: u64, max_request_pixels: u64) -> Decoder {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Decoder {
            permits: Arc::new(Semaphore::new(cores)),
            max_pixels: max_pixels.max(1),
            max_request_pixels: max_request_pixels.max(1),
        }
    }

    fn reader<'a>(&self, data: &'a [u8], format: OutputFormat) -> ImageReader<Cursor<&'a [u8]>> {
        let mut reader = ImageReader::with_format(Cursor::new(data), image_format(format));
        let mut limits = Limits::default();
        limits.max_image_width = Some(Size::MAX_SIDE);
        limits.max_image_height = Some(Size::MAX_SIDE);
        // A decoder's own buffers beyond the pixels (16-bit RGBA at worst) stay small.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(16 << 20));
        reader.limits(limits);
        reader
    }

    /// Reads a file's header: its format by signature and the size it declares, refused when
    /// it is over the per-image budget. Nothing is decoded.
    pub fn measure(&self, param: &str, data: Bytes) -> Result<Measured, ApiError> {
        let Some(format) = sniff(&data) else {
            return Err(ApiError::bad(
                ErrorCode::InvalidImageFormat,
                Some(param),
                format!(
                    "Invalid file '{param}': not a PNG, JPEG or WebP image. Send the image file \
                     itself."
                ),
            ));
        };
        // Only the header is read, so no limit applies here: the budget below is the limit,
        // and its refusal names the declared size.
        let mut header = ImageReader::with_format(Cursor::new(&data[..]), image_format(format));
        header.no_limits();
        let (width, height) = header.into_dimensions().map_err(|e| unreadable(param, e))?;
        let size = Size::new(width, height);
        if size.pixels() > self.max_pixels || width > Size::MAX_SIDE || height > Size::MAX_SIDE {
            return Err(ApiError::bad(
                ErrorCode::ImageTooLarge,
                Some(param),
                format!(
                    "Invalid file '{param}': the image is {size} ({} pixels); the limit is {} \
                     pixels per image, at most {} on a side (MAX_INPUT_PIXELS).",
                    size.pixels(),
                    self.max_pixels,
                    Size::MAX_SIDE
                ),
            ));
        }
        Ok(Measured {
            param: param.to_string(),
            data,
            format,
            size,
        })
    }

    /// Refuses a request whose images declare more pixels together than the request budget.
    pub fn budget<'a>(
        &self,
        images: impl IntoIterator<Item = &'a Measured>,
    ) -> Result<(), ApiError> {
        let images: Vec<&Measured> = images.into_iter().collect();
        let total: u64 = images.iter().map(|m| m.size.pixels()).sum();
        if total <= self.max_request_pixels {
            return Ok(());
        }
        let param = images.last().map_or("image", |m| m.param.as_str());
        Err(ApiError::bad(
            ErrorCode::ImageTooLarge,
            Some(param),
            format!(
                "The request's images are {total} pixels together; the limit is {} pixels per \
                 request (MAX_REQUEST_PIXELS).",
                self.max_request_pixels
            ),
        ))
    }

    /// Decodes a measured image completely, proving it whole.
    pub async fn decode(&self, image: Measured) -> Result<InputImage, ApiError> {
        self.with_pixels(image.data.clone(), image.format, move |decoded| {
            let decoded = decoded.map_err(|e| unreadable(&image.param, e))?;
            Ok(InputImage {
                format: image.format,
                size: Size::new(decoded.width(), decoded.height()),
                has_alpha: decoded.color().has_alpha(),
                data: image.data,
            })
        })
        .await
    }

    /// Stretches an image to `size` as a PNG, for workflows that take the picture at whatever
    /// size it comes. Stretching rather than cropping keeps a mask aligned with its image.
    pub async fn resize(&self, image: InputImage, size: Size) -> Result<InputImage, ApiError> {
        if image.size == size {
            return Ok(image);
        }
        let has_alpha = image.has_alpha;
        self.with_pixels(image.data, image.format, move |decoded| {
            let decoded = decoded.map_err(|e| {
                ApiError::Internal(format!("could not decode a checked image: {e}"))
            })?;
            let (w, h, filter) = (size.width, size.height, FilterType::Lanczos3);
            let resized = if has_alpha {
                DynamicImage::ImageRgba8(image::imageops::resize(&decoded.to_rgba8(), w, h, filter))
            } else {
                DynamicImage::ImageRgb8(image::imageops::resize(&decoded.to_rgb8(), w, h, filter))
            };
            let mut out = Vec::new();
            resized
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .map_err(|e| {
                    ApiError::Internal(format!("could not encode a resized image: {e}"))
                })?;
            Ok(InputImage {
                data: Bytes::from(out),
                format: OutputFormat::Png,
                size,
                has_alpha,
            })
        })
        .await
    }

    /// Decodes `data` on the blocking pool, under one of the decoder's permits, and hands the
    /// pixels to `then` there.
    async fn with_pixels<T: Send + 'static>(
        &self,
        data: Bytes,
        format: OutputFormat,
        then: impl FnOnce(Result<DynamicImage, image::ImageError>) -> Result<T, ApiError>
        + Send
        + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the image decoder is closed".into()))?;
        let decoder = self.clone();
        tokio::task::spawn_blocking(move || then(decoder.reader(&data, format).decode()))
            .await
            .map_err(|e| ApiError::Internal(format!("image decoding failed: {e}")))?
    }
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

    fn decoder() -> Decoder {
        Decoder::new(10_000, 20_000)
    }

    async fn inspect(d: &Decoder, param: &str, data: Bytes) -> Result<InputImage, ApiError> {
        d.decode(d.measure(param, data)?).await
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
        let d = decoder();
        let img = inspect(&d, "image", png(30, 20, true)).await.unwrap();
        assert_eq!((img.size, img.has_alpha), (Size::new(30, 20), true));
        let mut truncated = png(30, 20, false).to_vec();
        truncated.truncate(truncated.len() / 2);
        let err = inspect(&d, "image[]", Bytes::from(truncated))
            .await
            .unwrap_err();
        assert_eq!(err.envelope().error.param.as_deref(), Some("image[]"));
        let err = inspect(&d, "mask", Bytes::from_static(b"hello"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a PNG, JPEG or WebP"));
    }

    #[test]
    fn the_pixel_budget_is_checked_from_the_header() {
        let d = decoder();
        let err = d.measure("image", png(200, 60, false)).unwrap_err();
        let body = err.envelope().error;
        assert_eq!(body.code.as_deref(), Some("image_too_large"));
        assert_eq!(body.param.as_deref(), Some("image"));
        assert!(body.message.contains("200x60"), "{}", body.message);
        assert!(body.message.contains("10000"), "{}", body.message);

        let a = d.measure("image[]", png(100, 100, false)).unwrap();
        let b = d.measure("mask", png(100, 100, false)).unwrap();
        assert!(d.budget([&a]).is_ok());
        let c = d.measure("image[]", png(100, 1, false)).unwrap();
        let err = d.budget([&a, &b, &c]).unwrap_err();
        assert_eq!(
            err.envelope().error.code.as_deref(),
            Some("image_too_large")
        );
    }

    #[tokio::test]
    async fn resize_stretches_to_the_size() {
        let d = decoder();
        let img = inspect(&d, "image", png(30, 20, true)).await.unwrap();
        let out = d.resize(img, Size::new(64, 64)).await.unwrap();
        let back = inspect(&d, "image", out.data).await.unwrap();
        assert_eq!((back.size, back.has_alpha), (Size::new(64, 64), true));
    }
}
