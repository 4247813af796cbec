//! The browser entry point: hydrates the server-rendered app.
// The web app's views are deeply nested types; the default limit is too low for them.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // The page answers input from here on: the benchmark's time to interactive waits for this.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
