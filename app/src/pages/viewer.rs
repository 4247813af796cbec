//! The image viewer every page opens its images in: the image large and fit to the screen (or at
//! its actual size), ←/→ through the images of the same set, and what can be done with one:
//! download it, send it to Edit, put its settings into Generate, copy its seed.
//!
//! It is a native modal `<dialog>`: the page behind it is inert, Escape closes it, and focus goes
//! back where it was. The dialog's controls are rendered once and only their contents follow the
//! image shown, so moving to the next image never takes the focus away from a button.

use leptos::{html, prelude::*};

/// One image as the viewer shows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Shown {
    /// A path of this server, or a `data:` URL.
    pub src: String,
    /// The prompt it was made from: its alt text and its prompt in Edit.
    pub prompt: String,
    /// As text: seeds go up to 2^64, past what JavaScript numbers hold exactly.
    pub seed: Option<String>,
    pub file_name: String,
    /// Its pixel size, when known before it loads.
    pub size: Option<(u32, u32)>,
    pub to_edit: ToEdit,
    /// Generate's address with the settings the image was made with, when they are known.
    pub settings: Option<String>,
}

/// How an image reaches the Edit page.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum ToEdit {
    /// An address that opens it there (an image this bridge serves).
    Address(String),
    /// Handed over inside the page: an image that lives only in this page, such as a fresh result.
    InPage,
}

/// An image the viewer hands to the Edit page (a result's "Send to Edit"), with the prompt it
/// was made from. It lives in the page, not in the address: a result is a `data:` URL far too
/// long for one.
#[derive(Clone)]
pub(crate) struct Handoff(pub(super) ArcRwSignal<Option<(String, String)>>);

pub(crate) fn provide_handoff() {
    provide_context(Handoff(ArcRwSignal::new(None)));
}

pub(super) fn use_handoff() -> Handoff {
    use_context::<Handoff>().expect("the handoff is provided by the app")
}

/// The viewer of one set of images: which one is open, and the dialog that shows it.
#[derive(Clone)]
pub(super) struct Viewer {
    /// The index of the image shown, in the set; `None` while closed.
    pub open: ArcRwSignal<Option<usize>>,
    zoomed: ArcRwSignal<bool>,
    /// What the last action said ("Seed 42 copied."), for sighted and screen-reader users alike.
    said: ArcRwSignal<String>,
    dialog: NodeRef<html::Dialog>,
    /// The element that opened the viewer, which gets the focus back when it closes.
    opener: browser::Opener,
}

impl Viewer {
    pub fn new() -> Viewer {
        Viewer {
            open: ArcRwSignal::new(None),
            zoomed: ArcRwSignal::new(false),
            said: ArcRwSignal::new(String::new()),
            dialog: NodeRef::new(),
            opener: browser::Opener::default(),
        }
    }

    /// Opens image `index` of the set; the element the event came from gets the focus back.
    pub fn show(&self, index: usize, ev: &leptos::ev::MouseEvent) {
        self.opener.remember(ev);
        self.zoomed.set(false);
        self.said.set(String::new());
        self.open.set(Some(index));
    }

    pub fn close(&self) {
        self.open.set(None);
    }

    /// Puts `text` on the clipboard and says `done` in the dialog.
    pub fn copy(&self, text: String, done: String) {
        browser::copy(&self.dialog, self.said.clone(), text, done);
    }

    /// Moves `by` images along the set, round from the last to the first.
    fn step(&self, by: isize, count: usize) {
        if count < 2 {
            return;
        }
        self.zoomed.set(false);
        self.said.set(String::new());
        self.open.update(|open| {
            if let Some(i) = open {
                *i = (*i as isize + by).rem_euclid(count as isize) as usize;
            }
        });
    }

    /// The dialog for `images`. `more` is the page's own part: details of the image shown and
    /// actions only that page has.
    pub fn view<More: IntoView + 'static>(
        &self,
        label: &'static str,
        images: Signal<Vec<Shown>>,
        more: More,
    ) -> impl IntoView + use<More> {
        let shown = {
            let open = self.open.clone();
            Memo::new(move |_| {
                open.get()
                    .and_then(|i| images.with(|all| all.get(i).cloned()))
            })
        };
        let count = Signal::derive(move || images.with(Vec::len));
        // Open and close the native dialog as the state says; the dialog's own close (Escape)
        // comes back through `on:close`.
        Effect::new({
            let (viewer, open) = (self.clone(), self.open.clone());
            move |_| browser::sync(&viewer.dialog, &viewer.opener, open.get().is_some())
        });
        // A set that shrank under the viewer (an image deleted) leaves nothing to show.
        Effect::new({
            let viewer = self.clone();
            move |_| {
                if viewer.open.get().is_some() && shown.get().is_none() {
                    viewer.close();
                }
            }
        });
        let on_close = {
            let viewer = self.clone();
            move |_| viewer.close()
        };
        let on_key = {
            let viewer = self.clone();
            move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                "ArrowLeft" => {
                    ev.prevent_default();
                    viewer.step(-1, count.get_untracked());
                }
                "ArrowRight" => {
                    ev.prevent_default();
                    viewer.step(1, count.get_untracked());
                }
                "Tab" => browser::keep_focus_inside(&viewer.dialog, &ev),
                _ => {}
            }
        };
        // The dark backdrop and the empty space around the image are outside what is shown.
        let on_click = {
            let viewer = self.clone();
            move |ev: leptos::ev::MouseEvent| {
                if browser::on_backdrop(&ev) {
                    viewer.close();
                }
            }
        };
        let step = |by: isize| {
            let viewer = self.clone();
            move |_| viewer.step(by, count.get_untracked())
        };
        let toggle_zoom = {
            let zoomed = self.zoomed.clone();
            move |_| zoomed.update(|z| *z = !*z)
        };
        let copy_seed = {
            let viewer = self.clone();
            move |_| {
                if let Some(seed) = shown.get_untracked().and_then(|s| s.seed) {
                    viewer.copy(seed.clone(), format!("Seed {seed} copied."));
                }
            }
        };
        let send_to_edit = {
            let (viewer, handoff) = (self.clone(), use_handoff().0);
            let navigate = leptos_router::hooks::use_navigate();
            move |_| {
                if let Some(s) = shown.get_untracked() {
                    viewer.close();
                    handoff.set(Some((s.src, s.prompt)));
                    navigate("/edit", Default::default());
                }
            }
        };
        let close = {
            let viewer = self.clone();
            move |_| viewer.close()
        };
        let (zoomed, zoom_class) = (self.zoomed.clone(), self.zoomed.clone());
        let said = self.said.clone();
        // The shape of the image shown, once it has loaded; until then its known size, if any.
        let ratio = ArcRwSignal::new(None::<f64>);
        let ratio_set = ratio.clone();
        Effect::new({
            let ratio = ratio.clone();
            move |_| {
                shown.track();
                ratio.set(None);
            }
        });
        let field = move |f: fn(&Shown) -> Option<String>| {
            move || shown.with(|s| s.as_ref().and_then(f)).unwrap_or_default()
        };
        let lacks =
            move |f: fn(&Shown) -> bool| move || shown.with(|s| s.as_ref().is_none_or(|s| !f(s)));
        view! {
            <dialog node_ref=self.dialog class="viewer" aria-label=label
                on:close=on_close on:keydown=on_key on:click=on_click>
                <div class="viewer-bar">
                    <p class="viewer-count">{
                        let open = self.open.clone();
                        move || open.get().map(|i| format!("{} of {}", i + 1, count.get()))
                    }</p>
                    <div class="viewer-actions">
                        <button type="button" class="secondary" aria-label="Previous image"
                            hidden=move || count.get() < 2 on:click=step(-1)>"←"</button>
                        <button type="button" class="secondary" aria-label="Next image"
                            hidden=move || count.get() < 2 on:click=step(1)>"→"</button>
                        <button type="button" class="secondary" aria-pressed=move || zoomed.get().to_string()
                            title="Show the image at its actual size, or fit it to the screen"
                            on:click=toggle_zoom.clone()>"Actual size"</button>
                        <a class="button" href=field(|s| Some(s.src.clone()))
                            download=field(|s| Some(s.file_name.clone()))>"Download"</a>
                        <a class="button" href=field(|s| match &s.to_edit {
                                ToEdit::Address(a) => Some(a.clone()),
                                ToEdit::InPage => None,
                            })
                            hidden=lacks(|s| matches!(s.to_edit, ToEdit::Address(_)))>"Send to Edit"</a>
                        <button type="button" hidden=lacks(|s| s.to_edit == ToEdit::InPage)
                            on:click=send_to_edit>"Send to Edit"</button>
                        <a class="button" href=field(|s| s.settings.clone())
                            hidden=lacks(|s| s.settings.is_some())>"Use settings"</a>
                        <button type="button" class="secondary" hidden=lacks(|s| s.seed.is_some())
                            on:click=copy_seed>"Copy seed"</button>
                    </div>
                    <button type="button" class="secondary close" autofocus on:click=close>"Close"</button>
                </div>
                <p class="viewer-said" aria-live="polite">{move || said.get()}</p>
                <div class="viewer-stage" class:actual=move || zoom_class.get()>
                    <img src=field(|s| Some(s.src.clone())) alt=field(|s| Some(alt_text(&s.prompt)))
                        width=field(|s| s.size.map(|(w, _)| w.to_string()))
                        height=field(|s| s.size.map(|(_, h)| h.to_string()))
                        style=move || {
                            let r = ratio.get().or_else(|| shown.with(|s| s.as_ref()?.size.map(|(w, h)| f64::from(w) / f64::from(h.max(1)))));
                            format!("--ratio: {}", r.unwrap_or(1.0))
                        }
                        on:load=move |ev| ratio_set.set(browser::natural_ratio(&ev))
                        on:click=toggle_zoom/>
                </div>
                {more}
            </dialog>
        }
    }
}

/// An image's alt text: its prompt, or words saying there was none (a variation has none). An empty alt would hide the image from screen readers, and leave a button holding
/// only it without a name.
pub(super) fn alt_text(prompt: &str) -> String {
    if prompt.trim().is_empty() {
        "An image made without a prompt".to_string()
    } else {
        prompt.to_string()
    }
}

#[cfg(feature = "hydrate")]
#[path = "viewer_browser.rs"]
mod browser;

/// The server renders the dialog closed; opening, copying and focus happen in the browser.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use leptos::{html, prelude::*};

    // Not a unit struct: the hydrated build's is built with `default()` too.
    #[derive(Clone, Default)]
    pub struct Opener(());

    impl Opener {
        pub fn remember(&self, _: &leptos::ev::MouseEvent) {}
    }

    pub fn sync(_: &NodeRef<html::Dialog>, _: &Opener, _: bool) {}
    pub fn keep_focus_inside(_: &NodeRef<html::Dialog>, _: &leptos::ev::KeyboardEvent) {}
    pub fn on_backdrop(_: &leptos::ev::MouseEvent) -> bool {
        false
    }
    pub fn copy(_: &NodeRef<html::Dialog>, _: ArcRwSignal<String>, _: String, _: String) {}
    pub fn natural_ratio(_: &leptos::ev::Event) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::alt_text;

    #[test]
    fn an_image_without_a_prompt_still_has_alt_text() {
        assert_eq!(alt_text("a fox"), "a fox");
        assert_eq!(alt_text(""), "An image made without a prompt");
        assert_eq!(alt_text("  "), "An image made without a prompt");
    }
}
