pub mod gallery;
pub mod home;
mod key;
mod sizes;
pub mod stream;
