pub mod home;
pub mod stream;
