//! The ComfyUI API Bridge web app (server-rendered, hydrated in the browser) and the wire types
//! that browser and server share.

pub mod api;
mod app;
mod pages;
pub mod server_fns;

pub use app::{App, shell};
