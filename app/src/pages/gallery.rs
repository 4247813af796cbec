//! The gallery page: every image the bridge kept, newest first, searchable by prompt and
//! filtered by model, with a lightbox that tells how each was made.

use leptos::prelude::*;

use crate::api::gallery::{GalleryItem, GalleryPage, GalleryQuery};

const PER_PAGE: u32 = 24;
/// Where the browser keeps the API key between visits.
const KEY_STORAGE: &str = "comfyui-bridge.api-key";

#[component]
pub fn GalleryView() -> impl IntoView {
    // Reference-counted state, loaded by the browser only: server rendering shows the frame and
    // never waits on (or loses) gallery data.
    let page = ArcRwSignal::new(0u32);
    let search = ArcRwSignal::new(String::new());
    let model = ArcRwSignal::new(String::new());
    let api_key = ArcRwSignal::new(stored_key());
    let data = ArcRwSignal::<Option<Result<GalleryPage, String>>>::new(None);
    let open = ArcRwSignal::<Option<GalleryItem>>::new(None);
    let reload = ArcRwSignal::new(0u32);

    Effect::new({
        let (page, search, model, api_key, data, reload) = (
            page.clone(),
            search.clone(),
            model.clone(),
            api_key.clone(),
            data.clone(),
            reload.clone(),
        );
        move |_| {
            reload.track();
            let query = GalleryQuery {
                page: page.get(),
                per_page: PER_PAGE,
                search: Some(search.get()).filter(|s| !s.trim().is_empty()),
                model: Some(model.get()).filter(|m| !m.is_empty()),
            };
            let (key, data) = (api_key.get(), data.clone());
            leptos::task::spawn_local(async move {
                let result = crate::server_fns::list_gallery(query, key)
                    .await
                    .map_err(|e| server_message(&e.to_string()));
                data.set(Some(result));
            });
        }
    });

    let search_box = ArcRwSignal::new(String::new());
    let on_search = {
        let (search, search_box, page) = (search.clone(), search_box.clone(), page.clone());
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            page.set(0);
            search.set(search_box.get_untracked());
        }
    };
    let on_model = {
        let (model, page) = (model.clone(), page.clone());
        move |ev| {
            page.set(0);
            model.set(event_target_value(&ev));
        }
    };
    let key_box = ArcRwSignal::new(String::new());
    let on_key = {
        let (api_key, key_box) = (api_key.clone(), key_box.clone());
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let key = key_box.get_untracked();
            store_key(&key);
            api_key.set(key);
        }
    };

    let (data_view, open_set, page_nav, model_sel) =
        (data.clone(), open.clone(), page.clone(), model.clone());
    view! {
        <section class="card gallery">
            <h2>"Gallery"</h2>
            <div class="toolbar">
                <form class="search" role="search" on:submit=on_search>
                    <input name="search" type="search" placeholder="Search prompts"
                        on:input={
                            let b = search_box.clone();
                            move |ev| b.set(event_target_value(&ev))
                        }/>
                    <button type="submit">"Search"</button>
                </form>
                <select name="model" aria-label="Model" on:change=on_model>
                    <option value="">"All models"</option>
                    {move || data_view.get().and_then(Result::ok).map(|p| {
                        let chosen = model_sel.get_untracked();
                        p.models.into_iter().map(|m| {
                            let selected = m == chosen;
                            view! { <option value=m.clone() selected=selected>{m.clone()}</option> }
                        }).collect_view()
                    })}
                </select>
            </div>
            {move || match data.get() {
                None => view! { <p class="muted">"Loading the gallery…"</p> }.into_any(),
                Some(Err(e)) => {
                    let needs_key = e.contains("API key");
                    let (on_key, key_box) = (on_key.clone(), key_box.clone());
                    view! {
                        <p class="error" role="alert">{e}</p>
                        <Show when=move || needs_key>
                            <form class="key" on:submit=on_key.clone()>
                                <label>"API key"
                                    <input name="api_key" type="password" autocomplete="off"
                                        on:input={
                                            let b = key_box.clone();
                                            move |ev| b.set(event_target_value(&ev))
                                        }/>
                                </label>
                                <button type="submit">"Use key"</button>
                            </form>
                        </Show>
                    }.into_any()
                }
                Some(Ok(p)) if p.items.is_empty() => view! {
                    <p class="muted">"No images yet. Make some on the Generate page or through the API."</p>
                }.into_any(),
                Some(Ok(p)) => {
                    let pages = p.total.div_ceil(u64::from(PER_PAGE)).max(1);
                    let current = page_nav.get_untracked();
                    view! {
                        <p class="muted count">{format!("{} {}", p.total, if p.total == 1 { "image" } else { "images" })}</p>
                        <ul class="grid">
                            {p.items.into_iter().map(|item| {
                                let open = open_set.clone();
                                let shown = item.clone();
                                view! {
                                    <li>
                                        <button type="button" class="thumb" title=item.prompt.clone()
                                            on:click=move |_| open.set(Some(shown.clone()))>
                                            <img src=item.thumb_url.clone() alt=item.prompt.clone()
                                                loading="lazy" width=item.width.to_string() height=item.height.to_string()/>
                                        </button>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                        <nav class="pager" aria-label="Pages">
                            <button type="button" class="secondary" disabled={current == 0}
                                on:click={
                                    let p = page_nav.clone();
                                    move |_| p.update(|n| *n = n.saturating_sub(1))
                                }>"Previous"</button>
                            <span>{format!("Page {} of {pages}", current + 1)}</span>
                            <button type="button" class="secondary" disabled={u64::from(current) + 1 >= pages}
                                on:click={
                                    let p = page_nav.clone();
                                    move |_| p.update(|n| *n += 1)
                                }>"Next"</button>
                        </nav>
                    }.into_any()
                }
            }}
            {
                let (open, api_key, reload) = (open.clone(), api_key.clone(), reload.clone());
                move || open.get().map(|item| lightbox(item, open.clone(), api_key.clone(), reload.clone()))
            }
        </section>
    }
}

fn lightbox(
    item: GalleryItem,
    open: ArcRwSignal<Option<GalleryItem>>,
    api_key: ArcRwSignal<String>,
    reload: ArcRwSignal<u32>,
) -> impl IntoView {
    let close = {
        let open = open.clone();
        move |_| open.set(None)
    };
    let on_key = {
        let open = open.clone();
        move |ev: leptos::ev::KeyboardEvent| {
            if ev.key() == "Escape" {
                open.set(None);
            }
        }
    };
    let error = ArcRwSignal::<Option<String>>::new(None);
    let on_delete = {
        let (id, error) = (item.id.clone(), error.clone());
        move |_| {
            if !confirm("Delete this image from the gallery?") {
                return;
            }
            let (id, key, open, reload, error) = (
                id.clone(),
                api_key.get_untracked(),
                open.clone(),
                reload.clone(),
                error.clone(),
            );
            leptos::task::spawn_local(async move {
                match crate::server_fns::delete_from_gallery(id, key).await {
                    Ok(_) => {
                        open.set(None);
                        reload.update(|r| *r += 1);
                    }
                    Err(e) => error.set(Some(server_message(&e.to_string()))),
                }
            });
        }
    };
    let copied = ArcRwSignal::new(false);
    let on_copy = {
        let (prompt, copied) = (item.prompt.clone(), copied.clone());
        move |_| {
            copy_text(&prompt);
            copied.set(true);
        }
    };
    let took = format!("{:.1} s", item.duration_ms as f64 / 1000.0);
    let when = local_time(item.created_at);
    let file_name = item.url.rsplit('/').next().unwrap_or("image").to_string();
    view! {
        <div class="lightbox" role="dialog" aria-modal="true" aria-label="Image details"
            tabindex="-1" on:keydown=on_key>
            <div class="panel">
                <img src=item.url.clone() alt=item.prompt.clone()
                    width=item.width.to_string() height=item.height.to_string()/>
                <dl>
                    <dt>"Prompt"</dt><dd class="prompt">{item.prompt.clone()}</dd>
                    {item.negative_prompt.clone().map(|n| view! { <dt>"Negative prompt"</dt><dd>{n}</dd> })}
                    <dt>"Model"</dt><dd>{item.model.clone()}</dd>
                    <dt>"Size"</dt><dd>{format!("{}x{}", item.width, item.height)}</dd>
                    <dt>"Seed"</dt><dd class="seed">{item.seed.clone()}</dd>
                    <dt>"Steps"</dt><dd>{item.steps.map_or("model default".to_string(), |s| s.to_string())}</dd>
                    <dt>"CFG"</dt><dd>{item.cfg.map_or("model default".to_string(), |c| c.to_string())}</dd>
                    <dt>"Time taken"</dt><dd>{took}</dd>
                    <dt>"Made"</dt><dd>{when}</dd>
                </dl>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <div class="actions">
                    <a class="button" href=item.url.clone() download=file_name>"Download"</a>
                    <button type="button" class="secondary" on:click=on_copy>
                        {move || if copied.get() { "Copied" } else { "Copy prompt" }}
                    </button>
                    <button type="button" class="danger" on:click=on_delete>"Delete"</button>
                    <button type="button" class="secondary" on:click=close>"Close"</button>
                </div>
            </div>
        </div>
    }
}

/// The message of a server function's error, without the framework's wording around it.
fn server_message(text: &str) -> String {
    text.split_once(": ")
        .filter(|(head, _)| head.contains("error"))
        .map_or(text, |(_, rest)| rest)
        .to_string()
}

#[cfg(feature = "hydrate")]
fn stored_key() -> String {
    web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item(KEY_STORAGE).ok().flatten())
        .unwrap_or_default()
}

#[cfg(feature = "hydrate")]
fn store_key(key: &str) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(KEY_STORAGE, key);
    }
}

#[cfg(feature = "hydrate")]
fn confirm(question: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(question).ok())
        .unwrap_or(false)
}

#[cfg(feature = "hydrate")]
fn copy_text(text: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}

#[cfg(feature = "hydrate")]
fn local_time(ms: i64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
        .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .into()
}

// The server renders the frame only; these run in the browser.
#[cfg(not(feature = "hydrate"))]
fn stored_key() -> String {
    let _ = KEY_STORAGE;
    String::new()
}

#[cfg(not(feature = "hydrate"))]
fn store_key(_key: &str) {}

#[cfg(not(feature = "hydrate"))]
fn confirm(_question: &str) -> bool {
    false
}

#[cfg(not(feature = "hydrate"))]
fn copy_text(_text: &str) {}

#[cfg(not(feature = "hydrate"))]
fn local_time(ms: i64) -> String {
    format!("{ms}")
}
