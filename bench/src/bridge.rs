//! The bridge's side: the requests a client of the OpenAI API makes.

use anyhow::{Context, bail};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    B64Json,
    Url,
    /// A streamed chat completion, read to its `[DONE]`.
    ChatStream,
}

impl Call {
    pub fn label(self) -> &'static str {
        match self {
            Call::B64Json => "b64_json",
            Call::Url => "url",
            Call::ChatStream => "chat stream",
        }
    }
}

/// Makes one image of `model` through the bridge and returns the reply's size in bytes.
pub async fn call(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    call: Call,
    size: u32,
) -> anyhow::Result<usize> {
    let size_text = format!("{size}x{size}");
    let (path, body) = match call {
        Call::B64Json | Call::Url => (
            "/v1/images/generations",
            json!({"model": model, "prompt": "a benchmark", "size": size_text,
                   "response_format": call.label()}),
        ),
        Call::ChatStream => (
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "size": size_text,
                   "messages": [{"role": "user", "content": "a benchmark"}]}),
        ),
    };
    let res = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let reply = res.bytes().await.context("reading the reply")?;
    if !status.is_success() {
        bail!(
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    if call == Call::ChatStream && !reply.ends_with(b"data: [DONE]\n\n") {
        bail!("the chat stream did not end with [DONE]");
    }
    Ok(reply.len())
}
