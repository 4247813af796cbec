use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{
    error::ApiError, extract::ApiPath, gallery::GalleryState, objects::Object, storage::ImageStore,
};

/// Serves an image made for `response_format: "url"`, streamed from storage. The name is
/// checked against the store's own naming scheme, so no request can reach another file.
pub async fn image(
    State(store): State<ImageStore>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let gone = || ApiError::NotFound("This image does not exist or has expired.".into());
    let (object, mime) = store
        .get(&name)
        .await
        .map_err(ApiError::storage)?
        .ok_or_else(gone)?;
    Ok(serve(object, mime))
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
    let (key, mime) = gallery.key_of(name, thumb).ok_or_else(gone)?;
    let object = if thumb {
        gallery.thumbnail(name).await
    } else {
        gallery.objects().get(&key).await
    }
    .map_err(ApiError::storage)?
    .ok_or_else(gone)?;
    Ok(serve(object, mime))
}

fn serve(object: Object, mime: &'static str) -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from_stream(object.body),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, object.size.into());
    res
}
