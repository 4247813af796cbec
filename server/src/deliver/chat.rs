//! Chat replies: the images as markdown in a string `content`, with a line naming the model,
//! size and seeds (and the same typed, in `generation`); whole, or streamed with progress in
//! `reasoning_content`.

use app::api::{
    chat::{
        AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatMessage, Choice, ChunkChoice,
        Delta, GenerationInfo, Usage,
    },
    stream::StreamEvent,
};
use axum::{
    Json,
    http::HeaderMap,
    response::{IntoResponse, Response},
};

use super::{
    Carrier, Delivery, now_secs,
    progress::{ProgressText, plural},
    sse::{self, Ending, Events},
};
use crate::{
    config::ChatImages,
    error::ApiError,
    jobs::{Generated, Jobs, Step},
    tokens,
    validate::{ChatRequest, Job},
};

const FINGERPRINT: &str = "fp_comfyui_bridge";

/// The whole reply, once the images are made.
pub async fn chat_reply(
    delivery: &Delivery,
    jobs: &Jobs,
    headers: &HeaderMap,
    request: ChatRequest,
) -> Result<Response, ApiError> {
    let reply = Reply::new(delivery, headers, &request);
    let images = jobs.run(&request.job).await?;
    let answer = reply.answer(delivery, &request.job, images).await?;
    let usage = reply.usage(&request.messages, answer.counted).await?;
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

/// The streamed reply: once the job is queued, the role, progress as reasoning, the images as
/// content, the finish chunk, usage if asked, then `[DONE]`; a failure after the start is an
/// `error` event, then `[DONE]`.
pub async fn chat_stream(
    delivery: &Delivery,
    jobs: Jobs,
    headers: &HeaderMap,
    request: ChatRequest,
) -> Result<Response, ApiError> {
    let reply = Reply::new(delivery, headers, &request);
    let delivery = delivery.clone();
    sse::respond(delivery.keepalive, Ending::Done, move |events| async move {
        let include_usage = request.stream.is_some_and(|s| s.include_usage);
        let usage = stream_answer(&delivery, &jobs, &reply, &request, &events).await?;
        let finish = reply.chunk(include_usage, Delta::default(), Some("stop"));
        events.send(&chunk_event(finish)).await;
        if include_usage {
            events
                .send(&chunk_event(reply.usage_chunk(Some(Some(usage)))))
                .await;
        }
        Ok(())
    })
    .await
}

fn chunk_event(chunk: ChatCompletionChunk) -> StreamEvent {
    StreamEvent::Chat(Box::new(chunk))
}

async fn stream_answer(
    delivery: &Delivery,
    jobs: &Jobs,
    reply: &Reply,
    request: &ChatRequest,
    events: &Events,
) -> Result<Usage, ApiError> {
    let job = &request.job;
    let include_usage = request.stream.is_some_and(|s| s.include_usage);
    let reasoning = |text: String| {
        chunk_event(reply.chunk(
            include_usage,
            Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            },
            None,
        ))
    };
    // The role and what is being made open the stream, once the job is queued.
    let open = || async {
        let opening = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        events
            .send(&chunk_event(reply.chunk(include_usage, opening, None)))
            .await;
        let n = job.seeds().len();
        let intro = format!(
            "{} {n} {} with {} at {}.\n",
            if reply.edit { "Editing into" } else { "Making" },
            plural(n, "image"),
            reply.model,
            job.size()
        );
        events.send(&reasoning(intro)).await;
    };

    let mut opened = false;
    let mut progress = ProgressText::new(job.seeds().len());
    let mut run = jobs.run_reporting(job, None);
    let images = loop {
        match run.next().await {
            Step::Update(index, update) => {
                if !opened {
                    open().await;
                    opened = true;
                }
                if let Some(line) = progress.line(index, &update) {
                    events.send(&reasoning(line)).await;
                }
            }
            // The answer shows every image at once, in order, when all are done.
            Step::Image(..) => {}
            Step::Done(result) => break result?,
        }
    };
    drop(run);
    if !opened {
        open().await;
    }

    let answer = reply.answer(delivery, job, images).await?;
    let mut info = Some(answer.info);
    for part in answer.parts {
        let delta = Delta {
            content: Some(part),
            ..Delta::default()
        };
        let chunk = ChatCompletionChunk {
            generation: info.take(),
            ..reply.chunk(include_usage, delta, None)
        };
        events.send(&chunk_event(chunk)).await;
    }
    reply.usage(&request.messages, answer.counted).await
}

/// The reply being made: what every chunk repeats, and how images are carried.
struct Reply {
    id: String,
    created: u64,
    model: String,
    /// Base URL for image links; `None` for inline `data:` URLs.
    links: Option<String>,
    edit: bool,
}

/// The assistant's answer, in the pieces a stream sends, its text without image data (which
/// is what completion tokens count), and what it made.
struct Answer {
    parts: Vec<String>,
    counted: String,
    info: GenerationInfo,
}

impl Reply {
    fn new(delivery: &Delivery, headers: &HeaderMap, request: &ChatRequest) -> Reply {
        Reply {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: now_secs(),
            model: request.job.model().to_string(),
            links: match delivery.chat_images {
                ChatImages::Url => Some(delivery.store.base(headers)),
                ChatImages::Data => None,
            },
            edit: request.edit,
        }
    }

    /// Prompt tokens of the conversation, and completion tokens of the answer's text. Counted
    /// only once the images are made: the first chat request loads the tokenizer, which must
    /// not hold back the start of a stream.
    async fn usage(
        &self,
        messages: &[ChatMessage],
        answer_text: String,
    ) -> Result<Usage, ApiError> {
        Ok(Usage::new(
            tokens::conversation(messages).await?,
            tokens::count(answer_text).await?,
        ))
    }

    async fn answer(
        &self,
        delivery: &Delivery,
        job: &Job,
        images: Vec<Generated>,
    ) -> Result<Answer, ApiError> {
        let alt = alt_text(job.prompt());
        let mut parts = Vec::with_capacity(images.len() + 1);
        let mut counted = String::new();
        let mut seeds = Vec::with_capacity(images.len());
        for image in images {
            seeds.push(image.seed);
            let how = match &self.links {
                Some(base) => Carrier::Url(base),
                None => Carrier::DataUrl,
            };
            let target = delivery.carry(job.output(), image.data, how).await?;
            parts.push(format!("![{alt}]({target})\n\n"));
            counted.push_str(&format!("![{alt}]()\n\n"));
        }
        let line = format!(
            "{} with `{}` at {}, {} {}.",
            if self.edit { "Edited" } else { "Made" },
            self.model,
            job.size(),
            plural(seeds.len(), "seed"),
            seeds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        counted.push_str(&line);
        parts.push(line);
        Ok(Answer {
            parts,
            counted,
            info: GenerationInfo {
                model: self.model.clone(),
                size: job.size(),
                seeds,
                edit: self.edit,
            },
        })
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
            generation: None,
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
}
