//! The models a client can ask for: the loaded workflows, reloading them, and which one a
//! request gets.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

use crate::{
    config::Config,
    error::ApiError,
    templates::{ModelKind, Template, TemplateSet},
};

/// The model used when a generation names none and `DEFAULT_MODEL` is unset.
const PREFERRED_DEFAULT: &str = "z-image-turbo";

/// What a request wants a model for; it decides the default when the request names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Generate,
    /// An edit, variation or chat turn with an image; `masked` when a mask came with it.
    Edit {
        masked: bool,
    },
}

#[derive(Clone)]
pub struct Models(Arc<Inner>);

struct Inner {
    workflows_dir: PathBuf,
    extra_files: Vec<PathBuf>,
    default_model: Option<String>,
    default_edit_model: Option<String>,
    current: RwLock<Loaded>,
}

/// The last good set of workflows, and what went wrong with the newest attempt to load them.
struct Loaded {
    set: Arc<TemplateSet>,
    errors: Vec<String>,
}

impl Models {
    /// Loads the workflows `config` names. A failed load leaves no models and keeps the
    /// errors for `/health`; the bridge still starts, so `/reload` can fix it.
    pub fn load(config: &Config) -> Models {
        let inner = Inner {
            workflows_dir: config.workflows_dir.clone(),
            extra_files: [&config.workflow_txt2img, &config.workflow_img2img]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            default_model: config.default_model.clone(),
            default_edit_model: config.default_edit_model.clone(),
            current: RwLock::new(Loaded {
                set: Arc::default(),
                errors: Vec::new(),
            }),
        };
        let models = Models(Arc::new(inner));
        match models.reload() {
            Ok(set) => tracing::info!(
                models = set.len(),
                dir = %models.0.workflows_dir.display(),
                "workflows loaded"
            ),
            Err(errors) => {
                for e in errors {
                    tracing::error!("workflow error: {e}");
                }
            }
        }
        models
    }

    pub fn set(&self) -> Arc<TemplateSet> {
        self.0
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.0
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .clone()
    }

    /// Reads the workflows again. The new set replaces the old one only if every file is
    /// valid; otherwise the last good set keeps serving and the errors are kept for `/health`.
    /// Reads files: call it off the async runtime.
    pub fn reload(&self) -> Result<Arc<TemplateSet>, Vec<String>> {
        let loaded = TemplateSet::load(&self.0.workflows_dir, &self.0.extra_files)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>());
        let mut current = self.0.current.write().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Ok(set) => {
                current.set = Arc::new(set);
                current.errors.clear();
                Ok(current.set.clone())
            }
            Err(errors) => {
                current.errors = errors.clone();
                Err(errors)
            }
        }
    }

    /// The model a request gets: the one it names, else the default for its purpose. A
    /// generation's default is `DEFAULT_MODEL` (else `z-image-turbo`, else the first
    /// text-to-image model); an edit's is `DEFAULT_EDIT_MODEL`, else the first inpaint model
    /// when a mask came with it, else the first image-to-image model.
    pub fn choose(
        &self,
        requested: Option<&str>,
        purpose: Purpose,
    ) -> Result<Arc<Template>, ApiError> {
        let set = self.set();
        if let Some(id) = requested.filter(|m| !m.is_empty()) {
            return set
                .get(id)
                .cloned()
                .ok_or_else(|| ApiError::ModelNotFound(id.to_string()));
        }
        let first = |kind: ModelKind| set.iter().find(|t| t.kind == kind);
        let chosen = match purpose {
            Purpose::Generate => self.default_in(&set),
            Purpose::Edit { masked } => self
                .0
                .default_edit_model
                .as_deref()
                .and_then(|id| set.get(id))
                .or_else(|| {
                    let (preferred, other) = if masked {
                        (ModelKind::Inpaint, ModelKind::Img2Img)
                    } else {
                        (ModelKind::Img2Img, ModelKind::Inpaint)
                    };
                    first(preferred).or_else(|| first(other))
                }),
        };
        chosen.cloned().ok_or(ApiError::NoModels)
    }

    /// The model a generation that names none gets, for the web app's form.
    pub fn default_model(&self) -> Option<Arc<Template>> {
        self.choose(None, Purpose::Generate).ok()
    }

    fn default_in<'a>(&self, set: &'a TemplateSet) -> Option<&'a Arc<Template>> {
        let preferred = self.0.default_model.as_deref().unwrap_or(PREFERRED_DEFAULT);
        set.get(preferred)
            .or_else(|| set.iter().find(|t| t.kind == ModelKind::Txt2Img))
            .or_else(|| set.iter().next())
    }
}
