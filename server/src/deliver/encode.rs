//! Turning ComfyUI's output into the format a client asked for.

use std::io::Cursor;

use app::api::images::OutputFormat;
use bytes::Bytes;
use image::{ImageFormat, codecs::jpeg::JpegEncoder};

use crate::{error::ApiError, validate::Output};

/// Re-encodes an image unless it already is in the wanted format. Runs on the blocking pool:
/// decoding and encoding a large image takes long enough to stall other requests.
pub async fn transcode(data: Bytes, output: &Output) -> Result<Bytes, ApiError> {
    let (format, compression) = (output.format, output.compression);
    if sniff(&data) == Some(format) {
        return Ok(data);
    }
    tokio::task::spawn_blocking(move || encode(&data, format, compression))
        .await
        .map_err(|e| ApiError::Internal(format!("transcoding task failed: {e}")))?
}

fn sniff(data: &[u8]) -> Option<OutputFormat> {
    match image::guess_format(data).ok()? {
        ImageFormat::Png => Some(OutputFormat::Png),
        ImageFormat::Jpeg => Some(OutputFormat::Jpeg),
        ImageFormat::WebP => Some(OutputFormat::Webp),
        _ => None,
    }
}

fn encode(data: &[u8], format: OutputFormat, compression: Option<u8>) -> Result<Bytes, ApiError> {
    let img = image::load_from_memory(data)
        .map_err(|e| ApiError::Internal(format!("ComfyUI returned an unreadable image: {e}")))?;
    let mut out = Cursor::new(Vec::new());
    let result = match format {
        OutputFormat::Png => img.write_to(&mut out, ImageFormat::Png),
        // JPEG has no alpha; OpenAI's `output_compression` is its quality (100 = best).
        OutputFormat::Jpeg => {
            let quality = compression.unwrap_or(100).clamp(1, 100);
            img.to_rgb8()
                .write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
        }
        // Lossy, at `output_compression` as its quality like JPEG, as OpenAI does for both;
        // an alpha channel only when some pixel is transparent, as it costs bytes.
        OutputFormat::Webp => {
            let quality = f32::from(compression.unwrap_or(100).clamp(1, 100));
            let rgba = img.to_rgba8();
            let encoded = if rgba.pixels().any(|p| p[3] < 255) {
                webp::Encoder::from_rgba(&rgba, rgba.width(), rgba.height()).encode(quality)
            } else {
                let rgb = img.to_rgb8();
                webp::Encoder::from_rgb(&rgb, rgb.width(), rgb.height()).encode(quality)
            };
            return Ok(Bytes::copy_from_slice(&encoded));
        }
    };
    result.map_err(|e| ApiError::Internal(format!("could not encode the image: {e}")))?;
    Ok(Bytes::from(out.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(format: OutputFormat, compression: Option<u8>) -> Output {
        Output {
            response_format: app::api::images::ResponseFormat::B64Json,
            format,
            compression,
            quality: "auto".into(),
        }
    }

    fn png() -> Bytes {
        let img =
            image::RgbImage::from_fn(8, 4, |x, y| image::Rgb([x as u8 * 30, y as u8 * 60, 9]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        Bytes::from(out.into_inner())
    }

    #[tokio::test]
    async fn png_passes_through_untouched() {
        let data = png();
        let out = transcode(data.clone(), &output(OutputFormat::Png, None))
            .await
            .unwrap();
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn webp_is_lossy_at_the_asked_compression_and_keeps_alpha_only_when_used() {
        // A noisy picture, where lossless coding costs the most.
        let mut seed = 7u32;
        let noisy = image::RgbImage::from_fn(128, 128, |_, _| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let v = (seed >> 16) as u8;
            image::Rgb([v, v / 2, 255 - v])
        });
        let mut png = Cursor::new(Vec::new());
        noisy.write_to(&mut png, ImageFormat::Png).unwrap();
        let png = Bytes::from(png.into_inner());
        let low = transcode(png.clone(), &output(OutputFormat::Webp, Some(30)))
            .await
            .unwrap();
        let high = transcode(png.clone(), &output(OutputFormat::Webp, Some(95)))
            .await
            .unwrap();
        assert!(low.len() < high.len(), "{} vs {}", low.len(), high.len());
        assert!(
            high.len() < png.len(),
            "{} vs PNG {}",
            high.len(),
            png.len()
        );
        let opaque = image::load_from_memory(&low).unwrap();
        assert!(!opaque.color().has_alpha());

        let mut clear = image::RgbaImage::from_pixel(16, 16, image::Rgba([9, 9, 9, 255]));
        clear.put_pixel(3, 3, image::Rgba([0, 0, 0, 0]));
        let mut png = Cursor::new(Vec::new());
        clear.write_to(&mut png, ImageFormat::Png).unwrap();
        let out = transcode(
            Bytes::from(png.into_inner()),
            &output(OutputFormat::Webp, None),
        )
        .await
        .unwrap();
        assert!(image::load_from_memory(&out).unwrap().color().has_alpha());
    }

    #[tokio::test]
    async fn converts_to_jpeg_and_webp_keeping_size() {
        for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
            let out = transcode(png(), &output(format, Some(80))).await.unwrap();
            assert_eq!(sniff(&out), Some(format));
            let img = image::load_from_memory(&out).unwrap();
            assert_eq!((img.width(), img.height()), (8, 4));
        }
    }
}
