//! The models a client can ask for: the loaded workflows, reloading them, and which one a
//! request gets.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    comfy::{ComfyPool, NodeClasses, ObjectInfo},
    config::Config,
    error::ApiError,
    templates::{ModelKind, Template, TemplateSet, WORKFLOW_EXTENSIONS},
};

/// How long the workflows directory must be quiet before a change is applied.
const QUIET: Duration = Duration::from_millis(300);

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
    /// The node schemas of the servers that have answered, which UI-format workflows are
    /// converted with.
    schemas: RwLock<Vec<Arc<ObjectInfo>>>,
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

/// The workflows in use, and what went wrong with the newest attempt to load them.
struct Loaded {
    set: Arc<TemplateSet>,
    errors: Vec<String>,
    /// Files refused by the newest load, by model id, with why.
    broken: Vec<Broken>,
    /// Some file is read with the servers' node schemas, so new schemas mean a new load.
    uses_schemas: bool,
}

/// A workflow file that did not load, under the model id its file name gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub id: String,
    pub why: String,
    /// It waits for a ComfyUI server to answer, rather than being wrong.
    pub pending: bool,
}

impl Models {
    /// Loads the workflows `config` names. Files that do not load are refused alone, with
    /// their errors kept for `/health` and `/v1/models`; the bridge starts with the others.
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
            schemas: RwLock::new(Vec::new()),
            current: RwLock::new(Loaded {
                set: Arc::default(),
                errors: Vec::new(),
                broken: Vec::new(),
                uses_schemas: false,
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

    /// Reads the workflows again, each file on its own: a file that loads replaces its model,
    /// one that does not is refused alone (its model, if it had one, keeps its last good
    /// version while the file is still there), and a removed file's model goes. The new set
    /// replaces the old one at once. Returns the set and the refusals, which `/health` and
    /// `/v1/models` show until a reload without them. Reads files: call it off the async
    /// runtime.
    pub fn reload(&self) -> Result<Arc<TemplateSet>, Vec<String>> {
        let schemas = self.schemas();
        let known = (!schemas.is_empty()).then_some(&schemas as &dyn NodeClasses);
        let (fresh, errors) =
            TemplateSet::load_each(&self.0.workflows_dir, &self.0.extra_files, known);
        let mut current = self.0.current.write().unwrap_or_else(|p| p.into_inner());
        let mut set = fresh;
        let mut broken = Vec::new();
        for error in &errors {
            let id = error
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            match current.set.get(&id) {
                Some(last) if set.get(&id).is_none() && last.file.is_file() => {
                    set = set.with(last.clone());
                }
                _ => {}
            }
            broken.push(Broken {
                id,
                why: error.to_string(),
                pending: error.pending,
            });
        }
        // An alias of a model that is not loaded is left out; saying so beats a 404 nobody
        // can explain.
        let dangling = self
            .0
            .aliases
            .iter()
            .filter(|(_, model)| set.get(model).is_none())
            .map(|(alias, model)| {
                format!("MODEL_ALIASES: `{alias}` names `{model}`, which is not loaded")
            });
        current.errors = errors
            .iter()
            .map(ToString::to_string)
            .chain(dangling)
            .collect();
        current.uses_schemas = broken.iter().any(|b| b.pending) || set.iter().any(|t| t.converted);
        current.broken = broken;
        current.set = Arc::new(set);
        // A file waiting for a server is not wrong: the reload succeeded as far as it can.
        let (waiting, refused): (Vec<_>, Vec<_>) = errors.iter().partition(|e| e.pending);
        for e in waiting {
            tracing::info!("{e}");
        }
        if refused.is_empty() {
            Ok(current.set.clone())
        } else {
            Err(refused.iter().map(ToString::to_string).collect())
        }
    }

    /// Reloads whenever a workflow file is added, changed or removed, until `shutdown`. A
    /// burst of writes (an editor saving, a copy of many files) is one reload, once the
    /// directory has been quiet for a moment.
    pub fn watch(&self, shutdown: CancellationToken) {
        let (tx, mut changed) = mpsc::unbounded_channel();
        let watched = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = event.is_ok_and(|e| {
                !e.kind.is_access()
                    && e.paths.iter().any(|p| {
                        p.extension().is_some_and(|x| {
                            x == "toml" || WORKFLOW_EXTENSIONS.iter().any(|w| x == *w)
                        })
                    })
            });
            if relevant {
                let _ = tx.send(());
            }
        })
        .and_then(|mut watcher| {
            use notify::Watcher;
            watcher.watch(&self.0.workflows_dir, notify::RecursiveMode::NonRecursive)?;
            for file in &self.0.extra_files {
                if let Some(dir) = file.parent() {
                    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
                }
            }
            Ok(watcher)
        });
        let watcher = match watched {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!(
                    dir = %self.0.workflows_dir.display(), error = %e,
                    "cannot watch the workflows; changes need POST /reload"
                );
                return;
            }
        };
        let models = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    change = changed.recv() => if change.is_none() { return },
                    () = shutdown.cancelled() => return,
                }
                while let Ok(Some(())) = tokio::time::timeout(QUIET, changed.recv()).await {}
                let reloading = models.clone();
                match tokio::task::spawn_blocking(move || reloading.reload()).await {
                    Ok(Ok(set)) => {
                        tracing::info!(models = set.len(), "workflows changed and reloaded")
                    }
                    Ok(Err(errors)) => {
                        for e in errors {
                            tracing::error!("workflow error: {e}");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "the workflow reload failed"),
                }
            }
        });
    }

    /// Loads again whenever a server's node schemas arrive and some workflow needs them: a
    /// UI-format file waiting for the first server, or one converted with other schemas.
    pub fn follow_schemas(&self, pool: &ComfyPool, shutdown: CancellationToken) {
        let models = self.clone();
        let pool = pool.clone();
        let mut updates = pool.info_updates();
        // A server may have answered before this subscribed.
        updates.mark_changed();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { return },
                    () = shutdown.cancelled() => return,
                }
                *models.0.schemas.write().unwrap_or_else(|p| p.into_inner()) = pool.known_schemas();
                let uses = models
                    .0
                    .current
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .uses_schemas;
                if !uses {
                    continue;
                }
                let reloading = models.clone();
                match tokio::task::spawn_blocking(move || reloading.reload()).await {
                    Ok(Ok(set)) => tracing::info!(
                        models = set.len(),
                        "workflows converted with the servers' node types"
                    ),
                    Ok(Err(errors)) => {
                        for e in errors {
                            tracing::error!("workflow error: {e}");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "the workflow reload failed"),
                }
            }
        });
    }

    /// The node types of the servers that have answered.
    pub fn schemas(&self) -> Vec<Arc<ObjectInfo>> {
        self.0
            .schemas
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Workflow files that did not load, by the model id their file name gives, with why.
    pub fn broken(&self) -> Vec<Broken> {
        self.0
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .broken
            .clone()
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
            if let Some(broken) = self.broken().into_iter().find(|b| b.id == id) {
                return Err(ApiError::ModelUnavailable {
                    model: id.to_string(),
                    reasons: vec![broken.why],
                    server_side: broken.pending,
                });
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
