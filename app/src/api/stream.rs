//! One event of any stream the bridge sends, as the server writes it and the browser reads
//! it: an image stream's event, a chat chunk, or an error in OpenAI's envelope.

use serde::{Deserialize, Serialize};

use super::{chat::ChatCompletionChunk, error::ErrorEnvelope, images::ImageEvent};

/// The `data:` of one server-sent event. The kinds tell themselves apart by their fields:
/// an error has `error`, an image event its `type`, a chat chunk its `object` and `choices`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StreamEvent {
    Error(ErrorEnvelope),
    Image(ImageEvent),
    Chat(Box<ChatCompletionChunk>),
}

impl StreamEvent {
    /// The SSE `event:` name: OpenAI names image events by type and errors `error`; chat
    /// chunks go unnamed.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            StreamEvent::Error(_) => Some("error"),
            StreamEvent::Image(event) => Some(event.type_name()),
            StreamEvent::Chat(_) => None,
        }
    }

    /// Reads one event's data; `None` for the end marker (`[DONE]`) and anything unknown.
    pub fn parse(data: &str) -> Option<StreamEvent> {
        serde_json::from_str(data).ok()
    }
}

/// The data of the last event of a chat stream.
pub const DONE: &str = "[DONE]";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::images::ImageProgress;

    #[test]
    fn each_kind_is_read_back_as_itself() {
        let error = r#"{"error":{"message":"ComfyUI failed","type":"server_error","param":null,"code":null}}"#;
        let Some(StreamEvent::Error(e)) = StreamEvent::parse(error) else {
            panic!("not an error");
        };
        assert_eq!(e.error.message, "ComfyUI failed");

        let progress = r#"{"type":"image_edit.progress","created_at":1,"image_index":0,"status":"sampling","step":3,"steps":9}"#;
        let Some(StreamEvent::Image(ImageEvent::EditProgress(ImageProgress { step, .. }))) =
            StreamEvent::parse(progress)
        else {
            panic!("not a progress event");
        };
        assert_eq!(step, Some(3));

        let chunk = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"f","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}"#;
        let Some(StreamEvent::Chat(c)) = StreamEvent::parse(chunk) else {
            panic!("not a chunk");
        };
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("hi"));
        assert_eq!(StreamEvent::Chat(c).name(), None);

        assert_eq!(StreamEvent::parse(DONE), None);
    }
}
