use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use tokio_util::io::ReaderStream;

use crate::{error::ApiError, extract::ApiPath, gallery::GalleryState, storage::ImageStore};

/// Serves an image made for `response_format: "url"`, streamed from disk. The name is checked
/// against the store's own naming scheme, so no request can reach another file.
pub async fn image(
    State(store): State<ImageStore>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let gone = || ApiError::NotFound("This image does not exist or has expired.".into());
    let (path, mime) = store.path_of(&name).ok_or_else(gone)?;
    serve(&path, mime, gone).await
}

/// A gallery image, by the same rule.
pub async fn gallery_image(
    State(gallery): State<GalleryState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    gallery_file(&gallery, &name, false).await
}

pub async fn gallery_thumb(
    State(gallery): State<GalleryState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    gallery_file(&gallery, &name, true).await
}

async fn gallery_file(state: &GalleryState, name: &str, thumb: bool) -> Result<Response, ApiError> {
    let gone = || ApiError::NotFound("This image is not in the gallery.".into());
    let gallery = state.gallery().ok_or_else(gone)?;
    let (path, mime) = gallery.path_of(name, thumb).ok_or_else(gone)?;
    serve(&path, mime, gone).await
}

async fn serve(
    path: &std::path::Path,
    mime: &'static str,
    gone: impl Fn() -> ApiError,
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(path).await.map_err(|_| gone())?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut res = (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response();
    if let Some(len) = len {
        res.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    }
    Ok(res)
}
