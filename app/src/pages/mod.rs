pub mod chat;
mod chat_text;
pub mod connection;
pub mod edit;
mod fetch;
pub mod gallery;
pub mod home;
pub mod jobs;
pub(crate) mod kept;
mod key;
#[cfg(feature = "hydrate")]
mod local_images;
mod results;
mod shortcuts;
mod sizes;
mod snippets;
pub mod stream;
pub(crate) mod viewer;
