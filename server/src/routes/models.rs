use app::api::models::{Model, ModelList};
use axum::{Json, extract::State};

use crate::{error::ApiError, extract::ApiPath, models::Models, templates::Template};

pub async fn list(State(models): State<Models>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: models.set().iter().map(|t| describe(t)).collect(),
    })
}

/// Ids arrive percent-decoded by axum; older SDKs send a raw `/` inside an id, which the
/// wildcard route keeps.
pub async fn retrieve(
    State(models): State<Models>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Model>, ApiError> {
    models
        .set()
        .get(&id)
        .map(|t| Json(describe(t)))
        .ok_or(ApiError::ModelNotFound(id))
}

fn describe(t: &Template) -> Model {
    Model {
        id: t.id.clone(),
        object: "model".into(),
        created: t.created,
        owned_by: "comfyui".into(),
        kind: Some(t.kind),
        description: t.description.clone(),
        sizes: t.sizes.clone(),
        default_size: Some(t.default_size),
        max_images: u32::try_from(t.image_slots()).ok().filter(|n| *n > 0),
    }
}
