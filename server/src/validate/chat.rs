//! `/v1/chat/completions`: the last user message becomes an image prompt, an edit when it
//! carries an image.

use app::api::{
    chat::{ChatCompletionRequest, ChatMessage, ContentPart, MessageContent},
    images::{ImageGenerationRequest, ImageInput},
};

use super::{
    Context,
    edit::{EditKind, image_to_image},
    generation::text_to_image,
    job::Job,
};
use crate::{error::ApiError, models::Purpose};

/// A chat request that passed every check.
#[derive(Debug)]
pub struct ChatRequest {
    pub job: Job,
    /// `None` for one JSON reply; else whether the stream ends with a usage chunk.
    pub stream: Option<ChatStream>,
    /// The conversation, counted for usage once the images are made.
    pub messages: Vec<ChatMessage>,
    /// True when the last message carried an image to edit.
    pub edit: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ChatStream {
    pub include_usage: bool,
}

pub async fn chat(req: ChatCompletionRequest, ctx: &Context) -> Result<ChatRequest, ApiError> {
    let turn = Turn::read(&req, ctx.checks.0.chat_use_system_prompt)?;
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
        sampler: req.sampler.clone(),
        scheduler: req.scheduler.clone(),
        ..ImageGenerationRequest::default()
    };
    let job = if edit {
        let mut images = Vec::with_capacity(turn.images.len());
        for image in turn.images {
            let source = ImageInput::Data(image.url);
            let data = ctx.sources.resolve(&image.param, source).await?;
            images.push((image.param, data));
        }
        let template = ctx
            .models
            .choose(req.model.as_deref(), Purpose::Edit { masked: false })?;
        image_to_image(image_req, template, images, None, EditKind::Edit, ctx)
            .await
            .map_err(in_messages)?
    } else {
        let template = ctx.models.choose(req.model.as_deref(), Purpose::Generate)?;
        text_to_image(image_req, template, ctx).map_err(in_messages)?
    };
    let stream = (req.stream == Some(true)).then(|| ChatStream {
        include_usage: req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    });
    Ok(ChatRequest {
        job,
        stream,
        messages: req.messages,
        edit,
    })
}

/// An image part of the last user message, with the parameter path that names it in errors.
struct TurnImage {
    param: String,
    url: String,
}

/// What the conversation asks for: the text of the last user message (the image prompt) and
/// its images.
struct Turn {
    prompt: String,
    images: Vec<TurnImage>,
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
                    ContentPart::ImageUrl { image_url } => Some(TurnImage {
                        param: format!("messages[{at}].content[{i}].image_url"),
                        url: image_url.url().to_string(),
                    }),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let images: Vec<(&str, &str)> = turn
            .images
            .iter()
            .map(|i| (i.param.as_str(), i.url.as_str()))
            .collect();
        assert_eq!(
            images,
            vec![
                (
                    "messages[3].content[2].image_url",
                    "data:image/png;base64,AA"
                ),
                (
                    "messages[3].content[3].image_url",
                    "data:image/png;base64,BB"
                ),
            ]
        );
        let turn = Turn::read(&req, true).unwrap();
        assert_eq!(turn.prompt, "You draw in watercolour.\na dog");
    }
}
