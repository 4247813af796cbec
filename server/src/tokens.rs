//! Token counts for usage reports, with OpenAI's `o200k_base` vocabulary. The counter's regex
//! takes a moment to compile and its tables are read in from the binary as lookups reach them, so
//! it is made on first use, on a blocking thread: a bridge that never serves chat never pays for it.

use std::sync::LazyLock;

use app::api::chat::ChatMessage;

use crate::error::ApiError;

mod o200k;

static O200K: LazyLock<o200k::O200k> = LazyLock::new(o200k::O200k::new);

/// What OpenAI adds per message (the role and separators) and to prime the reply.
const PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;

fn count_now(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    O200K.count(text) as u64
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("token counting failed: {e}")))
}

/// The tokens of a plain text.
pub async fn count(text: String) -> Result<u64, ApiError> {
    blocking(move || count_now(&text)).await
}

/// The prompt tokens of a conversation, counted as OpenAI counts chat input: each message's
/// role and text plus a fixed overhead. Image parts count as nothing: their cost depends on
/// the model that reads them, and here no model reads them as tokens.
pub async fn conversation(messages: &[ChatMessage]) -> Result<u64, ApiError> {
    let texts: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.role.clone(), m.text()))
        .collect();
    blocking(move || {
        texts
            .iter()
            .map(|(role, text)| PER_MESSAGE + count_now(role) + count_now(text))
            .sum::<u64>()
            + REPLY_PRIMING
    })
    .await
}

#[cfg(test)]
mod tests {
    use app::api::chat::MessageContent;

    use super::*;

    fn message(role: &str, text: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: Some(MessageContent::Text(text.into())),
        }
    }

    #[tokio::test]
    async fn counts_with_the_o200k_vocabulary() {
        assert_eq!(count("hello world".into()).await.unwrap(), 2);
        assert_eq!(count(String::new()).await.unwrap(), 0);
        // "<|endoftext|>" typed by a user is text, not the special token.
        assert!(count("<|endoftext|>".into()).await.unwrap() > 1);
    }

    #[tokio::test]
    async fn conversations_count_as_openai_does() {
        // 3 for the message, 1 for the role, 2 for the text, 3 for the reply.
        let one = [message("user", "hello world")];
        assert_eq!(conversation(&one).await.unwrap(), 9);
        let two = [
            message("system", "You draw."),
            message("user", "hello world"),
        ];
        assert!(conversation(&two).await.unwrap() > 9);
    }
}
