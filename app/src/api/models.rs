use std::fmt;

use serde::{Deserialize, Serialize};

use super::size::Size;

/// What a model's workflow does with its inputs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Txt2Img,
    Img2Img,
    Inpaint,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Txt2Img => "txt2img",
            ModelKind::Img2Img => "img2img",
            ModelKind::Inpaint => "inpaint",
        }
    }

    /// Whether the model takes an input image (image to image, inpainting).
    pub fn edits(self) -> bool {
        self != ModelKind::Txt2Img
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `GET /v1/models`. The OpenAI fields come first; the rest are the bridge's
/// extensions, which OpenAI clients ignore and the web app uses to build its forms.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ModelKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_size: Option<Size>,
    /// How many input images the model takes; absent for text-to-image models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_images: Option<u32>,
    /// Whether a ComfyUI server can run it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelStatus>,
    /// Why it cannot run, one line per server (missing node types, model files, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Set on another name for a model (`MODEL_ALIASES`, or an OpenAI model name): the model
    /// it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_of: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// At least one server can run it.
    Ready,
    /// No server answers yet, so none could be asked.
    Pending,
    /// Every server that answered lacks something it needs.
    Unavailable,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}
