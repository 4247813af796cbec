//! Reading the bridge's public endpoints from the browser.

use leptos::prelude::*;

use crate::api::models::ModelList;

/// The bridge's models, filled in by the browser once the page is live (effects never run on
/// the server, so server rendering never waits on it). Unset while loading.
pub(super) fn model_list() -> ArcRwSignal<Option<Result<ModelList, String>>> {
    let models = ArcRwSignal::new(None);
    Effect::new({
        let models = models.clone();
        move |_| {
            let models = models.clone();
            leptos::task::spawn_local(async move { models.set(Some(fetch_models().await)) });
        }
    });
    models
}

#[cfg(feature = "hydrate")]
async fn fetch_models() -> Result<ModelList, String> {
    let resp = gloo_net::http::Request::get("/v1/models")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    read_json(resp).await
}

#[cfg(feature = "hydrate")]
async fn read_json<T: serde::de::DeserializeOwned>(
    resp: gloo_net::http::Response,
) -> Result<T, String> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(super::results::error_text(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

// The server renders the page but never runs these: they only run after hydration.
#[cfg(not(feature = "hydrate"))]
async fn fetch_models() -> Result<ModelList, String> {
    Err(String::from("loading…"))
}
