#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

//! Reading a streamed generation in the browser: the event stream split into events, and each
//! event turned into what the page shows for one image.

use crate::api::{
    images::{ImageEvent, ImageProgress, ProgressStatus},
    stream::StreamEvent,
};

/// Collects an event stream as it arrives and hands out the `data:` of each complete event.
/// Bytes are kept until an event is whole, so a character split across chunks survives.
#[derive(Default)]
pub struct SseBuffer {
    pending: Vec<u8>,
}

impl SseBuffer {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

/// What one event of an image stream says.
#[derive(Debug, PartialEq)]
pub enum Update {
    Queued {
        index: usize,
        ahead: Option<u64>,
    },
    Running {
        index: usize,
    },
    Step {
        index: usize,
        step: u64,
        steps: u64,
    },
    Partial {
        index: usize,
        data_url: String,
    },
    Done {
        index: usize,
        data_url: String,
        seed: Option<u64>,
    },
    Failed(String),
}

/// Reads one event's data; `next_done` places completed events that carry no index.
pub fn read_event(data: &str, next_done: usize) -> Option<Update> {
    let image = match StreamEvent::parse(data)? {
        StreamEvent::Error(e) => return Some(Update::Failed(e.error.message)),
        StreamEvent::Image(event) => event,
        StreamEvent::Chat(_) => return None,
    };
    let index = |i: Option<u32>| i.map_or(next_done, |i| i as usize);
    Some(match image {
        ImageEvent::GenerationProgress(p) | ImageEvent::EditProgress(p) => progress(p),
        ImageEvent::GenerationPartial(p) | ImageEvent::EditPartial(p) => Update::Partial {
            index: index(p.image_index),
            data_url: p.data_url(),
        },
        ImageEvent::GenerationCompleted(p) | ImageEvent::EditCompleted(p) => Update::Done {
            index: index(p.image_index),
            data_url: p.data_url(),
            seed: p.seed,
        },
    })
}

fn progress(p: ImageProgress) -> Update {
    let index = p.image_index as usize;
    match (p.status, p.step, p.steps) {
        (ProgressStatus::Queued, ..) => Update::Queued {
            index,
            ahead: p.queue_position.map(u64::from),
        },
        (ProgressStatus::Sampling, Some(step), Some(steps)) => Update::Step { index, step, steps },
        _ => Update::Running { index },
    }
}

/// What a streamed request sends: a generation or a chat as JSON, or an edit as the multipart
/// form every OpenAI client sends (the browser writes its boundary).
pub enum Body {
    Generate(Box<crate::api::images::ImageGenerationRequest>),
    Chat(Box<crate::api::chat::ChatCompletionRequest>),
    #[cfg(feature = "hydrate")]
    Edit(web_sys::FormData),
}

/// Sends a streamed generation or edit and calls `on_update` for each event; see [`send`].
#[cfg(feature = "hydrate")]
pub async fn run(
    body: Body,
    api_key: &str,
    cancel: futures::channel::oneshot::Receiver<()>,
    mut on_update: impl FnMut(Update),
) -> Result<Outcome, String> {
    let mut done = 0;
    send(body, api_key, cancel, |data| {
        if let Some(update) = read_event(data, done) {
            if matches!(update, Update::Done { .. }) {
                done += 1;
            }
            on_update(update);
        }
    })
    .await
}

/// Sends a streamed request and calls `on_data` with each event's data until the stream ends or
/// `cancel` fires (or its sender is dropped), which aborts the request: the bridge sees the
/// client go and cancels the job in ComfyUI. An HTTP error comes back in the envelope's words.
#[cfg(feature = "hydrate")]
pub async fn send(
    body: Body,
    api_key: &str,
    mut cancel: futures::channel::oneshot::Receiver<()>,
    mut on_data: impl FnMut(&str),
) -> Result<Outcome, String> {
    use futures::future::{Either, select};
    use wasm_bindgen::JsCast;

    let controller =
        web_sys::AbortController::new().map_err(|_| "this browser cannot cancel requests")?;
    let path = match body {
        Body::Generate(_) => "/v1/images/generations",
        Body::Chat(_) => "/v1/chat/completions",
        Body::Edit(_) => "/v1/images/edits",
    };
    // The web app's images are kept in the gallery even when it keeps no others (GALLERY=ui).
    let mut req = gloo_net::http::Request::post(path)
        .abort_signal(Some(&controller.signal()))
        .header("X-Bridge-Gallery", "keep");
    if !api_key.is_empty() {
        req = req.header("Authorization", &format!("Bearer {api_key}"));
    }
    let req = match body {
        Body::Generate(request) => req.json(&request),
        Body::Chat(request) => req.json(&request),
        Body::Edit(form) => req.body(form),
    };
    let send = req.map_err(|e| e.to_string())?.send();
    let resp = match select(Box::pin(send), &mut cancel).await {
        Either::Left((resp, _)) => resp.map_err(|e| e.to_string())?,
        Either::Right(_) => {
            controller.abort();
            return Ok(Outcome::Cancelled);
        }
    };
    if !resp.ok() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(crate::api::error::ErrorEnvelope::message_of(status, &text));
    }
    let body = resp.body().ok_or("the reply had no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut buffer = SseBuffer::default();
    loop {
        let read = wasm_bindgen_futures::JsFuture::from(reader.read());
        let chunk = match select(Box::pin(read), &mut cancel).await {
            Either::Left((chunk, _)) => chunk.map_err(|_| "the connection broke off")?,
            Either::Right(_) => {
                controller.abort();
                return Ok(Outcome::Cancelled);
            }
        };
        let field = |name: &str| js_sys::Reflect::get(&chunk, &name.into()).ok();
        if field("done").and_then(|d| d.as_bool()).unwrap_or(true) {
            return Ok(Outcome::Finished);
        }
        let Some(value) = field("value") else {
            continue;
        };
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        for data in buffer.push(&bytes) {
            on_data(&data);
        }
    }
}

#[cfg(feature = "hydrate")]
pub enum Outcome {
    Finished,
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_comments_skipped() {
        let mut b = SseBuffer::default();
        assert!(b.push(b": ping\n\nevent: x\ndata: {\"a\"").is_empty());
        assert_eq!(b.push(b":1}\n\ndata: [DONE]\n\n"), ["{\"a\":1}", "[DONE]"]);
        // A character split between chunks is whole once the event is.
        let text = "data: \"é\"\n\n".as_bytes();
        assert!(b.push(&text[..8]).is_empty());
        assert_eq!(b.push(&text[8..]), ["\"é\""]);
    }

    #[test]
    fn events_become_updates() {
        let q = r#"{"type":"image_generation.progress","created_at":1,"image_index":1,"status":"queued","queue_position":2}"#;
        assert_eq!(
            read_event(q, 0),
            Some(Update::Queued {
                index: 1,
                ahead: Some(2)
            })
        );
        let s = r#"{"type":"image_edit.progress","created_at":1,"image_index":0,"status":"sampling","step":3,"steps":9}"#;
        assert_eq!(
            read_event(s, 0),
            Some(Update::Step {
                index: 0,
                step: 3,
                steps: 9
            })
        );
        let done = r#"{"type":"image_generation.completed","b64_json":"QUJD","created_at":1,"size":"64x64","quality":"auto","background":"opaque","output_format":"jpeg","seed":5}"#;
        assert_eq!(
            read_event(done, 2),
            Some(Update::Done {
                index: 2,
                data_url: "data:image/jpeg;base64,QUJD".into(),
                seed: Some(5)
            })
        );
        let err = r#"{"error":{"message":"ComfyUI failed","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(
            read_event(err, 0),
            Some(Update::Failed("ComfyUI failed".into()))
        );
        assert_eq!(read_event("[DONE]", 0), None);
    }
}
