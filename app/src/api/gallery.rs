//! The gallery: every image the bridge made, kept on the server, as the web app reads it.

use serde::{Deserialize, Serialize};

/// One stored image and how it was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GalleryItem {
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub model: String,
    pub width: u32,
    pub height: u32,
    /// As text: seeds go up to 2^64, past what JavaScript numbers hold exactly.
    pub seed: String,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    /// How long the generation took, in milliseconds.
    pub duration_ms: i64,
    /// The full image and its thumbnail, as paths on this server.
    pub url: String,
    pub thumb_url: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GalleryQuery {
    /// 0-based.
    pub page: u32,
    pub per_page: u32,
    /// Words the prompt must contain.
    pub search: Option<String>,
    pub model: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GalleryPage {
    pub items: Vec<GalleryItem>,
    /// Matching images over all pages.
    pub total: u64,
    /// Every model with an image in the gallery, for the filter.
    pub models: Vec<String>,
}

/// Why the gallery refused a call from the web app, with the HTTP status it answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GalleryRefusal {
    /// The server needs an API key and the call brought none, or a wrong one.
    Unauthorized(String),
    /// `GALLERY=off`.
    Off(String),
    /// Reading or writing the gallery failed on the server.
    Failed(String),
}

impl GalleryRefusal {
    pub fn status(&self) -> u16 {
        match self {
            GalleryRefusal::Unauthorized(_) => 401,
            GalleryRefusal::Off(_) => 404,
            GalleryRefusal::Failed(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            GalleryRefusal::Unauthorized(m)
            | GalleryRefusal::Off(m)
            | GalleryRefusal::Failed(m) => m,
        }
    }
}
