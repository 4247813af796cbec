//! What handlers share, as sub-states: each handler takes the parts it uses (axum's `FromRef`).

use leptos::config::LeptosOptions;

use axum::extract::FromRef;

use crate::{
    auth::Auth, deliver::Delivery, gallery::GalleryState, jobs::Jobs, metrics::Metrics,
    models::Models, storage::ImageStore, validate::Checks,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub models: Models,
    pub jobs: Jobs,
    pub checks: Checks,
    pub delivery: Delivery,
    pub images: ImageStore,
    pub gallery: GalleryState,
    pub auth: Auth,
    pub metrics: Metrics,
}
