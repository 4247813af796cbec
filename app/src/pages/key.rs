//! The API key, kept in the browser between visits (never sent anywhere but this server).

#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
const KEY_STORAGE: &str = "comfyui-bridge.api-key";

#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
pub fn stored_key() -> String {
    storage()
        .and_then(|s| s.get_item(KEY_STORAGE).ok().flatten())
        .unwrap_or_default()
}

#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
pub fn store_key(key: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(KEY_STORAGE, key);
    }
}

// The server has no browser storage: the page renders without a key, and the browser fills it in.
// (Native builds can have `hydrate` on too, when a workspace build unifies features.)
#[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
pub fn stored_key() -> String {
    String::new()
}

#[cfg(not(all(feature = "hydrate", target_arch = "wasm32")))]
pub fn store_key(_key: &str) {}
