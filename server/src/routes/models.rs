use app::api::models::{Model, ModelList, ModelStatus};
use axum::{Json, extract::State};
use futures::future::join_all;

use crate::{
    comfy::NodeClasses,
    error::ApiError,
    extract::ApiPath,
    jobs::Jobs,
    models::{Broken, Models},
    routing::{self, Availability},
    templates::{self, Template},
};

pub async fn list(State(models): State<Models>, State(jobs): State<Jobs>) -> Json<ModelList> {
    let set = models.set();
    let schemas = models.schemas();
    let mut data = join_all(set.iter().map(|t| describe(t, &jobs, &schemas))).await;
    // A refused file: beside its model's last good version, or listed alone.
    for broken in models.broken() {
        match data.iter_mut().find(|m| m.id == broken.id) {
            Some(model) => model.problems.push(broken.why),
            None => data.push(refused(broken)),
        }
    }
    // Other names follow the models, each described as the model it means.
    for alias in models.aliases() {
        if let Some(model) = data.iter().find(|m| m.id == alias.model) {
            data.push(Model {
                id: alias.name,
                alias_of: Some(alias.model),
                ..model.clone()
            });
        }
    }
    Json(ModelList {
        object: "list".into(),
        data,
    })
}

/// Ids arrive percent-decoded by axum; older SDKs send a raw `/` inside an id, which the
/// wildcard route keeps.
pub async fn retrieve(
    State(models): State<Models>,
    State(jobs): State<Jobs>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Model>, ApiError> {
    let set = models.set();
    let schemas = models.schemas();
    if let Some(template) = set.get(&id) {
        return Ok(Json(describe(template, &jobs, &schemas).await));
    }
    if let Some(broken) = models.broken().into_iter().find(|b| b.id == id) {
        return Ok(Json(refused(broken)));
    }
    let alias = models
        .aliases()
        .into_iter()
        .find(|a| a.name == id)
        .ok_or(ApiError::ModelNotFound(id))?;
    let template = set
        .get(&alias.model)
        .ok_or_else(|| ApiError::ModelNotFound(alias.name.clone()))?;
    Ok(Json(Model {
        id: alias.name,
        alias_of: Some(alias.model),
        ..describe(template, &jobs, &schemas).await
    }))
}

/// A model whose file did not load and that has no earlier version to serve.
fn refused(broken: Broken) -> Model {
    Model {
        created: templates::created_time(&broken.id),
        id: broken.id,
        object: "model".into(),
        owned_by: "comfyui".into(),
        kind: None,
        description: None,
        sizes: Vec::new(),
        size_rule: None,
        default_size: None,
        max_images: None,
        status: Some(if broken.pending {
            ModelStatus::Pending
        } else {
            ModelStatus::Unavailable
        }),
        problems: vec![broken.why],
        alias_of: None,
        inputs: None,
    }
}

async fn describe(t: &Template, jobs: &Jobs, schemas: &(dyn NodeClasses + Sync)) -> Model {
    let availability = routing::availability(jobs.pool(), t).await;
    Model {
        id: t.id.clone(),
        object: "model".into(),
        created: t.created,
        owned_by: "comfyui".into(),
        kind: Some(t.kind),
        description: t.description.clone(),
        sizes: t.sizes.clone(),
        size_rule: t.size_rule,
        default_size: Some(t.default_size),
        max_images: u32::try_from(t.image_slots()).ok().filter(|n| *n > 0),
        status: Some(match availability {
            Availability::Ready(_) => ModelStatus::Ready,
            Availability::Pending => ModelStatus::Pending,
            Availability::Unavailable(_) => ModelStatus::Unavailable,
        }),
        problems: availability.reasons(),
        alias_of: None,
        inputs: Some(t.inputs(schemas)),
    }
}
