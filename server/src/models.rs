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
    /// `MODEL_ALIASES`, as (alias, model) pairs.
    aliases: Vec<(String, String)>,
    /// `OPENAI_MODEL_NAMES`: other OpenAI image model names mean the default model.
    openai_names: bool,
    current: RwLock<Loaded>,
}

/// The OpenAI image model names chat clients (Open WebUI, LibreChat) send unasked, which list
/// in `/v1/models` as names of the default model.
const OPENAI_NAMES: [&str; 3] = ["gpt-image-1", "dall-e-3", "dall-e-2"];

fn is_openai_image_model(name: &str) -> bool {
    ["dall-e-", "gpt-image-", "chatgpt-image-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Another name for a model, as `/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub model: String,
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
            aliases: config
                .model_aliases
                .iter()
                .filter_map(|pair| {
                    let (alias, model) = pair.split_once('=')?;
                    let (alias, model) = (alias.trim(), model.trim());
                    (!alias.is_empty() && !model.is_empty())
                        .then(|| (alias.to_string(), model.to_string()))
                })
                .collect(),
            openai_names: config.openai_model_names,
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
                // An alias of a model that is not loaded is left out; saying so beats a 404
                // nobody can explain.
                current.errors = self
                    .0
                    .aliases
                    .iter()
                    .filter(|(_, model)| set.get(model).is_none())
                    .map(|(alias, model)| {
                        format!("MODEL_ALIASES: `{alias}` names `{model}`, which is not loaded")
                    })
                    .collect();
                current.set = Arc::new(set);
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
            if let Some(t) = set
                .get(id)
                .or_else(|| self.alias(id).and_then(|m| set.get(m)))
            {
                return Ok(t.clone());
            }
            if !(self.0.openai_names && is_openai_image_model(id)) {
                return Err(ApiError::ModelNotFound(id.to_string()));
            }
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

    fn alias(&self, name: &str) -> Option<&str> {
        self.0
            .aliases
            .iter()
            .find(|(alias, _)| alias == name)
            .map(|(_, model)| model.as_str())
    }

    /// Every other name clients may use, with the model it means: the configured aliases,
    /// then (with `OPENAI_MODEL_NAMES`) OpenAI's own names for the default model, unless a
    /// model or alias already has that name.
    pub fn aliases(&self) -> Vec<Alias> {
        let set = self.set();
        let mut out: Vec<Alias> = self
            .0
            .aliases
            .iter()
            .filter(|(alias, model)| set.get(alias).is_none() && set.get(model).is_some())
            .map(|(name, model)| Alias {
                name: name.clone(),
                model: model.clone(),
            })
            .collect();
        if self.0.openai_names
            && let Some(default) = self.default_in(&set)
        {
            for name in OPENAI_NAMES {
                if set.get(name).is_none() && !out.iter().any(|a| a.name == name) {
                    out.push(Alias {
                        name: name.to_string(),
                        model: default.id.clone(),
                    });
                }
            }
        }
        out
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
