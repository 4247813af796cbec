use std::fmt;

use serde::{Deserialize, Serialize};

use super::size::{Size, SizeRule};

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
    /// Any size within these limits is taken too, besides `sizes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_rule: Option<SizeRule>,
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
    /// The request fields the model takes besides `prompt`, `size` and `n`, with their
    /// defaults and ranges; absent for a model whose workflow did not load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<ModelInputs>,
}

/// The optional request fields a model's workflow has a place for. A field that is absent
/// here is refused with a 400 when a request sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ModelInputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<TextInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<IntInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<IntInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cfg: Option<FloatInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<ChoiceInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<ChoiceInput>,
    /// How much of an input image is redrawn (img2img and inpaint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<FloatInput>,
    /// Input images (`image`, or `image[]` several times), for models that edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskInput>,
}

/// A text field; `default` is what the model uses when the request sends none.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TextInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A whole number between `min` and `max`; without `default`, the model's choice (a random
/// seed, for `seed`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IntInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<u64>,
    pub min: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FloatInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    pub min: f64,
    pub max: f64,
}

/// One of `options`, as the ComfyUI servers list them; the list is empty until a server has
/// answered.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChoiceInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImagesInput {
    /// The most input images one request may send.
    pub max: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MaskInput {
    /// Without a mask the first image's transparent pixels mark the area to repaint, so an
    /// opaque image needs one.
    pub required_without_alpha: bool,
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
