//! The connection, on every page: the health and queue of each ComfyUI server (kept fresh while
//! the page is open), the API key when the server needs one (kept in this browser), and a
//! banner when the demo backend stands in for ComfyUI.

use leptos::prelude::*;

use super::key::{store_key, stored_key};
use crate::server_fns::{BridgeOverview, is_demo, load_overview};

/// How often the panel asks again, so queues and outages show without a reload.
#[cfg(feature = "hydrate")]
const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// Shared by every page through the context.
#[derive(Clone)]
pub struct Connection {
    /// Unset until the browser has asked once.
    pub overview: ArcRwSignal<Option<Result<BridgeOverview, String>>>,
    /// The key requests carry; empty when none was given.
    pub api_key: ArcRwSignal<String>,
    /// The key the overview was last asked with: while it differs from `api_key`, whether the
    /// key is right is not known yet.
    checked_key: ArcRwSignal<Option<String>>,
    /// Bumped when a request was refused for want of the right key: the panel opens and the
    /// key field gets the focus.
    key_asked: ArcRwSignal<u32>,
}

impl Connection {
    /// The model the bridge uses when none is named, once known.
    pub fn default_model(&self) -> Option<Option<String>> {
        self.overview.with(|o| {
            o.as_ref()
                .map(|o| o.as_ref().ok().and_then(|o| o.default_model.clone()))
        })
    }

    /// Whether the server refuses the browser's key (or its lack of one), as last checked.
    pub fn key_refused(&self) -> bool {
        self.overview
            .with_untracked(|o| matches!(o, Some(Ok(o)) if o.key_accepted == Some(false)))
    }

    /// Opens the panel at the key field, after a request was refused for the key.
    pub fn ask_for_key(&self) {
        self.key_asked.update(|n| *n += 1);
    }

    /// Asks for the key each time `failed` turns true while the server refuses the key: a
    /// page's request came back refused, and the fix is in the panel.
    pub fn ask_for_key_on(&self, failed: impl Fn() -> bool + Send + Sync + 'static) {
        let c = self.clone();
        Effect::new(move |_| {
            if failed() && c.key_refused() {
                c.ask_for_key();
            }
        });
    }
}

/// What the panel says of the key: accepted, missing, wrong, or not checked yet.
fn key_state(
    overview: &Option<Result<BridgeOverview, String>>,
    key: &str,
    checked: Option<&str>,
) -> &'static str {
    let accepted = match overview {
        Some(Ok(o)) => o.key_accepted,
        _ => None,
    };
    match accepted {
        _ if checked != Some(key) => "Checking the key…",
        Some(true) => "Key accepted. It is kept in this browser only.",
        _ if key.trim().is_empty() => {
            "This server needs an API key for generating and for the gallery. Enter it here; it is kept in this browser only."
        }
        _ => {
            "This key is not one of this server's. Check it for typos, or ask the server's operator for one."
        }
    }
}

pub fn use_connection() -> Connection {
    use_context::<Connection>().expect("the connection is provided by the app")
}

/// Creates the connection for the whole app and keeps it fresh in the browser.
pub fn provide_connection() {
    let connection = Connection {
        overview: ArcRwSignal::new(None),
        api_key: ArcRwSignal::new(stored_key()),
        checked_key: ArcRwSignal::new(None),
        key_asked: ArcRwSignal::new(0),
    };
    // Asked again whenever the key changes, so the panel says at once whether it is right.
    Effect::new({
        let c = connection.clone();
        move |_| refresh(&c, c.api_key.get())
    });
    // In an effect, so it only ever starts in the browser.
    #[cfg(feature = "hydrate")]
    Effect::new({
        let c = connection.clone();
        move |_| {
            let c = c.clone();
            if let Ok(handle) = set_interval_with_handle(
                move || {
                    // A tab in the background does not need fresh numbers.
                    if !page_hidden() {
                        refresh(&c, c.api_key.get_untracked())
                    }
                },
                REFRESH,
            ) {
                on_cleanup(move || handle.clear());
            }
        }
    });
    provide_context(connection);
}

#[cfg(feature = "hydrate")]
fn page_hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden())
}

fn refresh(c: &Connection, key: String) {
    let (overview, checked) = (c.overview.clone(), c.checked_key.clone());
    leptos::task::spawn_local(async move {
        let result = load_overview(key.clone()).await.map_err(|e| e.to_string());
        overview.set(Some(result));
        checked.set(Some(key));
    });
}

/// A line at the top of every page while the built-in simulator stands in for ComfyUI. Rendered
/// by the server (the backend does not change while it runs), so nothing moves when it shows.
#[component]
pub fn DemoBanner() -> impl IntoView {
    let demo = Resource::new(|| (), |_| is_demo());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                demo.await.ok().filter(|&d| d).map(|_| view! {
                    <p class="banner" role="status">
                        "Demo backend: images come from the built-in ComfyUI simulator, not from a real ComfyUI. "
                        "Set COMFYUI_URL to use your own server."
                    </p>
                })
            })}
        </Suspense>
    }
}

/// The header's connection summary, opening to each server's state and the API key.
#[component]
pub fn ConnectionPanel() -> impl IntoView {
    let c = use_connection();
    let (overview, summary_of, needs_key) =
        (c.overview.clone(), c.overview.clone(), c.overview.clone());
    // Open by itself while the server wants a key the browser does not have.
    // A memo, so a refresh that changes nothing does not open it again after it was closed.
    let key_missing = ArcMemo::new(move |_| {
        needs_key.with(|o| matches!(o, Some(Ok(o)) if o.key_accepted == Some(false)))
    });
    let (key_in, key_out) = (c.api_key.clone(), c.api_key.clone());
    let (auth, accepted) = (c.overview.clone(), c.overview.clone());
    let (key_now, checked, summary_key) =
        (c.api_key.clone(), c.checked_key.clone(), c.api_key.clone());
    let panel = NodeRef::<leptos::html::Details>::new();
    let field = NodeRef::<leptos::html::Input>::new();
    // A request refused for the key: the panel opens, the key field gets the focus.
    Effect::new({
        let asked = c.key_asked.clone();
        move |before: Option<u32>| {
            let now = asked.get();
            if before.is_some_and(|b| b != now) {
                if let Some(panel) = panel.get_untracked() {
                    panel.set_open(true);
                }
                request_animation_frame(move || {
                    if let Some(field) = field.get_untracked() {
                        let _ = field.focus();
                    }
                });
            }
            now
        }
    });
    view! {
        <details class="connection" node_ref=panel prop:open=move || key_missing.get()
            on:keydown=|ev: leptos::ev::KeyboardEvent| {
                // Escape closes the panel and leaves the focus on its summary.
                if ev.key() == "Escape" {
                    close_details(&ev);
                }
            }>
            <summary>{move || summary(&summary_of.get(), &summary_key.get())}</summary>
            <div class="connection-body">
                {move || match overview.get() {
                    None => view! { <p class="muted">"Asking the bridge…"</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="error">"The bridge did not answer: " {e}</p> }.into_any(),
                    Some(Ok(o)) => details(o).into_any(),
                }}
                <Show when=move || auth.with(|o| matches!(o, Some(Ok(o)) if o.auth_required))>
                    <label class="key">"API key"
                        <input name="api_key" type="password" autocomplete="off" node_ref=field
                            aria-describedby="key-state"
                            placeholder="needed by this server"
                            prop:value={
                                let k = key_out.clone();
                                move || k.get()
                            }
                            on:input={
                                let k = key_in.clone();
                                move |ev| {
                                    let value = event_target_value(&ev);
                                    store_key(&value);
                                    k.set(value)
                                }
                            }/>
                    </label>
                    <p class="muted key-state" id="key-state" aria-live="polite">{
                        let (o, key, checked) = (accepted.clone(), key_now.clone(), checked.clone());
                        move || {
                            let key = key.get();
                            let checked = checked.get();
                            o.with(|o| key_state(o, &key, checked.as_deref()))
                        }
                    }</p>
                </Show>
            </div>
        </details>
    }
}

pub(super) fn close_details(ev: &leptos::ev::KeyboardEvent) {
    use leptos::wasm_bindgen::JsCast;
    let details = ev
        .current_target()
        .and_then(|t| t.dyn_into::<leptos::web_sys::HtmlDetailsElement>().ok());
    if let Some(details) = details {
        details.set_open(false);
        if let Some(summary) = details
            .query_selector("summary")
            .ok()
            .flatten()
            .and_then(|s| s.dyn_into::<leptos::web_sys::HtmlElement>().ok())
        {
            let _ = summary.focus();
        }
    }
}

fn summary(overview: &Option<Result<BridgeOverview, String>>, key: &str) -> String {
    match overview {
        None => "Connecting…".into(),
        Some(Err(_)) => "Bridge unreachable".into(),
        Some(Ok(o)) if o.key_accepted == Some(false) && key.trim().is_empty() => {
            "API key needed".into()
        }
        Some(Ok(o)) if o.key_accepted == Some(false) => "Wrong API key".into(),
        Some(Ok(o)) => {
            let up = o.health.servers.iter().filter(|s| s.reachable).count();
            let queued: u64 = o
                .health
                .servers
                .iter()
                .filter_map(|s| s.queue_remaining)
                .sum();
            match (up, o.health.servers.len()) {
                (0, _) => "ComfyUI unreachable".into(),
                (up, all) if up < all => format!("ComfyUI {up} of {all} up · queue {queued}"),
                _ => format!("ComfyUI ok · queue {queued}"),
            }
        }
    }
}

fn details(o: BridgeOverview) -> impl IntoView {
    let health = o.health;
    view! {
        <ul class="servers">
            {health.servers.into_iter().map(|s| {
                let state = if s.reachable { "reachable" } else { "unreachable" };
                view! {
                    <li class:bad=!s.reachable>
                        // Without the key, the server is told by its place in the list only.
                        {if s.url.is_empty() {
                            view! { <span>{s.name}</span> }.into_any()
                        } else {
                            view! { <code>{s.url}</code> }.into_any()
                        }}
                        <span>{format!(" {state}")}</span>
                        {s.queue_remaining.map(|q| format!(", {q} in queue"))}
                        {s.comfyui_version.map(|v| format!(", ComfyUI {v}"))}
                        {(!s.socket_connected && s.reachable).then_some(", events socket reconnecting")}
                        {s.error.map(|e| view! { <span class="error">{format!(" ({e})")}</span> })}
                        {(!s.models.is_empty()).then(|| view! {
                            <span class="muted">{format!(". Runs: {}", s.models.join(", "))}</span>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
        <p class="muted">"Models: " {health.workflows.models.join(", ")}</p>
        {(!health.workflows.unavailable.is_empty()).then(|| view! {
            <ul class="unavailable">
                {health.workflows.unavailable.into_iter().map(|m| view! {
                    <li><code>{m.model}</code>{if m.reasons.is_empty() {
                        " cannot run now".to_string()
                    } else {
                        format!(" cannot run: {}", m.reasons.join("; "))
                    }}</li>
                }).collect_view()}
            </ul>
        })}
        {(!health.workflows.errors.is_empty()).then(|| view! {
            <ul class="error">
                {health.workflows.errors.into_iter().map(|e| view! { <li>{e}</li> }).collect_view()}
            </ul>
        })}
    }
}
