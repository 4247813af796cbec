//! `POST /v1/chat/completions`: the last user message becomes an image prompt (an edit when it
//! carries an image), and the reply carries the images as markdown in a string `content`,
//! whole or streamed with progress in `reasoning_content`.

use std::sync::Arc;

use app::api::{
    chat::{
        AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
        Choice, ChunkChoice, ContentPart, Delta, MessageContent, Usage,
    },
    images::{ImageGenerationRequest, ImageInput},
};
use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};

use super::{
    edits::prepare,
    images::{Delivery, deliver, now_secs, public_base, unknown_model},
    sse::{self, Events},
    upload::{self, EditUpload},
};
use crate::{
    config::ChatImages,
    error::ApiError,
    extract::ApiJson,
    jobs::{self, Generated, Inputs, Step},
    progress::{ProgressText, plural},
    state::{AppState, Bridge},
    tokens, validate,
    validate::Generation,
};

const FINGERPRINT: &str = "fp_comfyui_bridge";

pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let bridge = &state.bridge;
    let turn = Turn::read(&req, bridge.config.chat_use_system_prompt)?;
    let edit = !turn.images.is_empty();
    let image_req = ImageGenerationRequest {
        prompt: turn.prompt,
        model: req.model.clone(),
        n: req.n,
        size: req.size.clone(),
        seed: req.seed,
        negative_prompt: req.negative_prompt.clone(),
        steps: req.steps,
        cfg: req.cfg,
        ..ImageGenerationRequest::default()
    };
    let (mut job, inputs) = if edit {
        let mut images = Vec::with_capacity(turn.images.len());
        for (param, url) in turn.images {
            let data = upload::resolve(
                bridge,
                &headers,
                &param,
                ImageInput::Data(url),
                bridge.config.max_image_bytes,
            )
            .await?;
            images.push((param, data));
        }
        let template = bridge
            .edit_model(req.model.as_deref(), false)
            .ok_or_else(|| unknown_model(req.model.as_deref()))?;
        let upload = EditUpload {
            req: image_req,
            images,
            mask: None,
        };
        prepare(bridge, template, upload, false)
            .await
            .map_err(in_messages)?
    } else {
        let template = bridge
            .model(req.model.as_deref())
            .ok_or_else(|| unknown_model(req.model.as_deref()))?;
        let job = validate::generation(image_req, template, bridge.config.max_prompt_chars)
            .map_err(in_messages)?;
        (job, Inputs::default())
    };
    job.keep = bridge.keeps(&headers);

    let streamed = req.stream == Some(true);
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let reply = Reply {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        created: now_secs(),
        model: job.template.id.clone(),
        links: match bridge.config.chat_images {
            ChatImages::Url => Some(public_base(&bridge.config.public_url, &headers)),
            ChatImages::Data => None,
        },
        messages: req.messages,
        edit,
    };
    if streamed {
        return Ok(stream(
            state.bridge.clone(),
            reply,
            job,
            inputs,
            include_usage,
        ));
    }

    let images = jobs::generate(bridge, &job, &inputs).await?;
    drop(inputs);
    let answer = reply.answer(bridge, &job, images).await?;
    let usage = reply.usage(answer.counted).await?;
    Ok(Json(ChatCompletion {
        id: reply.id,
        object: "chat.completion".into(),
        created: reply.created,
        model: reply.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: answer.parts.concat(),
                refusal: None,
            },
            logprobs: None,
            finish_reason: "stop".into(),
        }],
        usage,
        system_fingerprint: FINGERPRINT.into(),
    })
    .into_response())
}

/// What the conversation asks for: the text of the last user message (the image prompt) and
/// its images, each with the parameter path that names it in errors.
struct Turn {
    prompt: String,
    images: Vec<(String, String)>,
}

impl Turn {
    fn read(req: &ChatCompletionRequest, use_system_prompt: bool) -> Result<Turn, ApiError> {
        let (at, last) = req
            .messages
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| m.role == "user")
            .ok_or_else(|| {
                ApiError::invalid(
                    "messages",
                    "The conversation has no user message; say what to draw in one.",
                )
            })?;
        let mut prompt = last.text().trim().to_string();
        let images = match &last.content {
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .enumerate()
                .filter_map(|(i, part)| match part {
                    ContentPart::ImageUrl { image_url } => Some((
                        format!("messages[{at}].content[{i}].image_url"),
                        image_url.url().to_string(),
                    )),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if prompt.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                if images.is_empty() {
                    "The last user message has no text; say what to draw."
                } else {
                    "The last user message has an image but no text; say how to change it."
                },
            ));
        }
        if use_system_prompt {
            let system: Vec<String> = req
                .messages
                .iter()
                .filter(|m| m.role == "system" || m.role == "developer")
                .map(|m| m.text().trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if !system.is_empty() {
                prompt = format!("{}\n{prompt}", system.join("\n"));
            }
        }
        Ok(Turn { prompt, images })
    }
}

/// Errors about the image prompt or input are about the messages that carried them.
fn in_messages(e: ApiError) -> ApiError {
    match e {
        ApiError::InvalidRequest {
            message,
            param: Some(p),
            code,
        } if matches!(p.as_str(), "prompt" | "image" | "mask") => ApiError::InvalidRequest {
            message,
            param: Some("messages".into()),
            code,
        },
        other => other,
    }
}

/// The reply being made: what every chunk repeats, and how images are carried.
struct Reply {
    id: String,
    created: u64,
    model: String,
    /// Base URL for image links; `None` for inline `data:` URLs.
    links: Option<String>,
    /// Counted for usage only once the images are made: the first chat request loads the
    /// tokenizer, which must not hold back the start of a stream.
    messages: Vec<ChatMessage>,
    edit: bool,
}

/// The assistant's answer, in the pieces a stream sends, and its text without image data,
/// which is what completion tokens count.
struct Answer {
    parts: Vec<String>,
    counted: String,
}

impl Reply {
    /// Prompt tokens of the conversation, and completion tokens of the answer's text.
    async fn usage(&self, answer_text: String) -> Result<Usage, ApiError> {
        Ok(Usage::new(
            tokens::conversation(&self.messages).await?,
            tokens::count(answer_text).await?,
        ))
    }

    async fn answer(
        &self,
        bridge: &Bridge,
        job: &Generation,
        images: Vec<Generated>,
    ) -> Result<Answer, ApiError> {
        let alt = alt_text(&job.params.prompt);
        let mut parts = Vec::with_capacity(images.len() + 1);
        let mut counted = String::new();
        let mut seeds = Vec::with_capacity(images.len());
        for image in images {
            seeds.push(image.seed.to_string());
            let how = match &self.links {
                Some(base) => Delivery::Url(base),
                None => Delivery::DataUrl,
            };
            let target = deliver(bridge, job, image.data, how).await?;
            parts.push(format!("![{alt}]({target})\n\n"));
            counted.push_str(&format!("![{alt}]()\n\n"));
        }
        let line = format!(
            "{} with `{}` at {}, {} {}.",
            if self.edit { "Edited" } else { "Made" },
            self.model,
            job.size,
            plural(seeds.len(), "seed"),
            seeds.join(", ")
        );
        counted.push_str(&line);
        parts.push(line);
        Ok(Answer { parts, counted })
    }

    fn chunk(
        &self,
        include_usage: bool,
        delta: Delta,
        finish: Option<&str>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish.map(str::to_string),
            }],
            ..self.usage_chunk(include_usage.then_some(None))
        }
    }

    fn usage_chunk(&self, usage: Option<Option<Usage>>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: FINGERPRINT.into(),
            choices: Vec::new(),
            usage,
        }
    }
}

/// The prompt as image alt text: one line, no brackets that would end the markdown early.
fn alt_text(prompt: &str) -> String {
    let clean: String = prompt
        .chars()
        .map(|c| match c {
            '[' | ']' | '\\' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let words: Vec<&str> = clean.split_whitespace().collect();
    let mut alt = words.join(" ");
    if let Some((cut, _)) = alt.char_indices().nth(100) {
        alt.truncate(cut);
        alt.push('…');
    }
    alt
}

/// The streamed reply: the role at once, progress as reasoning, the images as content, the
/// finish chunk, usage if asked, then `[DONE]`; a failure is an `error` event, then `[DONE]`.
fn stream(
    bridge: Arc<Bridge>,
    reply: Reply,
    job: Generation,
    inputs: Inputs,
    include_usage: bool,
) -> Response {
    sse::stream(bridge.config.sse_keepalive(), move |events| async move {
        let opening = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        if events
            .json(None, &reply.chunk(include_usage, opening, None))
            .await
        {
            match stream_answer(&bridge, &reply, &job, &inputs, include_usage, &events).await {
                Ok(usage) => {
                    let finish = reply.chunk(include_usage, Delta::default(), Some("stop"));
                    events.json(None, &finish).await;
                    if include_usage {
                        events
                            .json(None, &reply.usage_chunk(Some(Some(usage))))
                            .await;
                    }
                }
                Err(e) => {
                    events.error(&e).await;
                }
            }
            events.done().await;
        }
    })
}

async fn stream_answer(
    bridge: &Bridge,
    reply: &Reply,
    job: &Generation,
    inputs: &Inputs,
    include_usage: bool,
    events: &Events,
) -> Result<Usage, ApiError> {
    let reasoning = |text: String| {
        reply.chunk(
            include_usage,
            Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            },
            None,
        )
    };
    let n = job.seeds.len();
    let intro = format!(
        "{} {n} {} with {} at {}.\n",
        if reply.edit { "Editing into" } else { "Making" },
        plural(n, "image"),
        reply.model,
        job.size
    );
    events.json(None, &reasoning(intro)).await;

    let mut progress = ProgressText::new(n);
    let mut run = jobs::generate_reporting(bridge, job, inputs);
    let images = loop {
        match run.next().await {
            Step::Update(index, update) => {
                if let Some(line) = progress.line(index, &update) {
                    events.json(None, &reasoning(line)).await;
                }
            }
            Step::Done(result) => break result?,
        }
    };
    drop(run);

    let answer = reply.answer(bridge, job, images).await?;
    for part in answer.parts {
        let delta = Delta {
            content: Some(part),
            ..Delta::default()
        };
        events
            .json(None, &reply.chunk(include_usage, delta, None))
            .await;
    }
    reply.usage(answer.counted).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_text_is_one_safe_line() {
        assert_eq!(alt_text("a [red]\n fox\\"), "a red fox");
        let long = "word ".repeat(50);
        let alt = alt_text(&long);
        assert_eq!(alt.chars().count(), 101);
        assert!(alt.ends_with('…'));
    }

    #[test]
    fn the_prompt_is_the_last_user_message() {
        let req: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "You draw in watercolour."},
                {"role": "user", "content": "a cat"},
                {"role": "assistant", "content": null},
                {"role": "user", "content": [
                    {"type": "text", "text": "a dog"},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "low"}},
                    {"type": "image_url", "image_url": "data:image/png;base64,BB"}
                ]}
            ]
        }))
        .unwrap();
        let turn = Turn::read(&req, false).unwrap();
        assert_eq!(turn.prompt, "a dog");
        assert_eq!(
            turn.images,
            vec![
                (
                    "messages[3].content[2].image_url".to_string(),
                    "data:image/png;base64,AA".to_string()
                ),
                (
                    "messages[3].content[3].image_url".to_string(),
                    "data:image/png;base64,BB".to_string()
                ),
            ]
        );
        let turn = Turn::read(&req, true).unwrap();
        assert_eq!(turn.prompt, "You draw in watercolour.\na dog");
    }
}
