//! The gallery's files: their type and size, and a thumbnail made once, when first viewed.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, codecs::webp::WebPEncoder};

/// The longest edge of a thumbnail, in pixels.
pub const THUMB_EDGE: u32 = 384;

/// The file extension for an image's bytes.
pub fn extension(data: &[u8]) -> &'static str {
    match image::guess_format(data) {
        Ok(ImageFormat::Jpeg) => "jpeg",
        Ok(ImageFormat::WebP) => "webp",
        _ => "png",
    }
}

/// An image's width and height, from its header alone.
pub fn dimensions(data: &[u8]) -> anyhow::Result<(u32, u32)> {
    Ok(ImageReader::new(Cursor::new(data))
        .with_guessed_format()?
        .into_dimensions()?)
}

/// A WebP thumbnail no larger than [`THUMB_EDGE`] on its longest edge. Blocking: decodes the
/// whole image.
pub fn thumbnail(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let img = image::load_from_memory(data)?;
    let thumb = img.thumbnail(THUMB_EDGE, THUMB_EDGE).to_rgba8();
    let mut out = Cursor::new(Vec::new());
    thumb.write_with_encoder(WebPEncoder::new_lossless(&mut out))?;
    Ok(out.into_inner())
}
