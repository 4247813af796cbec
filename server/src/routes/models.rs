use app::api::models::{Model, ModelKind, ModelList};
use axum::{
    Json,
    extract::{Path, State},
};

use crate::{error::ApiError, state::AppState, templates};

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let set = state.bridge.templates();
    Json(ModelList {
        object: "list".into(),
        data: set.iter().map(|t| describe(t)).collect(),
    })
}

/// Ids arrive percent-decoded by axum; older SDKs send a raw `/` inside an id, which the
/// wildcard route keeps.
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    state
        .bridge
        .templates()
        .get(&id)
        .map(|t| Json(describe(t)))
        .ok_or(ApiError::ModelNotFound(id))
}

pub fn describe(t: &templates::Template) -> Model {
    Model {
        id: t.id.clone(),
        object: "model".into(),
        created: t.created,
        owned_by: "comfyui".into(),
        kind: Some(match t.kind {
            templates::ModelKind::Txt2Img => ModelKind::Txt2Img,
            templates::ModelKind::Img2Img => ModelKind::Img2Img,
            templates::ModelKind::Inpaint => ModelKind::Inpaint,
        }),
        description: t.description.clone(),
        sizes: t.sizes.iter().map(ToString::to_string).collect(),
        default_size: Some(t.default_size.to_string()),
        max_images: u32::try_from(t.image_slots()).ok().filter(|n| *n > 0),
    }
}
