//! The HTTP surface: OpenAI's `/v1`, the bridge's own operations, and served images. Handlers
//! are thin: extract, validate, deliver. No route imports another.

mod chat;
mod edits;
mod files;
mod health;
mod images;
mod jobs;
mod models;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    middleware,
    routing::{any, get, post},
};

use crate::{auth::require_key, error::ApiError, state::AppState};

/// Bodies of JSON endpoints; uploads get their own, larger limits.
const JSON_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Edit and chat bodies carry images: room for four of the largest accepted files (or about
/// three sent as base64), plus the rest of the request.
fn edit_body_limit(state: &AppState) -> usize {
    state
        .checks
        .max_image_bytes()
        .saturating_mul(4)
        .saturating_add(1024 * 1024)
}

pub fn v1(state: &AppState) -> Router<AppState> {
    let uploads = DefaultBodyLimit::max(edit_body_limit(state));
    Router::new()
        .route("/chat/completions", post(chat::completions).layer(uploads))
        .route("/images/generations", post(images::generations))
        .route("/images/edits", post(edits::edits).layer(uploads))
        .route("/images/img2img", post(edits::edits).layer(uploads))
        .route("/images/variations", post(edits::variations).layer(uploads))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
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
        .route("/admin/servers", get(health::servers))
        .route("/admin/servers/{name}/drain", post(health::drain))
        .route("/admin/servers/{name}/resume", post(health::resume))
        .route("/metrics", get(crate::metrics::handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(health::health))
        .route("/images/{name}", get(files::image))
        .route("/gallery/{name}", get(files::gallery_image))
        .route("/gallery/thumbs/{name}", get(files::gallery_thumb))
        .merge(admin)
        // The API's own prefixes never fall through to the web app's pages: a client that
        // mistypes a path gets the envelope, not HTML.
        .route("/v1/", any(not_found))
        .route("/api", any(not_found))
        .route("/api/", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::NotFound(
        "Unknown API route. See /v1/models, /v1/images/generations, /v1/images/edits, \
         /v1/chat/completions."
            .into(),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
