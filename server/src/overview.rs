//! The web app's view of the bridge, provided to its server functions.

use std::{future::Future, pin::Pin, sync::Arc};

use app::{
    api::gallery::{GalleryPage, GalleryQuery},
    server_fns::{
        BridgeOverview,
        ports::{OverviewPort, SharedOverview},
    },
};

use crate::{
    error::ApiError, extract::key_matches, gallery::Gallery, routes::health_report, state::Bridge,
};

struct Overview(Arc<Bridge>);

type Reply<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl OverviewPort for Overview {
    fn overview(&self, api_key: String) -> Reply<'_, BridgeOverview> {
        Box::pin(async move {
            let keys = &self.0.api_keys;
            BridgeOverview {
                health: health_report(&self.0).await,
                auth_required: !keys.is_empty(),
                key_accepted: (!keys.is_empty()).then(|| key_matches(keys, api_key.trim())),
                default_model: self.0.default_model().map(|t| t.id.clone()),
            }
        })
    }

    fn demo(&self) -> bool {
        self.0.demo
    }

    fn gallery(
        &self,
        query: GalleryQuery,
        api_key: String,
    ) -> Reply<'_, Result<GalleryPage, String>> {
        Box::pin(async move {
            let gallery = self.open_gallery(&api_key)?;
            gallery.list(&query).await.map_err(|e| {
                tracing::error!(error = %e, "could not read the gallery");
                "The gallery could not be read.".to_string()
            })
        })
    }

    fn delete_from_gallery(&self, id: String, api_key: String) -> Reply<'_, Result<bool, String>> {
        Box::pin(async move {
            let gallery = self.open_gallery(&api_key)?;
            gallery.delete(&id).await.map_err(|e| {
                tracing::error!(error = %e, "could not delete from the gallery");
                "The image could not be deleted.".to_string()
            })
        })
    }
}

impl Overview {
    /// The gallery, for a caller holding the API key when the server has one.
    fn open_gallery(&self, api_key: &str) -> Result<&Gallery, String> {
        let bridge = &self.0;
        if !bridge.api_keys.is_empty() && !key_matches(&bridge.api_keys, api_key.trim()) {
            return Err(ApiError::Unauthorized.to_string());
        }
        bridge
            .gallery
            .as_ref()
            .ok_or_else(|| "The gallery is off on this server (GALLERY=off).".to_string())
    }
}

pub fn port(bridge: Arc<Bridge>) -> SharedOverview {
    Arc::new(Overview(bridge))
}
