//! The browser entry point: hydrates the server-rendered app.
// The web app's views are deeply nested types; the default limit is too low for them.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // A task: hydration waits for the wasm file of the page shown (Edit, Chat and Gallery have
    // their own). `hydrate_from_async` starts Leptos's executor itself.
    wasm_bindgen_futures::spawn_local(app::hydration::hydrate());
}
