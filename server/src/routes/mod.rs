//! The HTTP surface: OpenAI's `/v1`, the bridge's own operations, and served images.

mod files;
mod health;
mod images;
mod models;

pub use health::report as health_report;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post},
};

use crate::{error::ApiError, extract::require_key, state::AppState};

/// Bodies of JSON endpoints; uploads get their own, larger limits.
const JSON_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn v1(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/images/generations", post(images::generations))
        .route("/models", get(models::list))
        .route("/models/{*id}", get(models::retrieve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
}

pub fn ops(state: &AppState) -> Router<AppState> {
    let admin = Router::new()
        .route("/reload", post(health::reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(health::health))
        .route("/images/{name}", get(files::image))
        .merge(admin)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Unknown API route. See /v1/models, /v1/images/generations.".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
