pub mod gallery;
pub mod home;
mod key;
pub mod stream;
