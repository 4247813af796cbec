//! The bytes behind an image a JSON body names: base64, a `data:` URL, the URL of an image
//! this bridge served, or one on a host the operator allowed (`FETCH_IMAGE_HOSTS`). Any other
//! URL is refused and never fetched.

use app::api::images::{ImageInput, ImageRef};
use axum::http::HeaderMap;
use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::Bytes;

use super::{Checks, fetch::Fetcher};
use crate::{error::ApiError, storage::ImageStore};

/// Where one request's image references may lead.
pub struct Sources {
    store: ImageStore,
    /// This server's base URL as the client addressed it, to recognise its own image URLs.
    base: String,
    fetcher: Fetcher,
    limit: usize,
}

impl Sources {
    pub fn new(store: ImageStore, headers: &HeaderMap, checks: &Checks) -> Sources {
        Sources {
            base: store.base(headers),
            store,
            fetcher: checks.0.fetcher.clone(),
            limit: checks.max_image_bytes(),
        }
    }

    pub async fn resolve(&self, param: &str, input: ImageInput) -> Result<Bytes, ApiError> {
        let text = match input {
            ImageInput::Data(s) => s,
            ImageInput::Ref(ImageRef {
                image_url: Some(url),
                ..
            }) => url,
            ImageInput::Ref(ImageRef {
                file_id: Some(_), ..
            }) => {
                return Err(ApiError::invalid(
                    param,
                    "'file_id' is not supported: this server has no Files API. Send the image \
                     as a data: URL or base64.",
                ));
            }
            ImageInput::Ref(_) => {
                return Err(ApiError::invalid(
                    param,
                    format!("'{param}' needs an 'image_url' (a data: URL)."),
                ));
            }
        };
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            return self.url(param, text).await;
        }
        let payload = match text.strip_prefix("data:") {
            Some(rest) => {
                let (meta, data) = rest.split_once(',').ok_or_else(|| {
                    ApiError::invalid(param, format!("'{param}' is not a valid data: URL."))
                })?;
                if !meta.ends_with(";base64") {
                    return Err(ApiError::invalid(
                        param,
                        format!("'{param}' must be a base64 data: URL (data:image/png;base64,…)."),
                    ));
                }
                data
            }
            None => text,
        };
        // Base64 grows data by 4/3; checking the text first keeps a huge string from being
        // decoded.
        if payload.len() / 4 * 3 > self.limit {
            return Err(ApiError::file_too_large(param, self.limit));
        }
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let cleaned: Vec<u8> = payload
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let data = engine.decode(cleaned).map_err(|_| {
            ApiError::invalid(
                param,
                format!("'{param}' is neither base64 image data nor a data: URL."),
            )
        })?;
        if data.len() > self.limit {
            return Err(ApiError::file_too_large(param, self.limit));
        }
        Ok(Bytes::from(data))
    }

    /// An image this bridge served by URL (`/images/<name>` on its own host) is read from its
    /// store, one on a host the operator allowed is downloaded, and any other URL is refused.
    async fn url(&self, param: &str, url: &str) -> Result<Bytes, ApiError> {
        let Some(name) = self.store.own(&self.base, url) else {
            if self.fetcher.allows(url) {
                return self.fetcher.image(param, url, self.limit).await;
            }
            return Err(ApiError::invalid(
                param,
                format!(
                    "'{param}' is a URL of another server, and this server fetches none (see \
                     FETCH_IMAGE_HOSTS). Send the image as a data: URL or base64, or use a URL \
                     of an image this server made."
                ),
            ));
        };
        self.store
            .read(name)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| {
                ApiError::invalid(
                    param,
                    format!("'{param}' names an image of this server that has expired."),
                )
            })
    }
}
