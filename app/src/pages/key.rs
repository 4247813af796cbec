//! The API key, kept in the browser between visits (never sent anywhere but this server).

#[cfg(feature = "hydrate")]
const KEY_STORAGE: &str = "comfyui-bridge.api-key";

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

#[cfg(feature = "hydrate")]
pub fn stored_key() -> String {
    storage()
        .and_then(|s| s.get_item(KEY_STORAGE).ok().flatten())
        .unwrap_or_default()
}

#[cfg(feature = "hydrate")]
pub fn store_key(key: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(KEY_STORAGE, key);
    }
}

// The server has no browser storage: the page renders without a key, and the browser fills it in.
#[cfg(not(feature = "hydrate"))]
pub fn stored_key() -> String {
    String::new()
}

#[cfg(not(feature = "hydrate"))]
pub fn store_key(_key: &str) {}
