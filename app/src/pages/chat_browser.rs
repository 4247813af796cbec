//! The Chat page's browser side: conversations in local storage, their images in IndexedDB,
//! and the streamed reply read into the open conversation.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::Blob;

use super::ChatState;
use crate::pages::{
    chat_text::{ChatUpdate, Conversation, Piece, Turn, pieces, read_chunk, regeneration, request},
    local_images,
    stream::{self, Body, Outcome},
};

const CHATS: &str = "comfyui-bridge.chats";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

fn now() -> f64 {
    js_sys::Date::now()
}

fn new_id() -> String {
    format!(
        "{:x}{:08x}",
        now() as u64,
        (js_sys::Math::random() * f64::from(u32::MAX)) as u32
    )
}

/// Loads the kept conversations and opens the newest.
pub fn restore(state: &ChatState) {
    let state = state.clone();
    Effect::new(move |_| {
        let mut list: Vec<Conversation> = storage()
            .and_then(|s| s.get_item(CHATS).ok().flatten())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        list.sort_by(|a, b| b.updated.total_cmp(&a.updated));
        let newest = list.first().map(|c| c.id.clone());
        state.conversations.set(list);
        open(&state, newest);
    });
}

/// Opens a conversation (`None`: a new, empty one) and loads its images.
pub fn open(state: &ChatState, id: Option<String>) {
    let turns = id
        .as_ref()
        .and_then(|id| {
            state
                .conversations
                .with_untracked(|l| l.iter().find(|c| &c.id == id).map(|c| c.turns.clone()))
        })
        .unwrap_or_default();
    state.current.set(id);
    state.notice.set(None);
    state.attachment.set(None);
    let keys: Vec<String> = turns.iter().flat_map(|t| t.images.clone()).collect();
    state.turns.set(turns);
    let state = state.clone();
    leptos::task::spawn_local(async move {
        for key in keys {
            if state.urls.with_untracked(|u| u.contains_key(&key)) {
                continue;
            }
            if let Ok(Some(blob)) = local_images::get(&key).await
                && let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob)
            {
                state.urls.update(|u| {
                    u.insert(key, url);
                });
            }
        }
    });
}

/// Writes the open conversation back into the list and the list into local storage.
fn save(state: &ChatState) {
    let Some(id) = state.current.get_untracked() else {
        return;
    };
    let turns = state.turns.get_untracked();
    state.conversations.update(|list| {
        // A name given by hand stays.
        let named = list
            .iter()
            .find(|c| c.id == id && c.renamed)
            .map(|c| c.title.clone());
        let title = named.clone().unwrap_or_else(|| {
            turns
                .iter()
                .find(|t| t.role == "user")
                .map(|t| Conversation::title_from(&t.text))
                .unwrap_or_else(|| "New chat".into())
        });
        list.retain(|c| c.id != id);
        list.insert(
            0,
            Conversation {
                id,
                title,
                updated: now(),
                turns,
                renamed: named.is_some(),
            },
        );
    });
    write_list(state);
}

fn write_list(state: &ChatState) {
    let text = state
        .conversations
        .with_untracked(|l| serde_json::to_string(l).unwrap_or_default());
    let saved = storage().is_some_and(|s| s.set_item(CHATS, &text).is_ok());
    if !saved {
        state.notice.set(Some(
            "This browser's storage is full: the conversation could not be kept. Delete old chats to make room."
                .into(),
        ));
    }
}

pub fn delete_current(state: &ChatState) {
    let Some(id) = state.current.get_untracked() else {
        return;
    };
    let asked = web_sys::window()
        .and_then(|w| {
            w.confirm_with_message("Delete this chat and its images?")
                .ok()
        })
        .unwrap_or(false);
    if !asked {
        return;
    }
    let keys: Vec<String> = state
        .turns
        .get_untracked()
        .into_iter()
        .flat_map(|t| t.images)
        .collect();
    state.conversations.update(|l| l.retain(|c| c.id != id));
    write_list(state);
    open(state, None);
    leptos::task::spawn_local(async move {
        for key in keys {
            let _ = local_images::delete(&key).await;
        }
    });
}

/// Gives the open chat a name of its own; a blank one goes back to the first prompt's words.
pub fn rename_current(state: &ChatState, title: &str) {
    let Some(id) = state.current.get_untracked() else {
        return;
    };
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    state.conversations.update(|list| {
        if let Some(c) = list.iter_mut().find(|c| c.id == id) {
            c.renamed = !title.is_empty();
            c.title = if title.is_empty() {
                c.turns
                    .iter()
                    .find(|t| t.role == "user")
                    .map(|t| Conversation::title_from(&t.text))
                    .unwrap_or_else(|| "New chat".into())
            } else {
                title
            };
        }
    });
    write_list(state);
}

/// Keeps a picked file as the next message's image.
pub fn attach_file(state: &ChatState, ev: leptos::ev::Event) {
    let file = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| {
            let file = input.files().and_then(|f| f.get(0));
            input.set_value("");
            file
        });
    if let Some(file) = file {
        attach(state, file);
    }
}

/// A file dropped on the composer goes with the next message, as a picked one does.
pub fn drop_file(state: &ChatState, ev: leptos::ev::DragEvent) {
    if let Some(file) = local_images::dropped_file(&ev) {
        attach(state, file);
    }
}

/// A pasted image (Ctrl+V anywhere on the page) goes with the next message; pasted text is
/// left to the message field.
pub fn listen_for_paste(state: &ChatState) {
    let state = state.clone();
    local_images::on_pasted_file(move |file| attach(&state, file));
}

fn attach(state: &ChatState, file: web_sys::File) {
    if !file.type_().starts_with("image/") {
        state.notice.set(Some(
            "That file is not an image (PNG, JPEG or WebP).".into(),
        ));
        return;
    }
    let state = state.clone();
    leptos::task::spawn_local(async move {
        match keep_image(&state, &file).await {
            Ok(key) => state.attachment.set(Some(key)),
            Err(e) => state.notice.set(Some(e)),
        }
    });
}

/// Stores a picture under a new key and gives the page a URL for it.
async fn keep_image(state: &ChatState, blob: &Blob) -> Result<String, String> {
    let key = new_id();
    local_images::put(&key, blob)
        .await
        .map_err(|_| "The image could not be kept in this browser.".to_string())?;
    if let Ok(url) = web_sys::Url::create_object_url_with_blob(blob) {
        state.urls.update(|u| {
            u.insert(key.clone(), url);
        });
    }
    Ok(key)
}

/// Sends the message (and attached image) and streams the reply into a new turn.
pub fn send(state: &ChatState) {
    let text = state.message.get_untracked();
    if text.trim().is_empty() || state.busy.get_untracked() {
        return;
    }
    let attachment = state.attachment.get_untracked();
    start(state, text, attachment, true);
}

/// Asks again for the last reply: the conversation up to the last user message is sent as it
/// was, and the new reply takes the old one's place (its images are let go).
pub fn regenerate(state: &ChatState) {
    if state.busy.get_untracked() {
        return;
    }
    let turns = state.turns.get_untracked();
    let Some((before, text, image)) = regeneration(&turns) else {
        return;
    };
    let replaced: Vec<String> = turns[before.len() + 1..]
        .iter()
        .flat_map(|t| t.images.clone())
        .collect();
    state.turns.set(before);
    start(state, text, image, false);
    leptos::task::spawn_local(async move {
        for key in replaced {
            let _ = local_images::delete(&key).await;
        }
    });
}

/// Brings the newest reply into view: its top, where its progress and first image are.
fn scroll_to_reply() {
    request_animation_frame(|| {
        let reply = document()
            .query_selector(".turns > li.assistant:last-child")
            .ok()
            .flatten();
        if let Some(reply) = reply {
            reply.scroll_into_view_with_bool(true);
        }
    });
}

/// Sends `text` (with the image kept under `attachment`) after the open conversation's turns,
/// and streams the reply into a new turn. From the composer, its fields are emptied.
fn start(state: &ChatState, text: String, attachment: Option<String>, from_composer: bool) {
    let state = state.clone();
    leptos::task::spawn_local(async move {
        let image = match &attachment {
            Some(key) => match image_data_url(key).await {
                Ok(url) => Some(url),
                Err(e) => {
                    state.notice.set(Some(e));
                    return;
                }
            },
            None => None,
        };
        if state.current.get_untracked().is_none() {
            state.current.set(Some(new_id()));
        }
        let history = state.turns.get_untracked();
        let body = request(&history, &text, image, Some(state.model.get_untracked()));
        state.turns.update(|t| {
            t.push(Turn {
                role: "user".into(),
                text: text.clone(),
                images: attachment.into_iter().collect(),
                ..Default::default()
            });
            t.push(Turn {
                role: "assistant".into(),
                ..Default::default()
            });
        });
        if from_composer {
            state.message.set(String::new());
            state.attachment.set(None);
        }
        state.notice.set(None);
        state.busy.set(true);
        save(&state);
        scroll_to_reply();
        let (tx, rx) = futures::channel::oneshot::channel();
        state.cancel.set(Some(tx));

        let mut content = String::new();
        let last = |state: &ChatState, f: &dyn Fn(&mut Turn)| {
            state.turns.update(|t| {
                if let Some(turn) = t.last_mut() {
                    f(turn)
                }
            })
        };
        let outcome = stream::send(
            Body::Chat(Box::new(body)),
            &state.api_key.get_untracked(),
            rx,
            |data| {
                for update in read_chunk(data) {
                    match update {
                        ChatUpdate::Reasoning(r) => last(&state, &|t| {
                            if !t.reasoning.is_empty() {
                                t.reasoning.push('\n');
                            }
                            t.reasoning.push_str(r.trim_end());
                        }),
                        ChatUpdate::Content(c) => {
                            content.push_str(&c);
                            let shown = reply_text(&content);
                            last(&state, &|t| t.text = shown.clone());
                        }
                        ChatUpdate::Made(made) => last(&state, &|t| t.made = Some(made.clone())),
                        ChatUpdate::Failed(e) => last(&state, &|t| t.error = Some(e.clone())),
                    }
                }
            },
        )
        .await;
        let mut keys = Vec::new();
        for piece in pieces(&content) {
            if let Piece::Image { src, .. } = piece {
                match local_images::fetch_blob(&src).await {
                    Ok(blob) => match keep_image(&state, &blob).await {
                        Ok(key) => keys.push(key),
                        Err(e) => state.notice.set(Some(e)),
                    },
                    Err(e) => state.notice.set(Some(e)),
                }
            }
        }
        let failure = match outcome {
            Ok(Outcome::Finished) => None,
            Ok(Outcome::Cancelled) => Some("Cancelled.".to_string()),
            Err(e) => Some(e),
        };
        let text = reply_text(&content);
        last(&state, &|t| {
            t.text = text.clone();
            t.images = keys.clone();
            if let Some(f) = &failure {
                t.error = Some(f.clone());
            }
        });
        state.busy.set(false);
        state.cancel.set(None);
        save(&state);
        scroll_to_reply();
    });
}

/// The reply's words, without its images.
fn reply_text(content: &str) -> String {
    pieces(content)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Text(t) => Some(t),
            Piece::Image { .. } => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A kept picture as a `data:` URL, the form a chat message carries images in.
async fn image_data_url(key: &str) -> Result<String, String> {
    let lost = || String::from("The attached image is no longer in this browser.");
    let blob = local_images::get(key)
        .await
        .ok()
        .flatten()
        .ok_or_else(lost)?;
    local_images::data_url(&blob).await.ok_or_else(lost)
}
