//! What every handler shares.

use std::sync::{Arc, RwLock};

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::{
    comfy::ComfyPool,
    config::Config,
    fetch::Fetcher,
    gallery::Gallery,
    jobs::Limits,
    storage::ImageStore,
    templates::{ModelKind, Template, TemplateSet},
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub bridge: Arc<Bridge>,
}

pub struct Bridge {
    pub config: Config,
    pub api_keys: Vec<String>,
    pub pool: ComfyPool,
    pub limits: Limits,
    pub images: ImageStore,
    pub fetcher: Fetcher,
    /// Where images made are kept; `None` with `GALLERY=off`.
    pub gallery: Option<Gallery>,
    /// True when the pool points at the built-in simulator.
    pub demo: bool,
    models: RwLock<Models>,
}

/// The header a client sends to have its images kept with `GALLERY=ui`.
pub const KEEP_HEADER: &str = "x-bridge-gallery";

/// The last good set of workflows, and what went wrong with the newest attempt to load them.
struct Models {
    set: Arc<TemplateSet>,
    errors: Vec<String>,
}

impl Bridge {
    pub fn new(
        config: Config,
        pool: ComfyPool,
        images: ImageStore,
        gallery: Option<Gallery>,
        demo: bool,
        loaded: Result<TemplateSet, Vec<String>>,
    ) -> Self {
        let api_keys = config
            .api_key
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        let limits = Limits::new(
            config.max_concurrent_jobs,
            config.max_queued_jobs,
            config.per_request_concurrency,
        );
        let models = match loaded {
            Ok(set) => Models {
                set: Arc::new(set),
                errors: Vec::new(),
            },
            Err(errors) => Models {
                set: Arc::new(TemplateSet::default()),
                errors,
            },
        };
        Bridge {
            fetcher: Fetcher::new(&config.fetch_image_hosts),
            config,
            api_keys,
            pool,
            limits,
            images,
            gallery,
            demo,
            models: RwLock::new(models),
        }
    }

    pub fn templates(&self) -> Arc<TemplateSet> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .clone()
    }

    pub fn template_errors(&self) -> Vec<String> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .clone()
    }

    /// Reads the workflows again. The new set replaces the old one only if every file is
    /// valid; otherwise the last good set keeps serving and the errors are kept for `/health`.
    pub fn reload(&self) -> Result<Arc<TemplateSet>, Vec<String>> {
        let loaded = load_templates(&self.config);
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        match loaded {
            Ok(set) => {
                models.set = Arc::new(set);
                models.errors.clear();
                Ok(models.set.clone())
            }
            Err(errors) => {
                models.errors = errors.clone();
                Err(errors)
            }
        }
    }

    /// The model a request names, or the default one.
    pub fn model(&self, requested: Option<&str>) -> Option<Arc<Template>> {
        let set = self.templates();
        match requested.filter(|m| !m.is_empty()) {
            Some(id) => set.get(id).cloned(),
            None => self.default_model_in(&set),
        }
    }

    /// The model an edit names, or the default edit model: the configured one, else the first
    /// inpaint model when a mask comes with the edit, else the first image-to-image model.
    /// Whether a request's images go to the gallery: all of them, or with `GALLERY=ui` those
    /// of requests that ask (the web app does, with `X-Bridge-Gallery: keep`).
    pub fn keeps(&self, headers: &axum::http::HeaderMap) -> bool {
        self.gallery.is_some()
            && (self.config.gallery == crate::config::GalleryMode::All
                || headers
                    .get(KEEP_HEADER)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"keep")))
    }

    pub fn edit_model(&self, requested: Option<&str>, masked: bool) -> Option<Arc<Template>> {
        let set = self.templates();
        if let Some(id) = requested.filter(|m| !m.is_empty()) {
            return set.get(id).cloned();
        }
        if let Some(t) = self
            .config
            .default_edit_model
            .as_deref()
            .and_then(|id| set.get(id))
        {
            return Some(t.clone());
        }
        let first = |kind: ModelKind| set.iter().find(|t| t.kind == kind);
        let found = if masked {
            first(ModelKind::Inpaint).or_else(|| first(ModelKind::Img2Img))
        } else {
            first(ModelKind::Img2Img).or_else(|| first(ModelKind::Inpaint))
        };
        found.cloned()
    }

    pub fn default_model(&self) -> Option<Arc<Template>> {
        self.default_model_in(&self.templates())
    }

    fn default_model_in(&self, set: &TemplateSet) -> Option<Arc<Template>> {
        let preferred = self
            .config
            .default_model
            .as_deref()
            .unwrap_or("z-image-turbo");
        set.get(preferred)
            .or_else(|| set.iter().find(|t| t.kind == ModelKind::Txt2Img))
            .or_else(|| set.iter().next())
            .cloned()
    }
}

pub fn load_templates(config: &Config) -> Result<TemplateSet, Vec<String>> {
    let extra: Vec<_> = [&config.workflow_txt2img, &config.workflow_img2img]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    TemplateSet::load(&config.workflows_dir, &extra)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}
