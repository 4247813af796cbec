//! The Chat page: a conversation with the bridge through the public `/v1/chat/completions`,
//! streamed, with ComfyUI's progress shown apart from the answer, images inline, an image
//! attached to edit it, and every conversation kept in this browser.

use std::collections::HashMap;

use leptos::prelude::*;

use super::{
    chat_text::{Conversation, Turn, code_spans},
    fetch::model_list,
    results::Cancel,
};

/// The page's state; reference-counted so the browser-only code can share it.
#[derive(Clone)]
pub(super) struct ChatState {
    pub conversations: ArcRwSignal<Vec<Conversation>>,
    pub current: ArcRwSignal<Option<String>>,
    /// The open conversation's turns, the last one growing while a reply streams.
    pub turns: ArcRwSignal<Vec<Turn>>,
    /// Image key → a URL the page can show (an object URL of the stored picture).
    pub urls: ArcRwSignal<HashMap<String, String>>,
    pub message: ArcRwSignal<String>,
    /// The key of the image going with the next message.
    pub attachment: ArcRwSignal<Option<String>>,
    pub model: ArcRwSignal<String>,
    pub busy: ArcRwSignal<bool>,
    pub cancel: ArcRwSignal<Option<Cancel>>,
    /// Trouble with the page itself (storage full, a file that is no image).
    pub notice: ArcRwSignal<Option<String>>,
    /// The connection panel's key, sent with each message.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub api_key: ArcRwSignal<String>,
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let state = ChatState {
        conversations: ArcRwSignal::new(Vec::new()),
        current: ArcRwSignal::new(None),
        turns: ArcRwSignal::new(Vec::new()),
        urls: ArcRwSignal::new(HashMap::new()),
        message: ArcRwSignal::new(String::new()),
        attachment: ArcRwSignal::new(None),
        model: ArcRwSignal::new(String::new()),
        busy: ArcRwSignal::new(false),
        cancel: ArcRwSignal::new(None),
        notice: ArcRwSignal::new(None),
        api_key: super::connection::use_connection().api_key,
    };
    browser::restore(&state);
    browser::listen_for_paste(&state);
    // A message refused for the key: the panel opens at the key field.
    Effect::new({
        let (busy, turns) = (state.busy.clone(), state.turns.clone());
        let connection = super::connection::use_connection();
        move |was_busy: Option<bool>| {
            let busy = busy.get();
            let failed = turns.with_untracked(|t| t.last().is_some_and(|t| t.error.is_some()));
            if was_busy == Some(true) && !busy && failed && connection.key_refused() {
                connection.ask_for_key();
            }
            busy
        }
    });
    let models = model_list();
    view! {
        <section class="card chat">
            <h2>"Chat"</h2>
            <div class="chat-layout">
                {conversation_list(&state)}
                <div class="thread">
                    {thread(&state)}
                    {composer(&state, models)}
                </div>
            </div>
        </section>
    }
}

fn conversation_list(state: &ChatState) -> impl IntoView + use<> {
    let (list, current, busy) = (
        state.conversations.clone(),
        state.current.clone(),
        state.busy.clone(),
    );
    let (new_chat, pick, delete) = (state.clone(), state.clone(), state.clone());
    let (open_now, busy_now) = (state.current.clone(), state.busy.clone());
    let query = ArcRwSignal::new(String::new());
    let (query_in, query_out, query_none) = (query.clone(), query.clone(), query.clone());
    let (all, none_match) = (state.conversations.clone(), state.conversations.clone());
    view! {
        <nav class="conversations" aria-label="Conversations">
            <button type="button" class="secondary" disabled=move || busy.get()
                on:click=move |_| browser::open(&new_chat, None)>"New chat"</button>
            <label class="search" hidden=move || all.with(Vec::is_empty)>"Search chats"
                <input type="search" name="chat-search" autocomplete="off"
                    prop:value=move || query_out.get()
                    on:input=move |ev| query_in.set(event_target_value(&ev))/>
            </label>
            <p class="muted" aria-live="polite">{move || {
                let q = query_none.get();
                let found = none_match.with(|l| l.iter().any(|c| c.matches(&q)));
                (!found && !q.trim().is_empty()).then_some("No chats match.")
            }}</p>
            <ul>
                {move || {
                    let open = current.get();
                    let q = query.get();
                    list.get().into_iter().filter(|c| c.matches(&q)).map(|c| {
                        let here = open.as_deref() == Some(c.id.as_str());
                        let (state, id, busy) = (pick.clone(), c.id.clone(), pick.busy.clone());
                        view! {
                            <li>
                                <button type="button" class="link" aria-current=here.then_some("true")
                                    disabled=move || busy.get()
                                    on:click=move |_| browser::open(&state, Some(id.clone()))>{c.title}</button>
                            </li>
                        }
                    }).collect_view()
                }}
            </ul>
            <Show when=move || open_now.with(Option::is_some)>
                {rename(&delete)}
                <button type="button" class="secondary danger-text" disabled={
                    let busy = busy_now.clone();
                    move || busy.get()
                } on:click={
                    let state = delete.clone();
                    move |_| browser::delete_current(&state)
                }>"Delete this chat"</button>
            </Show>
        </nav>
    }
}

/// "Rename", opening a small form with the chat's name; Enter keeps it, Escape leaves it.
fn rename(state: &ChatState) -> impl IntoView + use<> {
    let editing = ArcRwSignal::new(false);
    let field = NodeRef::<leptos::html::Input>::new();
    let title = {
        let state = state.clone();
        move || {
            let id = state.current.get_untracked();
            state.conversations.with_untracked(|l| {
                l.iter()
                    .find(|c| Some(&c.id) == id.as_ref())
                    .map(|c| c.title.clone())
            })
        }
    };
    let (open, shown, hidden) = (editing.clone(), editing.clone(), editing.clone());
    let (save, cancel, escape) = (editing.clone(), editing.clone(), editing);
    let state = state.clone();
    let (busy, named) = (state.busy.clone(), state.clone());
    view! {
        <button type="button" class="secondary" hidden=move || shown.get()
            disabled=move || busy.get()
            on:click=move |_| {
                // Only a chat already kept has a name to change.
                let Some(current) = title() else { return };
                open.set(true);
                request_animation_frame(move || {
                    if let Some(input) = field.get_untracked() {
                        input.set_value(&current);
                        let _ = input.focus();
                        input.select();
                    }
                });
            }>"Rename"</button>
        <form class="rename" hidden=move || !hidden.get()
            on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                if let Some(input) = field.get_untracked() {
                    browser::rename_current(&named, &input.value());
                }
                save.set(false);
            }
            on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                if ev.key() == "Escape" {
                    ev.prevent_default();
                    escape.set(false);
                }
            }>
            <label>"Chat name"
                <input name="chat-title" node_ref=field autocomplete="off"/>
            </label>
            <button type="submit" class="small">"Save"</button>
            <button type="button" class="secondary small" on:click=move |_| cancel.set(false)>"Cancel"</button>
        </form>
    }
}

fn thread(state: &ChatState) -> impl IntoView + use<> {
    let (turns, empty, urls) = (state.turns.clone(), state.turns.clone(), state.urls.clone());
    let busy = state.busy.clone();
    let notice = state.notice.clone();
    let state = state.clone();
    view! {
        <Show when=move || empty.with(Vec::is_empty)>
            <p class="muted">"Describe an image to make it. Attach a picture, or use “Edit this image” on one made here, to change it."</p>
        </Show>
        <ol class="turns" aria-live="polite">
            {move || {
                let all = turns.get();
                let last = all.len().saturating_sub(1);
                let streaming = busy.get();
                let urls = urls.get();
                all.into_iter().enumerate().map(|(i, turn)| {
                    let place = match (i == last, streaming) {
                        (true, true) => Place::Streaming,
                        (true, false) => Place::Last,
                        _ => Place::Earlier,
                    };
                    turn_view(turn, &urls, place, &state)
                }).collect_view()
            }}
        </ol>
        {move || notice.get().map(|n| view! { <p class="error" role="alert">{n}</p> })}
    }
}

/// Where a turn stands in the thread: the last reply can be asked for again once it is done.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Earlier,
    Last,
    Streaming,
}

fn turn_view(
    turn: Turn,
    urls: &HashMap<String, String>,
    place: Place,
    state: &ChatState,
) -> impl IntoView + use<> {
    let streaming = place == Place::Streaming;
    let image = |key: &String, alt: String| {
        let src = urls.get(key).cloned();
        (key.clone(), src, alt)
    };
    if turn.role == "user" {
        let images: Vec<_> = turn
            .images
            .iter()
            .map(|k| image(k, "attached image".into()))
            .collect();
        return view! {
            <li class="turn user">
                {images.into_iter().map(|(_, src, alt)| view! {
                    <img class="attached" src=src alt=alt/>
                }).collect_view()}
                <p>{turn.text}</p>
            </li>
        }
        .into_any();
    }
    let alt = turn.text.clone();
    let images: Vec<_> = turn.images.iter().map(|k| image(k, alt.clone())).collect();
    let has_reasoning = !turn.reasoning.is_empty();
    // Width and height hold each image's place while it loads.
    let (width, height) = turn
        .made
        .as_ref()
        .map(|m| (m.size.width.to_string(), m.size.height.to_string()))
        .unzip();
    view! {
        <li class="turn assistant" aria-busy=streaming.then_some("true")>
            <Show when=move || has_reasoning>
                <details class="progress" open=streaming>
                    <summary>{if streaming { "Working…" } else { "Progress" }}</summary>
                    <pre>{turn.reasoning.clone()}</pre>
                </details>
            </Show>
            <div class="made">
                {images.into_iter().map(|(key, src, alt)| {
                    let (state, width, height) = (state.clone(), width.clone(), height.clone());
                    view! {
                        <figure>
                            <img class="made" src=src alt=alt width=width height=height/>
                            <button type="button" class="secondary"
                                on:click=move |_| state.attachment.set(Some(key.clone()))>"Edit this image"</button>
                        </figure>
                    }
                }).collect_view()}
            </div>
            <p class="answer">
                // The words alone: the reply's images were taken out when it was read.
                {code_spans(&turn.text).into_iter().map(|(code, text)| if code {
                    view! { <code>{text}</code> }.into_any()
                } else {
                    view! { <span>{text}</span> }.into_any()
                }).collect_view()}
            </p>
            {turn.error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {(place == Place::Last).then(|| {
                let state = state.clone();
                view! {
                    <button type="button" class="secondary small regenerate"
                        title="Send the last message again and replace this reply"
                        on:click=move |_| browser::regenerate(&state)>"Regenerate"</button>
                }
            })}
        </li>
    }
    .into_any()
}

fn composer(
    state: &ChatState,
    models: ArcRwSignal<Option<Result<crate::api::models::ModelList, String>>>,
) -> impl IntoView + use<> {
    let (message_in, message_out) = (state.message.clone(), state.message.clone());
    let (attachment, attached, urls) = (
        state.attachment.clone(),
        state.attachment.clone(),
        state.urls.clone(),
    );
    let (busy, running, shown) = (state.busy.clone(), state.busy.clone(), state.busy.clone());
    let (send, enter, pick, stop) = (state.clone(), state.clone(), state.clone(), state.clone());
    let dropped = state.clone();
    let (model_in, model_sel) = (state.model.clone(), state.model.clone());
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        browser::send(&send);
    };
    // Enter sends; Shift+Enter starts a new line.
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            browser::send(&enter);
        }
    };
    view! {
        <form class="composer" on:submit=on_submit
            on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
            on:drop=move |ev| browser::drop_file(&dropped, ev)>
            {move || attached.get().map(|key| {
                let src = urls.with(|u| u.get(&key).cloned());
                let attachment = attachment.clone();
                view! {
                    <div class="attachment">
                        <img src=src alt="The image to edit"/>
                        <span>"This image goes with your message, to be edited."</span>
                        <button type="button" class="secondary" on:click=move |_| attachment.set(None)>"Remove"</button>
                    </div>
                }
            })}
            <label class="message">"Message"
                <textarea name="message" rows="2" placeholder="Describe an image, or how to change the attached one (drop or paste a picture to attach it)"
                    prop:value=move || message_out.get()
                    on:input=move |ev| message_in.set(event_target_value(&ev))
                    on:keydown=on_key></textarea>
            </label>
            <div class="composer-row">
                <label class="inline">"Attach an image"
                    <input type="file" name="attach" accept="image/png,image/jpeg,image/webp"
                        on:change=move |ev| browser::attach_file(&pick, ev)/>
                </label>
                <label class="inline">"Model"
                    <select name="model" on:change=move |ev| model_in.set(event_target_value(&ev))>
                        <option value="">"Automatic"</option>
                        {move || models.get().and_then(Result::ok).map(|list| list.data.into_iter().map(|m| {
                            let selected = m.id == model_sel.get_untracked();
                            view! { <option value=m.id.clone() selected=selected>{m.id.clone()}</option> }
                        }).collect_view())}
                    </select>
                </label>
                <button type="submit" disabled=move || busy.get()>
                    {move || if running.get() { "Working…" } else { "Send" }}
                </button>
                <Show when=move || shown.get()>
                    <button type="button" class="secondary" on:click={
                        let stop = stop.clone();
                        move |_| stop.cancel.set(None)
                    }>"Cancel"</button>
                </Show>
            </div>
        </form>
    }
}

#[cfg(feature = "hydrate")]
#[path = "chat_browser.rs"]
mod browser;

/// The server renders an empty conversation; history, sending and images live in the browser.
#[cfg(not(feature = "hydrate"))]
mod browser {
    use super::ChatState;

    pub fn restore(_: &ChatState) {}
    pub fn open(_: &ChatState, _: Option<String>) {}
    pub fn send(_: &ChatState) {}
    pub fn attach_file(_: &ChatState, _: leptos::ev::Event) {}
    pub fn drop_file(_: &ChatState, _: leptos::ev::DragEvent) {}
    pub fn listen_for_paste(_: &ChatState) {}
    pub fn regenerate(_: &ChatState) {}
    pub fn rename_current(_: &ChatState, _: &str) {}
    pub fn delete_current(_: &ChatState) {}
}
