//! Hydrating the page in the browser, and what waits for it to be done.
//!
//! The page shown may be one whose code is a wasm file of its own (Edit, Chat, Gallery): the
//! app's top is then set up before that file has arrived and its page is hydrated. What the
//! browser keeps (forms, results, prompts) must not reach the page before then, or the page's
//! first render would differ from the server's.

use std::cell::RefCell;

use leptos::prelude::*;

/// What runs once the page is hydrated.
type Waiting = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// `None` once the page is hydrated.
    static WAITING: RefCell<Option<Waiting>> = const { RefCell::new(Some(Vec::new())) };
}

/// Runs `f` under the current reactive owner once the page is hydrated, or now if it is.
pub(crate) fn after_hydration(f: impl FnOnce() + 'static) {
    let owner = Owner::current();
    let run = move || match owner {
        Some(owner) => owner.with(f),
        None => f(),
    };
    let run = WAITING.with_borrow_mut(|waiting| match waiting {
        Some(list) => {
            list.push(Box::new(run));
            None
        }
        None => Some(run),
    });
    if let Some(run) = run {
        run();
    }
}

/// Hydrates the server's page, waiting for the wasm file of the page shown if it has one.
pub async fn hydrate() {
    let document = document();
    let Some(body) = document.body() else { return };
    leptos::mount::hydrate_from_async(body, crate::App)
        .await
        .forget();
    let waiting = WAITING.with_borrow_mut(Option::take).unwrap_or_default();
    for run in waiting {
        run();
    }
    // The page answers input from here on: the benchmark's time to interactive waits for this.
    if let Some(root) = document.document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
