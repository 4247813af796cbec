//! The gallery's files: their type, and a thumbnail made once at write time.

use std::io::Cursor;

use image::{ImageFormat, codecs::webp::WebPEncoder};

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

/// A WebP thumbnail no larger than [`THUMB_EDGE`] on its longest edge, and the image's own
/// width and height. Blocking: decodes the whole image.
pub fn thumbnail(data: &[u8]) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let img = image::load_from_memory(data)?;
    let thumb = img.thumbnail(THUMB_EDGE, THUMB_EDGE).to_rgba8();
    let mut out = Cursor::new(Vec::new());
    thumb.write_with_encoder(WebPEncoder::new_lossless(&mut out))?;
    Ok((out.into_inner(), img.width(), img.height()))
}
