//! Server functions: how the web app reads the bridge's own state.

use leptos::{prelude::*, server_fn};
use serde::{Deserialize, Serialize};

use crate::api::{
    gallery::{GalleryPage, GalleryQuery},
    health::HealthReport,
};

/// What the page needs to know about the bridge before it can generate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BridgeOverview {
    pub health: HealthReport,
    /// True when `/v1` needs an API key.
    pub auth_required: bool,
    /// Whether the key the browser sent is one of the server's; unset when none is needed.
    pub key_accepted: Option<bool>,
    pub default_model: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ports {
    use std::{future::Future, pin::Pin, sync::Arc};

    use super::BridgeOverview;
    use crate::api::gallery::{GalleryPage, GalleryQuery, GalleryRefusal};

    type Reply<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// Implemented by the server; the app only sees this narrow view of it.
    pub trait OverviewPort: Send + Sync {
        /// `api_key` is the browser's, checked so the page can say whether it is right.
        fn overview(&self, api_key: String) -> Reply<'_, BridgeOverview>;
        /// Whether the built-in simulator stands in for ComfyUI; known without asking any server.
        fn demo(&self) -> bool;
        /// `api_key` is what the browser holds; the server checks it when it needs one.
        fn gallery(
            &self,
            query: GalleryQuery,
            api_key: String,
        ) -> Reply<'_, Result<GalleryPage, GalleryRefusal>>;
        fn delete_from_gallery(
            &self,
            id: String,
            api_key: String,
        ) -> Reply<'_, Result<bool, GalleryRefusal>>;
    }

    pub type SharedOverview = Arc<dyn OverviewPort>;
}

/// A gallery refusal answers with its own status (401 for a missing or wrong key), not 500.
#[cfg(feature = "ssr")]
fn refused(refusal: crate::api::gallery::GalleryRefusal) -> ServerFnError {
    use leptos::server_fn::http_export::StatusCode;
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(
            StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
    }
    ServerFnError::new(refusal.message())
}

#[cfg(feature = "ssr")]
fn port() -> Result<ports::SharedOverview, ServerFnError> {
    use_context::<ports::SharedOverview>()
        .ok_or_else(|| ServerFnError::new("the bridge status is not available"))
}

/// The bridge's health, and whether it needs (and accepts) the browser's API key, which
/// travels in the request body.
#[server(endpoint = "overview", input = server_fn::codec::Json)]
pub async fn load_overview(api_key: String) -> Result<BridgeOverview, ServerFnError> {
    Ok(port()?.overview(api_key).await)
}

/// Whether the demo backend is in use: for the banner every page renders, which must not wait
/// on probing the ComfyUI servers as the full overview does.
#[server(endpoint = "demo")]
pub async fn is_demo() -> Result<bool, ServerFnError> {
    Ok(port()?.demo())
}

/// A page of the gallery. The API key travels in the request body, like any other argument,
/// never in the URL.
#[server(endpoint = "gallery/list", input = server_fn::codec::Json)]
pub async fn list_gallery(
    query: GalleryQuery,
    api_key: String,
) -> Result<GalleryPage, ServerFnError> {
    port()?.gallery(query, api_key).await.map_err(refused)
}

#[server(endpoint = "gallery/delete", input = server_fn::codec::Json)]
pub async fn delete_from_gallery(id: String, api_key: String) -> Result<bool, ServerFnError> {
    port()?
        .delete_from_gallery(id, api_key)
        .await
        .map_err(refused)
}
