pub mod gallery;
pub mod home;
pub mod stream;
