pub mod edit;
mod fetch;
pub mod gallery;
pub mod home;
mod key;
mod results;
mod sizes;
pub mod stream;
