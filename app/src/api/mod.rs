//! OpenAI wire types and the bridge's own status types, shared by the browser and the server.

pub mod chat;
pub mod error;
pub mod gallery;
pub mod health;
pub mod images;
pub mod models;
pub mod parameters;
pub mod size;
pub mod stream;
