//! What the pages share about their forms: the submit shortcut and the seed's rule.

/// Ctrl+Enter (Cmd+Enter on a Mac) submits the form the key was pressed in, as its button
/// would, the browser's checks of required fields included.
pub fn submit_on_ctrl_enter(ev: leptos::ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if ev.key() != "Enter" || !(ev.ctrl_key() || ev.meta_key()) || ev.is_composing() {
            return;
        }
        let form = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.closest("form").ok().flatten())
            .and_then(|f| f.dyn_into::<web_sys::HtmlFormElement>().ok());
        if let Some(form) = form {
            ev.prevent_default();
            let _ = form.request_submit();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

/// Why a seed field's text is not a seed; `None` for a seed or a blank (a random seed).
pub fn seed_problem(text: &str) -> Option<&'static str> {
    let text = text.trim();
    (!text.is_empty() && text.parse::<u64>().is_err()).then_some(
        "A seed is a whole number from 0 to 18446744073709551615; leave it blank for a random one.",
    )
}

#[cfg(test)]
mod tests {
    use super::seed_problem;

    #[test]
    fn seeds_are_whole_numbers_or_blank() {
        for ok in ["", "  ", "0", "42", " 7 ", "18446744073709551615"] {
            assert_eq!(seed_problem(ok), None, "{ok:?}");
        }
        for bad in ["abc", "-5", "1.5", "18446744073709551616", "4 2"] {
            assert!(seed_problem(bad).is_some(), "{bad:?}");
        }
    }
}
