//! The viewer's browser side: the native dialog, its focus, and the clipboard.

use leptos::{html, prelude::*};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Element, HtmlElement};

/// The element that opened the viewer.
#[derive(Clone)]
pub struct Opener(StoredValue<Option<HtmlElement>, LocalStorage>);

impl Default for Opener {
    fn default() -> Opener {
        Opener(StoredValue::new_local(None))
    }
}

impl Opener {
    pub fn remember(&self, ev: &leptos::ev::MouseEvent) {
        let element = ev.current_target().and_then(|t| t.dyn_into().ok());
        self.0.set_value(element);
    }
}

pub fn sync(dialog: &NodeRef<html::Dialog>, opener: &Opener, open: bool) {
    let Some(dialog) = dialog.get_untracked() else {
        return;
    };
    if open {
        if !dialog.open() {
            let _ = dialog.show_modal();
        }
        // The Close button, not whatever control happens to come first.
        if let Some(first) = dialog
            .query_selector("[autofocus]")
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        {
            let _ = first.focus();
        }
    } else {
        if dialog.open() {
            dialog.close();
        }
        if let Some(opener) = opener.0.try_update_value(Option::take).flatten()
            && opener.is_connected()
        {
            let _ = opener.focus();
        }
    }
}

/// Tab from the last control goes to the first, and Shift+Tab from the first to the last, so
/// the focus never leaves the dialog for the browser's own controls.
pub fn keep_focus_inside(dialog: &NodeRef<html::Dialog>, ev: &leptos::ev::KeyboardEvent) {
    let Some(dialog) = dialog.get_untracked() else {
        return;
    };
    let Ok(found) = dialog.query_selector_all(
        "a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex]:not([tabindex='-1'])",
    ) else {
        return;
    };
    let controls: Vec<HtmlElement> = (0..found.length())
        .filter_map(|i| found.item(i)?.dyn_into::<HtmlElement>().ok())
        .filter(|e| e.get_client_rects().length() > 0)
        .collect();
    let (Some(first), Some(last)) = (controls.first(), controls.last()) else {
        return;
    };
    let active = document().active_element();
    let at = |e: &HtmlElement| {
        active
            .as_ref()
            .is_some_and(|a| a == e.unchecked_ref::<Element>())
    };
    let inside = controls.iter().any(at);
    let to = match (ev.shift_key(), inside) {
        (true, _) if at(first) || !inside => last,
        (false, _) if at(last) || !inside => first,
        _ => return,
    };
    ev.prevent_default();
    let _ = to.focus();
}

/// Whether a click fell on the backdrop or on the empty space around the image. A click on the
/// backdrop reaches the dialog itself, as does one in the dialog's own margins, which is told
/// apart by where it fell.
pub fn on_backdrop(ev: &leptos::ev::MouseEvent) -> bool {
    let Some(target) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
        return false;
    };
    if target.class_list().contains("viewer-stage") {
        return true;
    }
    if target.tag_name() != "DIALOG" {
        return false;
    }
    let frame = target.get_bounding_client_rect();
    let (x, y) = (f64::from(ev.client_x()), f64::from(ev.client_y()));
    x < frame.left() || x > frame.right() || y < frame.top() || y > frame.bottom()
}

pub fn natural_ratio(ev: &leptos::ev::Event) -> Option<f64> {
    let img: web_sys::HtmlImageElement = ev.target()?.dyn_into().ok()?;
    let (w, h) = (img.natural_width(), img.natural_height());
    (w > 0 && h > 0).then(|| f64::from(w) / f64::from(h))
}

/// Puts `text` on the clipboard and says `done`. Pages served over plain http to another
/// machine have no clipboard API; there the older copy command is tried, and failing that the
/// text itself is shown so it can be copied by hand.
pub fn copy(dialog: &NodeRef<html::Dialog>, said: ArcRwSignal<String>, text: String, done: String) {
    let navigator = window().navigator();
    let has_api = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
        .is_ok_and(|c| !c.is_undefined());
    if !has_api {
        said.set(copy_by_command(dialog, &text).map_or_else(|| by_hand(&text), |_| done));
        return;
    }
    let dialog = *dialog;
    let promise = navigator.clipboard().write_text(&text);
    leptos::task::spawn_local(async move {
        let copied = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
            || copy_by_command(&dialog, &text).is_some();
        said.set(if copied { done } else { by_hand(&text) });
    });
}

fn by_hand(text: &str) -> String {
    format!("This browser does not allow copying here. Select and copy it by hand: {text}")
}

/// Copies through a text area inside the dialog: the page behind a modal dialog is inert, so
/// it must not go there.
fn copy_by_command(dialog: &NodeRef<html::Dialog>, text: &str) -> Option<()> {
    let dialog = dialog.get_untracked()?;
    let area: web_sys::HtmlTextAreaElement = document()
        .create_element("textarea")
        .ok()?
        .dyn_into()
        .ok()?;
    area.set_value(text);
    let _ = area.set_attribute("class", "visually-hidden");
    let active = document().active_element();
    dialog.append_child(&area).ok()?;
    area.select();
    let copied = document()
        .dyn_into::<web_sys::HtmlDocument>()
        .ok()?
        .exec_command("copy")
        .unwrap_or(false);
    area.remove();
    if let Some(active) = active.and_then(|a| a.dyn_into::<HtmlElement>().ok()) {
        let _ = active.focus();
    }
    copied.then_some(())
}
