//! Reading the bridge's public endpoints from the browser.

use leptos::prelude::*;

use crate::api::models::ModelList;

/// The bridge's models, filled in by the browser once the page is live (effects never run on
/// the server, so server rendering never waits on it) and again when the API key changes.
/// Unset while loading. Other names of a model (aliases) are left out: the forms offer each
/// model once, by its own name.
pub(super) fn model_list() -> ArcRwSignal<Option<Result<ModelList, String>>> {
    let models = ArcRwSignal::new(None);
    let key = super::connection::use_connection().api_key;
    Effect::new({
        let models = models.clone();
        move |_| {
            let (models, key) = (models.clone(), key.get());
            leptos::task::spawn_local(async move {
                let list = fetch_models(&key).await.map(|mut list| {
                    list.data.retain(|m| m.alias_of.is_none());
                    list
                });
                models.set(Some(list))
            });
        }
    });
    models
}

#[cfg(feature = "hydrate")]
async fn fetch_models(api_key: &str) -> Result<ModelList, String> {
    let mut req = gloo_net::http::Request::get("/v1/models");
    if !api_key.is_empty() {
        req = req.header("Authorization", &format!("Bearer {api_key}"));
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    // The menu's one line says what is missing, short; the panel says the rest.
    if resp.status() == 401 {
        return Err(if api_key.trim().is_empty() {
            "Enter the API key to list the models".into()
        } else {
            "The API key was not accepted".into()
        });
    }
    read_json(resp).await
}

#[cfg(feature = "hydrate")]
async fn read_json<T: serde::de::DeserializeOwned>(
    resp: gloo_net::http::Response,
) -> Result<T, String> {
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(crate::api::error::ErrorEnvelope::message_of(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

// The server renders the page but never runs these: they only run after hydration.
#[cfg(not(feature = "hydrate"))]
async fn fetch_models(_api_key: &str) -> Result<ModelList, String> {
    Err(String::from("loading…"))
}
