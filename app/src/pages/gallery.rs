//! The gallery page: every image the bridge kept, newest first, searchable by prompt and
//! filtered by model, each opening in the viewer, which tells how it was made.

use leptos::prelude::*;

use super::{
    connection::use_connection,
    viewer::{Shown, ToEdit, Viewer, alt_text},
};
use crate::api::gallery::{GalleryItem, GalleryPage, GalleryQuery};

const PER_PAGE: u32 = 24;

#[component]
pub fn GalleryView() -> impl IntoView {
    // Reference-counted state, loaded by the browser only: server rendering shows the frame and
    // never waits on (or loses) gallery data.
    // The search form also works before the page is hydrated, as a plain GET of
    // `/gallery?search=…`; the address is read once, here, outside any Suspense.
    let address = leptos_router::hooks::use_query_map().get_untracked();
    let initial_search = address.get("search").unwrap_or_default();
    let page = ArcRwSignal::new(0u32);
    let search = ArcRwSignal::new(initial_search.clone());
    let model = ArcRwSignal::new(address.get("model").unwrap_or_default());
    // The connection panel's key: entering it there reloads the page's images.
    let api_key = use_connection().api_key;
    let data = ArcRwSignal::<Option<Result<GalleryPage, String>>>::new(None);
    let viewer = Viewer::new();
    let reload = ArcRwSignal::new(0u32);
    // The page's images, which ←/→ go through in the viewer.
    let items = {
        let data = data.clone();
        Memo::new(move |_| {
            data.with(|d| match d {
                Some(Ok(p)) => p.items.clone(),
                _ => Vec::new(),
            })
        })
    };

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

    let search_box = ArcRwSignal::new(initial_search.clone());
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
    let (data_view, open_set, page_nav, model_sel) =
        (data.clone(), viewer.clone(), page.clone(), model.clone());
    let (search_shown, model_shown) = (search.clone(), model.clone());
    view! {
        <section class="card gallery">
            <h2>"Gallery"</h2>
            <div class="toolbar">
                <form class="search" role="search" method="get" on:submit=on_search>
                    <input name="search" type="search" placeholder="Search prompts" value=initial_search
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
                    let hint = e.contains("API key")
                        .then_some("Enter the server's API key in the connection panel at the top of the page.");
                    view! {
                        <p class="error" role="alert">{e}</p>
                        {hint.map(|h| view! { <p class="muted">{h}</p> })}
                    }.into_any()
                }
                Some(Ok(p)) if p.items.is_empty() => {
                    let filtered = !search_shown.get_untracked().trim().is_empty()
                        || !model_shown.get_untracked().is_empty();
                    if filtered {
                        view! { <p class="muted">"No images match this search."</p> }.into_any()
                    } else {
                        view! {
                            <p class="muted">"No images yet. Make some on the Generate page or through the API."</p>
                        }.into_any()
                    }
                }
                Some(Ok(p)) => {
                    let pages = p.total.div_ceil(u64::from(PER_PAGE)).max(1);
                    let current = page_nav.get_untracked();
                    view! {
                        <p class="muted count">{format!("{} {}", p.total, if p.total == 1 { "image" } else { "images" })}</p>
                        <ul class="grid">
                            {p.items.into_iter().enumerate().map(|(i, item)| {
                                let viewer = open_set.clone();
                                view! {
                                    <li>
                                        <button type="button" class="thumb" title=item.prompt.clone()
                                            aria-haspopup="dialog"
                                            on:click=move |ev| viewer.show(i, &ev)>
                                            <img src=item.thumb_url.clone() alt=alt_text(&item.prompt)
                                                loading="lazy" width=item.width.to_string() height=item.height.to_string()/>
                                        </button>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                        <nav class="pager" aria-label="Gallery pages">
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
            {viewer.view(
                "Image details",
                Signal::derive(move || items.get().iter().map(shown).collect()),
                details(&viewer, items, api_key, reload),
            )}
        </section>
    }
}

fn shown(item: &GalleryItem) -> Shown {
    Shown {
        src: item.url.clone(),
        prompt: item.prompt.clone(),
        seed: Some(item.seed.clone()),
        file_name: item.url.rsplit('/').next().unwrap_or("image").to_string(),
        size: Some((item.width, item.height)),
        to_edit: ToEdit::Address(edit_link(item)),
        settings: Some(settings_link(item)),
    }
}

/// The gallery's part of the viewer: how the image shown was made, copying its prompt, and
/// deleting it.
fn details(
    viewer: &Viewer,
    items: Memo<Vec<GalleryItem>>,
    api_key: ArcRwSignal<String>,
    reload: ArcRwSignal<u32>,
) -> impl IntoView + use<> {
    let item = {
        let open = viewer.open.clone();
        Memo::new(move |_| {
            open.get()
                .and_then(|i| items.with(|all| all.get(i).cloned()))
        })
    };
    let error = ArcRwSignal::<Option<String>>::new(None);
    // An error belongs to the image it was about.
    Effect::new({
        let error = error.clone();
        move |_| {
            item.track();
            error.set(None);
        }
    });
    let on_delete = {
        let (viewer, error) = (viewer.clone(), error.clone());
        move |_| {
            let Some(id) = item.get_untracked().map(|i| i.id) else {
                return;
            };
            if !confirm("Delete this image from the gallery?") {
                return;
            }
            let (key, viewer, reload, error) = (
                api_key.get_untracked(),
                viewer.clone(),
                reload.clone(),
                error.clone(),
            );
            leptos::task::spawn_local(async move {
                match crate::server_fns::delete_from_gallery(id, key).await {
                    Ok(_) => {
                        viewer.close();
                        reload.update(|r| *r += 1);
                    }
                    Err(e) => error.set(Some(server_message(&e.to_string()))),
                }
            });
        }
    };
    let on_copy = {
        let viewer = viewer.clone();
        move |_| {
            if let Some(prompt) = item.get_untracked().map(|i| i.prompt) {
                viewer.copy(prompt, "Prompt copied.".into());
            }
        }
    };
    view! {
        <div class="viewer-info">
            {move || item.get().map(|item| {
                let took = format!("{:.1} s", item.duration_ms as f64 / 1000.0);
                view! {
                    <dl>
                        <dt>"Prompt"</dt><dd class="prompt">{item.prompt.clone()}</dd>
                        {item.negative_prompt.clone().map(|n| view! { <dt>"Negative prompt"</dt><dd>{n}</dd> })}
                        <dt>"Model"</dt><dd class="model">{item.model.clone()}</dd>
                        <dt>"Size"</dt><dd>{format!("{}x{}", item.width, item.height)}</dd>
                        <dt>"Seed"</dt><dd class="seed">{item.seed.clone()}</dd>
                        <dt>"Steps"</dt><dd>{item.steps.map_or("model default".to_string(), |s| s.to_string())}</dd>
                        <dt>"CFG"</dt><dd>{item.cfg.map_or("model default".to_string(), |c| c.to_string())}</dd>
                        <dt>"Time taken"</dt><dd>{took}</dd>
                        <dt>"Made"</dt><dd>{local_time(item.created_at)}</dd>
                    </dl>
                }
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button type="button" class="secondary" on:click=on_copy>"Copy prompt"</button>
                <button type="button" class="danger" on:click=on_delete>"Delete"</button>
            </div>
        </div>
    }
}

/// The Generate page with this image's prompt, model, size, seed, steps and CFG filled in.
fn settings_link(item: &GalleryItem) -> String {
    let mut pairs = vec![
        ("prompt", item.prompt.clone()),
        ("model", item.model.clone()),
        ("size", format!("{}x{}", item.width, item.height)),
        ("seed", item.seed.clone()),
    ];
    if let Some(n) = &item.negative_prompt {
        pairs.push(("negative_prompt", n.clone()));
    }
    if let Some(steps) = item.steps {
        pairs.push(("steps", steps.to_string()));
    }
    if let Some(cfg) = item.cfg {
        pairs.push(("cfg", cfg.to_string()));
    }
    let query: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", encode_component(&v)))
        .collect();
    format!("/?{}", query.join("&"))
}

/// The Edit page with this image loaded and its prompt to start from.
fn edit_link(item: &GalleryItem) -> String {
    format!(
        "/edit?image={}&prompt={}",
        encode_component(&item.url),
        encode_component(&item.prompt)
    )
}

/// Percent-encodes everything but unreserved characters, as `encodeURIComponent` does.
fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The message of a server function's error, without the framework's wording around it.
fn server_message(text: &str) -> String {
    text.split_once(": ")
        .filter(|(head, _)| head.contains("error"))
        .map_or(text, |(_, rest)| rest)
        .to_string()
}

#[cfg(feature = "hydrate")]
fn confirm(question: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(question).ok())
        .unwrap_or(false)
}

#[cfg(feature = "hydrate")]
fn local_time(ms: i64) -> String {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64))
        .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .into()
}

// The server renders the frame only; these run in the browser.
#[cfg(not(feature = "hydrate"))]
fn confirm(_question: &str) -> bool {
    false
}

#[cfg(not(feature = "hydrate"))]
fn local_time(ms: i64) -> String {
    format!("{ms}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_travel_in_the_link() {
        let item = GalleryItem {
            id: "a".into(),
            created_at: 0,
            prompt: "a fox & a hen, 100%".into(),
            negative_prompt: None,
            model: "sdxl".into(),
            width: 512,
            height: 768,
            seed: "18446744073709551615".into(),
            steps: Some(20),
            cfg: None,
            duration_ms: 1,
            url: String::new(),
            thumb_url: String::new(),
        };
        assert_eq!(
            settings_link(&item),
            "/?prompt=a%20fox%20%26%20a%20hen%2C%20100%25&model=sdxl&size=512x768\
             &seed=18446744073709551615&steps=20"
        );
    }
}
