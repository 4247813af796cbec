//! The ComfyUI API Bridge web app (server-rendered, hydrated in the browser) and the wire types
//! that browser and server share.
// The web app's views are deeply nested types; the default limit is too low for them.
#![recursion_limit = "256"]

pub mod api;
mod app;
#[cfg(feature = "hydrate")]
pub mod hydration;
mod pages;
pub mod server_fns;

pub use app::{App, shell};
