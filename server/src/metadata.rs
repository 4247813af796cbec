//! What a returned PNG says about how it was made. ComfyUI writes its whole graph into every
//! image (`prompt` and `workflow` chunks), server file names included; A1111-style tools read a
//! `parameters` chunk instead. `IMAGE_METADATA` picks what images leave the bridge with, and
//! this is the one place it is applied, before an image reaches a client or the gallery.

use app::api::parameters::{PARAMETERS_KEY, Parameters};
use bytes::{Bytes, BytesMut};

use crate::config::ImageMetadata;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
/// The text chunks ComfyUI writes; they reveal the server's model files.
const COMFYUI_KEYS: [&[u8]; 2] = [b"prompt", b"workflow"];

/// `png` with its text chunks as `mode` wants them: ComfyUI's kept or dropped, and the
/// `parameters` chunk written right after the header, where readers look first. Anything that
/// is not a well-formed PNG comes back unchanged. Copies chunks, never decodes pixels.
pub fn stamp(png: Bytes, params: &Parameters, mode: ImageMetadata) -> Bytes {
    let Some((head, tail_at)) = restamped_head(&png, params, mode) else {
        return png;
    };
    // The head is rewritten and the rest (the image data, most of the file) kept as it is.
    // ComfyUI's chunks sit in the head and are larger than ours, so the new head usually fits
    // where the old one was: written there, the image is never copied, nor a second buffer of
    // its size allocated. A 1024x1024 image is 3 MB.
    let png = match png.try_into_mut() {
        Ok(mut buf) if head.len() <= tail_at => {
            let start = tail_at - head.len();
            buf[start..tail_at].copy_from_slice(&head);
            bytes::Buf::advance(&mut buf, start);
            return buf.freeze();
        }
        Ok(buf) => buf.freeze(),
        Err(shared) => shared,
    };
    let mut out = BytesMut::with_capacity(head.len() + png.len() - tail_at);
    out.extend_from_slice(&head);
    out.extend_from_slice(&png[tail_at..]);
    out.freeze()
}

/// The stamped file up to where it goes on unchanged, and where that is in `png`: the first
/// chunk after which nothing is dropped or added.
fn restamped_head(
    png: &[u8],
    params: &Parameters,
    mode: ImageMetadata,
) -> Option<(Vec<u8>, usize)> {
    let chunks = chunks(png)?;
    let ours =
        (mode != ImageMetadata::None).then(|| text_chunk(PARAMETERS_KEY, &params.to_a1111()));
    let keep: Vec<bool> = chunks
        .iter()
        .map(|chunk| match text_keyword(chunk) {
            Some(key) if key == PARAMETERS_KEY.as_bytes() => false,
            Some(key) if COMFYUI_KEYS.contains(&key) => mode == ImageMetadata::Comfyui,
            _ => true,
        })
        .collect();
    // The header is first (`chunks` checks) and ours goes right after it, so the unchanged
    // rest starts after the last chunk dropped, or after the header.
    let unchanged_from = keep.iter().rposition(|k| !k).map_or(1, |i| i + 1);
    let mut head = Vec::with_capacity(SIGNATURE.len() + ours.as_ref().map_or(0, Vec::len) + 64);
    head.extend_from_slice(SIGNATURE);
    for (i, chunk) in chunks[..unchanged_from].iter().enumerate() {
        if keep[i] {
            head.extend_from_slice(chunk);
        }
        if i == 0
            && let Some(ours) = &ours
        {
            head.extend_from_slice(ours);
        }
    }
    let tail_at = SIGNATURE.len()
        + chunks[..unchanged_from]
            .iter()
            .map(|c| c.len())
            .sum::<usize>();
    Some((head, tail_at))
}

/// Every chunk, whole (length, type, data, CRC); `None` unless the file is a PNG whose chunks
/// all fit and that ends with IEND.
fn chunks(png: &[u8]) -> Option<Vec<&[u8]>> {
    let mut rest = png.strip_prefix(SIGNATURE)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let whole = rest.get(..len.checked_add(12)?)?;
        out.push(whole);
        rest = &rest[whole.len()..];
        if &whole[4..8] == b"IEND" {
            return (out.first().is_some_and(|c| &c[4..8] == b"IHDR")).then_some(out);
        }
    }
    None
}

/// The keyword of a `tEXt`, `zTXt` or `iTXt` chunk.
fn text_keyword(chunk: &[u8]) -> Option<&[u8]> {
    if !matches!(&chunk[4..8], b"tEXt" | b"zTXt" | b"iTXt") {
        return None;
    }
    let data = &chunk[8..chunk.len() - 4];
    data.iter().position(|b| *b == 0).map(|zero| &data[..zero])
}

/// A `tEXt` chunk when the text is Latin-1, else an uncompressed `iTXt` (UTF-8).
fn text_chunk(keyword: &str, text: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(keyword.len() + text.len() + 5);
    data.extend_from_slice(keyword.as_bytes());
    data.push(0);
    let kind: &[u8; 4] = if text.chars().all(|c| u32::from(c) < 256) {
        data.extend(text.chars().map(|c| c as u8));
        b"tEXt"
    } else {
        // No compression, no language tag, no translated keyword.
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(text.as_bytes());
        b"iTXt"
    };
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(&data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(&data);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    chunk
}

#[cfg(test)]
mod tests {
    use app::api::parameters::{png_text, read_png};

    use super::*;

    fn comfy_png() -> Bytes {
        let rgb = vec![200u8; 4 * 4 * 3];
        let texts = [
            (
                "prompt".to_string(),
                r#"{"3": {"class_type": "KSampler"}}"#.to_string(),
            ),
            ("workflow".to_string(), r#"{"nodes": []}"#.to_string()),
        ];
        let png = sim::encode_png(&rgb, 4, 4, 3, &texts).unwrap();
        Bytes::from(png)
    }

    fn params() -> Parameters {
        Parameters {
            prompt: "a fox · 狐".into(),
            steps: Some(9),
            seed: Some(7),
            ..Parameters::default()
        }
    }

    #[test]
    fn parameters_replace_the_graph_by_default() {
        let png = comfy_png();
        assert!(png_text(&png).iter().any(|(k, _)| k == "prompt"));
        let out = stamp(png.clone(), &params(), ImageMetadata::Parameters);
        let keys: Vec<String> = png_text(&out).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["parameters"]);
        assert_eq!(read_png(&out), Some(params()));
        // Still a valid image with the same pixels.
        let (a, b) = (
            image::load_from_memory(&png).unwrap(),
            image::load_from_memory(&out).unwrap(),
        );
        assert_eq!(a.to_rgb8(), b.to_rgb8());
    }

    #[test]
    fn comfyui_keeps_both_and_none_keeps_neither() {
        let both = stamp(comfy_png(), &params(), ImageMetadata::Comfyui);
        let keys: Vec<String> = png_text(&both).into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"prompt".to_string()) && keys.contains(&"parameters".to_string()));
        // Stamping twice leaves one parameters chunk.
        let again = stamp(both, &params(), ImageMetadata::Comfyui);
        let count = png_text(&again)
            .iter()
            .filter(|(k, _)| k == "parameters")
            .count();
        assert_eq!(count, 1);
        let none = stamp(comfy_png(), &params(), ImageMetadata::None);
        assert!(png_text(&none).is_empty());
        image::load_from_memory(&none).unwrap();
    }

    /// Every chunk looked at and copied: what `stamp` must give, however it gets there.
    fn stamped_whole(png: &[u8], params: &Parameters, mode: ImageMetadata) -> Vec<u8> {
        let ours = text_chunk(PARAMETERS_KEY, &params.to_a1111());
        let mut out = SIGNATURE.to_vec();
        for chunk in chunks(png).unwrap() {
            let keep = match text_keyword(chunk) {
                Some(key) if key == PARAMETERS_KEY.as_bytes() => false,
                Some(key) if COMFYUI_KEYS.contains(&key) => mode == ImageMetadata::Comfyui,
                _ => true,
            };
            if keep {
                out.extend_from_slice(chunk);
            }
            if &chunk[4..8] == b"IHDR" && mode != ImageMetadata::None {
                out.extend_from_slice(&ours);
            }
        }
        out
    }

    #[test]
    fn the_image_data_is_kept_where_it_is_when_the_new_head_fits() {
        // As ComfyUI writes it: a graph far larger than the parameters that replace it.
        let graph = format!(r#"{{"nodes": [{}]}}"#, r#"{"id": 1}, "#.repeat(100));
        let texts = [
            ("prompt".to_string(), graph.clone()),
            ("workflow".to_string(), graph),
        ];
        let rgb: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 31 % 251) as u8).collect();
        let fresh = || Bytes::from(sim::encode_png(&rgb, 64, 64, 3, &texts).unwrap());
        for mode in [
            ImageMetadata::Parameters,
            ImageMetadata::Comfyui,
            ImageMetadata::None,
        ] {
            let expected = stamped_whole(&fresh(), &params(), mode);

            let png = fresh();
            let at = png.as_ptr() as usize..png.as_ptr() as usize + png.len();
            let out = stamp(png, &params(), mode);
            assert_eq!(out, expected, "{mode:?}");
            // Where ours is no larger than what it replaces, the result is the same buffer.
            let in_place = at.contains(&(out.as_ptr() as usize));
            assert_eq!(in_place, mode != ImageMetadata::Comfyui, "{mode:?}");

            // A buffer something else still holds is never written to.
            let png = fresh();
            let held = png.clone();
            assert_eq!(stamp(png, &params(), mode), expected, "{mode:?}");
            assert_eq!(held, fresh());
        }
    }

    #[test]
    fn anything_else_passes_through() {
        for other in [&b"GIF89a"[..], b"\x89PNG\r\n\x1a\n\0\0\0\x05", b""] {
            let data = Bytes::copy_from_slice(other);
            assert_eq!(
                stamp(data.clone(), &params(), ImageMetadata::Parameters),
                data
            );
        }
    }
}
