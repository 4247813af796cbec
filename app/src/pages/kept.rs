//! What Generate and Edit keep, so no work is lost by leaving a page: their forms and results
//! live as long as the app (a run going on when the page is left goes on, and shows when the
//! page is back), and are kept in this browser across reloads. Local storage holds only the
//! fields, a few hundred bytes; the images go to IndexedDB, which holds them in bulk, where
//! local storage would fill its few megabytes with a handful of `data:` URLs.
//!
//! The prompts sent last, from either page, are kept too, to be picked again.

use leptos::{html, prelude::*};
use serde::{Deserialize, Serialize};

use super::results::Run;

/// Where the picture being edited comes from, and its size once the browser has read it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Source {
    /// An object URL of a local file, or a path of an image this bridge serves.
    pub url: String,
    pub size: Option<(u32, u32)>,
}

/// Only the bridge's own images may be opened by address (`/edit?image=/gallery/…`): the page
/// never fetches a URL someone else chose.
pub(super) fn is_own_image(path: &str) -> bool {
    let name = path
        .strip_prefix("/gallery/")
        .or_else(|| path.strip_prefix("/images/"));
    name.is_some_and(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !n.contains("..")
    })
}

/// How many prompts the history offers.
const HISTORY_LEN: usize = 20;

/// The Generate page's fields and results.
#[derive(Clone)]
pub(super) struct GenerateState {
    pub prompt: ArcRwSignal<String>,
    pub negative: ArcRwSignal<String>,
    pub model: ArcRwSignal<String>,
    pub size: ArcRwSignal<String>,
    pub count: ArcRwSignal<u32>,
    pub seed: ArcRwSignal<String>,
    pub steps: ArcRwSignal<String>,
    pub cfg: ArcRwSignal<String>,
    pub sampler: ArcRwSignal<String>,
    pub scheduler: ArcRwSignal<String>,
    pub run: Run,
    /// Set when the address filled the form (`/?prompt=…`): what it asks for wins over what
    /// this browser kept.
    pub prefilled: ArcRwSignal<bool>,
}

/// The Edit page's fields, picture and results.
#[derive(Clone)]
pub(super) struct EditState {
    pub source: ArcRwSignal<Option<Source>>,
    /// The painted mask as a PNG `data:` URL, with the address of the picture it was painted
    /// on: kept across page changes (not reloads), drawn back when that picture is shown again.
    pub painting: ArcRwSignal<Option<(String, String)>>,
    pub mask_file: ArcRwSignal<Option<String>>,
    pub brush: ArcRwSignal<u32>,
    pub prompt: ArcRwSignal<String>,
    pub model: ArcRwSignal<String>,
    pub size: ArcRwSignal<String>,
    pub count: ArcRwSignal<u32>,
    pub seed: ArcRwSignal<String>,
    pub strength: ArcRwSignal<String>,
    pub run: Run,
    pub prefilled: ArcRwSignal<bool>,
}

/// Shared by Generate and Edit through the context.
#[derive(Clone)]
pub(crate) struct Studio {
    pub(super) generate: GenerateState,
    pub(super) edit: EditState,
    /// The prompts sent, newest first, each once.
    pub(super) history: ArcRwSignal<Vec<String>>,
}

impl Studio {
    /// Puts a prompt just sent at the top of the history.
    pub(super) fn remember(&self, prompt: &str) {
        self.history.update(|h| remember(h, prompt));
    }
}

fn remember(history: &mut Vec<String>, prompt: &str) {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return;
    }
    history.retain(|p| p != prompt);
    history.insert(0, prompt.to_string());
    history.truncate(HISTORY_LEN);
}

pub(super) fn use_studio() -> Studio {
    use_context::<Studio>().expect("the studio is provided by the app")
}

/// Creates the pages' state for the whole app and, in the browser, fills it with what this
/// browser kept and keeps it from then on.
pub(crate) fn provide_studio() {
    let text = || ArcRwSignal::new(String::new());
    let generate_seed = text();
    let edit_seed = text();
    let studio = Studio {
        generate: GenerateState {
            prompt: text(),
            negative: text(),
            model: text(),
            size: ArcRwSignal::new("auto".into()),
            count: ArcRwSignal::new(1),
            run: Run::new(generate_seed.clone()),
            seed: generate_seed,
            steps: text(),
            cfg: text(),
            sampler: text(),
            scheduler: text(),
            prefilled: ArcRwSignal::new(false),
        },
        edit: EditState {
            source: ArcRwSignal::new(None),
            painting: ArcRwSignal::new(None),
            mask_file: ArcRwSignal::new(None),
            brush: ArcRwSignal::new(40),
            prompt: text(),
            model: text(),
            size: ArcRwSignal::new("auto".into()),
            count: ArcRwSignal::new(1),
            run: Run::new(edit_seed.clone()),
            seed: edit_seed,
            strength: text(),
            prefilled: ArcRwSignal::new(false),
        },
        history: ArcRwSignal::new(Vec::new()),
    };
    // In the browser only, once the page is hydrated: the server's page and the browser's first
    // render agree, and what was kept comes in after.
    #[cfg(feature = "hydrate")]
    {
        let studio = studio.clone();
        crate::hydration::after_hydration(move || browser::keep(&studio));
    }
    provide_context(studio);
}

/// The Generate form as kept.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct GenerateFields {
    prompt: String,
    negative_prompt: String,
    model: String,
    size: String,
    n: u32,
    seed: String,
    steps: String,
    cfg: String,
    sampler: String,
    scheduler: String,
}

/// The Edit form as kept.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct EditFields {
    image: Option<KeptPicture>,
    prompt: String,
    model: String,
    size: String,
    n: u32,
    seed: String,
    strength: String,
    brush: u32,
}

/// Where the picture being edited is kept.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeptPicture {
    /// An image this bridge serves, by its path.
    Address(String),
    /// A file of this browser (or a result handed over), in IndexedDB.
    Browser,
}

/// A page's latest results: their prompt, and each image's seed; image `i` is in IndexedDB.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct KeptResults {
    prompt: String,
    seeds: Vec<Option<u64>>,
}

/// The recent prompts menu beside a prompt field: a disclosure of buttons, so it works by
/// keyboard as by mouse (Tab to it, Enter to open, Tab to a prompt, Enter to take it, Escape to
/// close). Picking one puts it in the field and the focus back there.
pub(super) fn prompt_history(
    prompt: ArcRwSignal<String>,
    field: NodeRef<html::Textarea>,
) -> impl IntoView {
    let history = use_studio().history;
    let (none, items) = (history.clone(), history);
    let menu = NodeRef::<html::Details>::new();
    view! {
        <details class="history" node_ref=menu hidden=move || none.with(Vec::is_empty)
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    super::connection::close_details(&ev);
                }
            }>
            <summary>"Recent prompts"</summary>
            <ul>
                {move || items.get().into_iter().map(|p| {
                    let (prompt, shown) = (prompt.clone(), p.clone());
                    view! {
                        <li>
                            <button type="button" class="secondary small" title=p.clone()
                                on:click=move |_| {
                                    prompt.set(p.clone());
                                    if let Some(menu) = menu.get_untracked() {
                                        menu.set_open(false);
                                    }
                                    if let Some(field) = field.get_untracked() {
                                        let _ = field.focus();
                                    }
                                }>{shown}</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </details>
    }
}

#[cfg(feature = "hydrate")]
#[path = "kept_browser.rs"]
mod browser;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bridges_own_images_open_by_address() {
        assert!(is_own_image(
            "/gallery/0193a7e2-4c1d-7f00-8000-000000000000.png"
        ));
        assert!(is_own_image("/images/abc_DEF-1.webp"));
        for other in [
            "https://example.com/a.png",
            "//example.com/a.png",
            "/gallery/",
            "/gallery/../config",
            "/gallery/a/b.png",
            "/other/a.png",
            "javascript:alert(1)",
        ] {
            assert!(!is_own_image(other), "{other}");
        }
    }

    #[test]
    fn the_history_keeps_the_latest_twenty_once_each() {
        let mut h = Vec::new();
        for p in ["a", " b ", "", "a", "c"] {
            remember(&mut h, p);
        }
        assert_eq!(h, ["c", "a", "b"]);
        for i in 0..30 {
            remember(&mut h, &format!("p{i}"));
        }
        assert_eq!(h.len(), HISTORY_LEN);
        assert_eq!(h[0], "p29");
    }

    #[test]
    fn fields_missing_from_an_older_version_read_as_blank() {
        let kept: EditFields =
            serde_json::from_str(r#"{"prompt":"x","image":{"address":"/gallery/a.png"}}"#)
                .expect("read");
        assert_eq!(kept.prompt, "x");
        assert_eq!(
            kept.image,
            Some(KeptPicture::Address("/gallery/a.png".into()))
        );
        assert_eq!(kept.n, 0);
    }
}
