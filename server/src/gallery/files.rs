//! The gallery's files: written whole or not at all, and a thumbnail made once at write time.

use std::{io::Cursor, path::Path};

use image::{ImageFormat, codecs::webp::WebPEncoder};
use tokio::io::AsyncWriteExt;

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

/// Writes under a temporary name, flushes to disk, then renames: after a crash the file is
/// either whole or not there (a stray temporary file is swept at start-up).
pub async fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = tokio::fs::File::create(&tmp).await?;
    file.write_all(data).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, path).await
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
