//! The web app's view of the bridge, provided to its server functions.

use std::{future::Future, pin::Pin, sync::Arc};

use app::{
    api::gallery::{GalleryPage, GalleryQuery, GalleryRefusal},
    server_fns::{
        BridgeOverview,
        ports::{OverviewPort, SharedOverview},
    },
};

use crate::{gallery::Gallery, health, state::AppState};

struct Overview(AppState);

type Reply<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl OverviewPort for Overview {
    fn overview(&self, api_key: String) -> Reply<'_, BridgeOverview> {
        Box::pin(async move {
            let state = &self.0;
            let report = health::report(&state.jobs, &state.models).await;
            let accepted = state.auth.accepts(&api_key);
            BridgeOverview {
                // Where ComfyUI runs is for those with the key.
                health: if accepted {
                    report
                } else {
                    report.without_internals()
                },
                auth_required: state.auth.required(),
                key_accepted: state.auth.required().then_some(accepted),
                default_model: state.models.default_model().map(|t| t.id.clone()),
            }
        })
    }

    fn demo(&self) -> bool {
        self.0.jobs.demo()
    }

    fn gallery(
        &self,
        query: GalleryQuery,
        api_key: String,
    ) -> Reply<'_, Result<GalleryPage, GalleryRefusal>> {
        Box::pin(async move {
            let gallery = self.open_gallery(&api_key)?;
            gallery.list(&query).await.map_err(|e| {
                tracing::error!(error = %e, "could not read the gallery");
                GalleryRefusal::Failed("The gallery could not be read.".to_string())
            })
        })
    }

    fn delete_from_gallery(
        &self,
        id: String,
        api_key: String,
    ) -> Reply<'_, Result<bool, GalleryRefusal>> {
        Box::pin(async move {
            let gallery = self.open_gallery(&api_key)?;
            gallery.delete(&id).await.map_err(|e| {
                tracing::error!(error = %e, "could not delete from the gallery");
                GalleryRefusal::Failed("The image could not be deleted.".to_string())
            })
        })
    }
}

impl Overview {
    /// The gallery, for a caller holding the API key when the server has one.
    fn open_gallery(&self, api_key: &str) -> Result<&Gallery, GalleryRefusal> {
        if let Some(refusal) = self.0.auth.refusal(api_key) {
            return Err(GalleryRefusal::Unauthorized(refusal.to_string()));
        }
        self.0.gallery.gallery().ok_or_else(|| {
            GalleryRefusal::Off("The gallery is off on this server (GALLERY=off).".to_string())
        })
    }
}

pub fn port(state: AppState) -> SharedOverview {
    Arc::new(Overview(state))
}
