#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

//! The Chat page's data: conversations as the browser keeps them, the request a turn becomes,
//! and a streamed reply read back into text, progress and images.

use serde::{Deserialize, Serialize};

use crate::api::{
    chat::{
        ChatCompletionRequest, ChatMessage, ContentPart, GenerationInfo, ImageUrl, MessageContent,
    },
    stream::StreamEvent,
};

/// One conversation, as kept in the browser's storage. Images are not in it: they are kept
/// apart (by key) so a long history does not fill the few megabytes local storage allows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    /// Milliseconds since the epoch of the last turn; the list is newest first.
    pub updated: f64,
    pub turns: Vec<Turn>,
    /// Named by hand: the title no longer follows the first prompt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renamed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    /// The progress the bridge reported while it worked, shown apart from the answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// Keys of the turn's images: the one attached to a user turn, the ones made in a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a reply made (model, size, seeds), as the server stated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made: Option<GenerationInfo>,
}

impl Conversation {
    /// Whether every word of `query` is in the title or in a turn, whatever the case.
    pub fn matches(&self, query: &str) -> bool {
        let text = std::iter::once(self.title.as_str())
            .chain(self.turns.iter().map(|t| t.text.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        query
            .split_whitespace()
            .all(|word| text.contains(&word.to_lowercase()))
    }

    /// A short title: the first words of the first prompt.
    pub fn title_from(prompt: &str) -> String {
        let words = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
        match words.char_indices().nth(48) {
            Some((cut, _)) => format!("{}…", &words[..cut]),
            None if words.is_empty() => "New chat".into(),
            None => words,
        }
    }
}

/// The request for a new user turn. Earlier turns go as text (the bridge draws from the last
/// user message; the rest is context a client would send); `image` is a `data:` URL.
pub fn request(
    history: &[Turn],
    prompt: &str,
    image: Option<String>,
    model: Option<String>,
) -> ChatCompletionRequest {
    let mut messages: Vec<ChatMessage> = history
        .iter()
        .filter(|t| t.error.is_none() && !t.text.trim().is_empty())
        .map(|t| ChatMessage {
            role: t.role.clone(),
            content: Some(MessageContent::Text(t.text.clone())),
        })
        .collect();
    let content = match image {
        Some(url) => MessageContent::Parts(vec![
            ContentPart::Text {
                text: prompt.to_string(),
            },
            ContentPart::ImageUrl {
                image_url: ImageUrl::Object { url },
            },
        ]),
        None => MessageContent::Text(prompt.to_string()),
    };
    messages.push(ChatMessage {
        role: "user".into(),
        content: Some(content),
    });
    ChatCompletionRequest {
        model: model.filter(|m| !m.is_empty()),
        messages,
        stream: Some(true),
        ..Default::default()
    }
}

/// What one chunk of a streamed chat adds.
#[derive(Debug, PartialEq)]
pub enum ChatUpdate {
    Reasoning(String),
    Content(String),
    Made(GenerationInfo),
    Failed(String),
}

pub fn read_chunk(data: &str) -> Vec<ChatUpdate> {
    let chunk = match StreamEvent::parse(data) {
        Some(StreamEvent::Chat(chunk)) => chunk,
        Some(StreamEvent::Error(e)) => return vec![ChatUpdate::Failed(e.error.message)],
        Some(StreamEvent::Image(_)) | None => return Vec::new(),
    };
    let mut out = Vec::new();
    if let Some(made) = chunk.generation {
        out.push(ChatUpdate::Made(made));
    }
    let Some(delta) = chunk.choices.into_iter().next().map(|c| c.delta) else {
        return out;
    };
    if let Some(r) = delta.reasoning_content.filter(|r| !r.is_empty()) {
        out.push(ChatUpdate::Reasoning(r));
    }
    if let Some(c) = delta.content.filter(|c| !c.is_empty()) {
        out.push(ChatUpdate::Content(c));
    }
    out
}

/// A reply cut into what the page shows: text, and the markdown images in it.
#[derive(Debug, PartialEq)]
pub enum Piece {
    Text(String),
    Image { alt: String, src: String },
}

/// Reads `![alt](src)` images out of a reply. An image still arriving (no closing parenthesis
/// yet) is left out, so its data never shows as text; an image whose address is not an image
/// (`javascript:`, …) stays text.
pub fn pieces(content: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = content;
    while let Some(start) = rest.find("![") {
        let Some(mid) = rest[start..].find("](").map(|m| start + m) else {
            break;
        };
        let Some(end) = rest[mid..].find(')').map(|e| mid + e) else {
            // Still arriving: show what came before it.
            text.push_str(&rest[..start]);
            flush(&mut out, &mut text);
            return out;
        };
        let (alt, src) = (&rest[start + 2..mid], &rest[mid + 2..end]);
        if shows_as_image(src) {
            text.push_str(&rest[..start]);
            flush(&mut out, &mut text);
            out.push(Piece::Image {
                alt: alt.to_string(),
                src: src.to_string(),
            });
        } else {
            text.push_str(&rest[..=end]);
        }
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    flush(&mut out, &mut text);
    out
}

fn shows_as_image(src: &str) -> bool {
    src.starts_with("data:image/")
        || src.starts_with("https://")
        || src.starts_with("http://")
        || (src.starts_with('/') && !src.starts_with("//"))
}

fn flush(out: &mut Vec<Piece>, text: &mut String) {
    let trimmed = text.trim();
    if !trimmed.is_empty() {
        out.push(Piece::Text(trimmed.to_string()));
    }
    text.clear();
}

/// Text with `code` spans: `(is_code, text)` runs, for a reply like "Made with `sdxl` at …".
pub fn code_spans(text: &str) -> Vec<(bool, String)> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| (i % 2 == 1, s.to_string()))
        .collect()
}

/// What regenerating the last reply sends again: the turns before the last user turn, that
/// turn's text and image. `None` when there is no user turn to answer.
pub fn regeneration(turns: &[Turn]) -> Option<(Vec<Turn>, String, Option<String>)> {
    let last_user = turns.iter().rposition(|t| t.role == "user")?;
    let user = &turns[last_user];
    Some((
        turns[..last_user].to_vec(),
        user.text.clone(),
        user.images.first().cloned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: &str, text: &str) -> Turn {
        Turn {
            role: role.into(),
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_search_finds_every_word_in_the_title_or_the_turns() {
        let chat = Conversation {
            title: "Harbour".into(),
            turns: vec![
                turn("user", "A red BOAT"),
                turn("assistant", "Made with `sdxl`"),
            ],
            ..Default::default()
        };
        assert!(chat.matches(""));
        assert!(chat.matches("boat harbour"));
        assert!(chat.matches("SDXL"));
        assert!(!chat.matches("boat plane"));
    }

    #[test]
    fn regenerating_sends_the_last_user_turn_again_after_the_turns_before_it() {
        let mut with_image = turn("user", "bluer");
        with_image.images = vec!["k1".into()];
        let turns = vec![
            turn("user", "a boat"),
            turn("assistant", "made"),
            with_image,
            turn("assistant", "made again"),
        ];
        let (before, text, image) = regeneration(&turns).expect("a user turn");
        assert_eq!(before, turns[..2]);
        assert_eq!(text, "bluer");
        assert_eq!(image.as_deref(), Some("k1"));
        assert_eq!(regeneration(&[turn("assistant", "hi")]), None);
    }

    #[test]
    fn replies_split_into_text_and_images() {
        let reply = "![a fox](data:image/png;base64,QUJD)\n\n![a fox](/images/b.png)\n\nMade with `sdxl` at 512x512, seeds 1, 2.";
        assert_eq!(
            pieces(reply),
            [
                Piece::Image {
                    alt: "a fox".into(),
                    src: "data:image/png;base64,QUJD".into()
                },
                Piece::Image {
                    alt: "a fox".into(),
                    src: "/images/b.png".into()
                },
                Piece::Text("Made with `sdxl` at 512x512, seeds 1, 2.".into()),
            ]
        );
        // Half an image (its data still arriving) is not shown at all.
        assert_eq!(
            pieces("Here:\n\n![a fox](data:image/png;base64,QU"),
            [Piece::Text("Here:".into())]
        );
        // Not an image address: it stays text.
        assert_eq!(
            pieces("![x](javascript:alert(1)) and ![y](//evil.example/a.png)"),
            [Piece::Text(
                "![x](javascript:alert(1)) and ![y](//evil.example/a.png)".into()
            )]
        );
    }

    #[test]
    fn code_spans_alternate() {
        assert_eq!(
            code_spans("Made with `sdxl` at 512x512."),
            [
                (false, "Made with ".to_string()),
                (true, "sdxl".to_string()),
                (false, " at 512x512.".to_string())
            ]
        );
    }

    #[test]
    fn chunks_become_updates() {
        let chunk = |rest: &str| {
            format!(
                r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"f",{rest}}}"#
            )
        };
        let r = chunk(
            r#""choices":[{"index":0,"delta":{"reasoning_content":"Step 1 of 4."},"logprobs":null,"finish_reason":null}]"#,
        );
        assert_eq!(
            read_chunk(&r),
            [ChatUpdate::Reasoning("Step 1 of 4.".into())]
        );
        let c = chunk(
            r#""choices":[{"index":0,"delta":{"content":"![a](/x.png)"},"logprobs":null,"finish_reason":null}]"#,
        );
        assert_eq!(read_chunk(&c), [ChatUpdate::Content("![a](/x.png)".into())]);
        let e = r#"{"error":{"message":"ComfyUI failed","type":"server_error"}}"#;
        assert_eq!(read_chunk(e), [ChatUpdate::Failed("ComfyUI failed".into())]);
        assert!(read_chunk("[DONE]").is_empty());
        assert!(
            read_chunk(&chunk(
                r#""choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}"#
            ))
            .is_empty()
        );
    }

    #[test]
    fn the_size_and_seeds_are_read_from_the_reply() {
        let c = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"sdxl","system_fingerprint":"f",
            "choices":[{"index":0,"delta":{"content":"![a](/x.png)"},"logprobs":null,"finish_reason":null}],
            "generation":{"model":"sdxl","size":"1344x768","seeds":[5,6],"edit":false}}"#;
        let updates = read_chunk(c);
        let Some(ChatUpdate::Made(made)) = updates.first() else {
            panic!("no generation info in {updates:?}");
        };
        assert_eq!(made.size, crate::api::size::Size::new(1344, 768));
        assert_eq!(made.seeds, [5, 6]);
        assert_eq!(updates[1], ChatUpdate::Content("![a](/x.png)".into()));
    }

    #[test]
    fn a_turn_becomes_a_request() {
        let history = [
            Turn {
                role: "user".into(),
                text: "a fox".into(),
                ..Default::default()
            },
            Turn {
                role: "assistant".into(),
                text: "Made with `sdxl`.".into(),
                images: vec!["k1".into()],
                ..Default::default()
            },
            Turn {
                role: "assistant".into(),
                text: String::new(),
                error: Some("Cancelled".into()),
                ..Default::default()
            },
        ];
        let req = request(
            &history,
            "at night",
            Some("data:image/png;base64,QUJD".into()),
            Some(String::new()),
        );
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "messages": [
                    {"role": "user", "content": "a fox"},
                    {"role": "assistant", "content": "Made with `sdxl`."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "at night"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
                    ]}
                ],
                "stream": true
            })
        );
    }

    #[test]
    fn titles_are_the_first_words() {
        assert_eq!(Conversation::title_from("  a  red\nfox "), "a red fox");
        assert_eq!(Conversation::title_from(""), "New chat");
        let long = Conversation::title_from(&"word ".repeat(30));
        assert_eq!(long.chars().count(), 49);
    }
}
