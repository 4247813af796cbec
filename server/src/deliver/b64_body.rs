//! A `b64_json` reply written while it is sent: the JSON around the images is serialised once,
//! and each image is base64-encoded a slice at a time as the body streams out. A reply never
//! holds an image as bytes, base64 and JSON at once, which is most of a busy bridge's memory.

use app::api::images::ImagesResponse;
use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use futures::stream;

use crate::error::ApiError;

/// Raw bytes per encoded slice; a multiple of 3, so the slices join into one base64 text.
const SLICE: usize = 3 * 16 * 1024;

enum Piece {
    Text(Bytes),
    Image(Bytes),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Text(t) => t.len(),
            Piece::Image(data) => data.len().div_ceil(3) * 4,
        }
    }
}

/// `data` as standard, padded base64: how every image leaves the bridge inline. SIMD, and written
/// into memory it allocates without zeroing it first or checking the result is UTF-8.
pub(crate) fn encode(data: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(data)
}

/// [`encode`], appended to `out`.
pub(crate) fn encode_into(data: &[u8], out: &mut String) {
    base64_simd::STANDARD.encode_append(data, out);
}

/// `reply` with `images[i]` as the `b64_json` of `reply.data[i]`.
pub fn response(mut reply: ImagesResponse, images: Vec<Bytes>) -> Result<Response, ApiError> {
    let marker = format!("b64-{}", uuid::Uuid::new_v4().simple());
    for (i, item) in reply.data.iter_mut().enumerate() {
        item.b64_json = Some(format!("{marker}-{i}"));
    }
    let json = serde_json::to_string(&reply)
        .map_err(|e| ApiError::Internal(format!("could not serialise a reply: {e}")))?;
    let mut pieces = Vec::with_capacity(images.len() * 2 + 1);
    let mut rest = json.as_str();
    for (i, image) in images.into_iter().enumerate() {
        // The quotes keep `-1` from matching the start of `-10`.
        let quoted = format!("\"{marker}-{i}\"");
        let (before, after) = rest
            .split_once(&quoted)
            .ok_or_else(|| ApiError::Internal("an image has no place in the reply".into()))?;
        pieces.push(Piece::Text(Bytes::from(format!("{before}\""))));
        pieces.push(Piece::Image(image));
        pieces.push(Piece::Text(Bytes::from_static(b"\"")));
        rest = after;
    }
    pieces.push(Piece::Text(Bytes::copy_from_slice(rest.as_bytes())));
    let length: usize = pieces.iter().map(Piece::len).sum();

    let chunks = pieces
        .into_iter()
        .flat_map(|piece| -> Box<dyn Iterator<Item = Bytes> + Send> {
            match piece {
                Piece::Text(text) => Box::new(std::iter::once(text)),
                Piece::Image(data) => Box::new((0..data.len()).step_by(SLICE).map(move |at| {
                    let end = (at + SLICE).min(data.len());
                    Bytes::from(encode(&data[at..end]))
                })),
            }
        });
    let body = Body::from_stream(stream::iter(chunks.map(Ok::<_, std::convert::Infallible>)));
    let mut res = Response::new(body);
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use app::api::images::ImageData;

    use super::*;

    #[tokio::test]
    async fn the_streamed_reply_is_the_serialised_one() {
        // Sizes around the slice length and its remainders, and more than ten images so a
        // marker that is the prefix of another is exercised.
        let sizes = [
            0,
            1,
            2,
            3,
            SLICE - 1,
            SLICE,
            SLICE + 1,
            2 * SLICE + 2,
            5,
            6,
            7,
            8,
        ];
        let images: Vec<Bytes> = sizes
            .iter()
            .map(|&n| Bytes::from((0..n).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()))
            .collect();
        let reply = ImagesResponse {
            created: 1,
            data: (0..images.len())
                .map(|i| ImageData {
                    revised_prompt: Some(format!("a \"quoted\" prompt {i}")),
                    seed: Some(i as u64),
                    ..ImageData::default()
                })
                .collect(),
            background: Some("opaque".into()),
            output_format: None,
            quality: Some("auto".into()),
            size: Some(app::api::size::Size::new(64, 64)),
        };
        let mut expected = reply.clone();
        for (item, image) in expected.data.iter_mut().zip(&images) {
            item.b64_json = Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                image,
            ));
        }
        let res = response(reply, images).unwrap();
        let length: usize = res.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body.len(), length);
        assert_eq!(body, serde_json::to_string(&expected).unwrap());
    }
}
